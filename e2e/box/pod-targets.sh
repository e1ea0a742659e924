#!/bin/bash
# pod-targets.sh OUT PKI API: keeps OUT, a Prometheus file_sd target list, equal to the box's
# pods annotated `prometheus.io/scrape: "true"` (Running, one target per declared container
# port, labelled with namespace, pod, container and the pod's labels). Debian's Prometheus is
# built without kubernetes_sd, so this plays its part: it asks the API server every 2 s and
# replaces OUT atomically (Prometheus watches the file). Started by box.sh inside the node's
# netns; `box.sh down` stops it with the rest.
set -uo pipefail
out=$1 pki=$2 api=$3
while :; do
  if pods=$(curl -sS --noproxy '*' --max-time 10 -A drillbook-box --cacert "$pki/ca.crt" \
    --cert "$pki/admin.crt" --key "$pki/admin.key" "$api/api/v1/pods"); then
    jq '[.items[]
        | select(.metadata.annotations["prometheus.io/scrape"] == "true"
                 and .status.phase == "Running" and .status.podIP != null) as $pod
        | $pod.spec.containers[] as $container
        | ($container.ports // [])[]
        | {targets: ["\($pod.status.podIP):\(.containerPort)"],
           labels: ((($pod.metadata.labels // {}) | with_entries(.key |= gsub("[^a-zA-Z0-9_]"; "_")))
                    + {namespace: $pod.metadata.namespace, pod: $pod.metadata.name,
                       container: $container.name})}]' <<<"$pods" >"$out.tmp" &&
      mv "$out.tmp" "$out"
  fi
  sleep 2
done
