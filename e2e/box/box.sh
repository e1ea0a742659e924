#!/usr/bin/env bash
# The box: a real one-node Kubernetes 1.20.2 inside a network namespace this script makes,
# modelled on kind (where the node is a container, here it is a netns).
#
#   box.sh up       bring it up (idempotent: a healthy box is reused), self-test it, install the
#                   chart (e2e/box/install-chart.sh, if present); last stdout line: export KUBECONFIG=...
#   box.sh down     remove everything (processes, containers, mounts, cgroups, netns, state)
#   box.sh status   show the components; exit 0 only if the box is healthy
#   box.sh env      print the export line
#
# Everything runs inside the netns `drillbook-box` (etcd, control plane, containerd, kubelet,
# kube-proxy, pods). The netns has no default route, so nothing in it can reach any address
# but its own, the pod and service CIDRs and the host end of the veth. See README.md beside it.
#
# Env: BOX_DIR (state, default /var/lib/drillbook-box), BOX_RUN (runtime, /run/drillbook-box),
# DRILLBOOK_BIN (image input), KUBECTL (only passed on to install-chart.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BOX_DIR=${BOX_DIR:-/var/lib/drillbook-box}
BOX_RUN=${BOX_RUN:-/run/drillbook-box}

# --- the fixed design (others depend on these names) -------------------------------------------
NETNS=drillbook-box
NETNS_PATH=/var/run/netns/$NETNS
HOST_IF=dbox0
HOST_IP=10.250.0.1
NODE_IP=10.250.0.2
LINK_CIDR=10.250.0.0/30
POD_CIDR=10.251.0.0/24
POD_GW=10.251.0.1
SVC_CIDR=10.252.0.0/24
SVC_IP=10.252.0.1
NODE=box-node
API="https://$NODE_IP:6443"
PAUSE_IMAGE=box.local/pause:3.4.1
BUSYBOX_IMAGE=box.local/busybox:1.35
CHART_NAMESPACE=tracebloc
SELFTEST_NS=box-selftest
# Pods' cgroups live under /drillbook-box in every hierarchy, so `down` finds exactly ours.
CGROUP_NAME=drillbook-box

PKI=$BOX_DIR/pki
CONF=$BOX_DIR/conf
LOGS=$BOX_DIR/logs
KUBECONFIG_OUT=$BOX_DIR/kubeconfig
CTR_SOCK=$BOX_RUN/containerd/containerd.sock
TOOLS_BIN=${DRILLBOOK_CACHE:-$HOME/.cache/drillbook}/tools/bin

# Start order; `down` stops them in reverse (after killing the pods).
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy pod-targets.sh prometheus-alertmanager prometheus)
# The box's Prometheus (Debian's), as staging has one: it discovers pods through the API server
# and scrapes those annotated `prometheus.io/scrape: "true"`. Reachable from the host.
PROM_ADDR=$NODE_IP:9090
# Debian's Alertmanager, which that Prometheus sends its alerts to; on the node's own address
# (no cluster port), reachable from the host like Prometheus.
ALERTMANAGER_ADDR=$NODE_IP:9093

# Never let a proxy setting send our requests (all to box addresses) anywhere else.
export NO_PROXY="127.0.0.1,localhost,$NODE_IP,$LINK_CIDR,$POD_CIDR,$SVC_CIDR"
export no_proxy="$NO_PROXY"

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'box: warning: %s\n' "$*" >&2; }

# fail [COMPONENT] MESSAGE: the error, the tail of the component's log, and how to clean up.
fail() {
  local component=$1 msg=$2
  printf '\nbox: error: %s\n' "$msg" >&2
  if [ -n "$component" ] && [ -s "$LOGS/$component.log" ]; then
    printf -- '--- last lines of %s ---\n' "$LOGS/$component.log" >&2
    tail -n 40 "$LOGS/$component.log" >&2
    printf -- '---\n' >&2
  fi
  if [ -n "${SHOW_EVENTS:-}" ]; then
    printf -- '--- recent events in %s ---\n' "$SELFTEST_NS" >&2
    pod_events
  fi
  printf 'box: logs are in %s; remove the half-started box with: %s down\n' "$LOGS" "$0" >&2
  exit 1
}

in_node() { nsenter --net="$NETNS_PATH" -- "$@"; }

k8s_bin() { printf '%s/bin/%s\n' "$K8S_CACHE" "$1"; }

# --- processes ---------------------------------------------------------------------------------

pidfile() { printf '%s/%s.pid\n' "$BOX_RUN" "$1"; }

# alive NAME: its pid file names a live process whose command is NAME (comm is cut to 15 chars).
alive() {
  local pid comm state
  pid=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$comm" = "${1:0:15}" ] && [ "$state" != Z ]
}

# start NAME COMMAND...: detached (own session, stdin closed) inside the netns, logging to
# $LOGS/NAME.log. The wrapper writes its pid and execs, so the pid file holds the daemon's pid.
# fd 9 (the up/down lock) is closed, or the daemon would hold the lock for its whole life.
start() {
  local name=$1; shift
  log "starting $name"
  rm -f "$(pidfile "$name")"
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$(pidfile "$name")" \
    nsenter --net="$NETNS_PATH" -- "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
  local i
  for i in $(seq 1 50); do
    alive "$name" && return 0
    sleep 0.1
  done
  fail "$name" "$name did not start"
}

# wait_until SECONDS WHAT COMPONENT CHECK...: polls CHECK each second, failing early (with the
# log tail) if COMPONENT dies, and after SECONDS at most.
wait_until() {
  local limit=$1 what=$2 component=$3; shift 3
  local deadline=$((SECONDS + limit))
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ -n "$component" ] && ! alive "$component"; then
      fail "$component" "$component exited while waiting for $what"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail "$component" "timed out after ${limit}s waiting for $what"
    fi
    sleep 1
  done
}

# --- the API, with curl and the admin certificate (no kubectl needed) -----------------------

# api METHOD PATH [JSON]: prints the response body; fails (body on stderr) on HTTP >= 400.
api() {
  local method=$1 path=$2 data=${3-} out code
  out=$(mktemp "$BOX_RUN/api.XXXXXX")
  # A non-curl User-Agent keeps the answers compact JSON (kube-apiserver pretty-prints for
  # curl/Wget/browsers; the self-test checks that this build survives it).
  local args=(-sS --noproxy '*' --max-time 20 -A drillbook-box --cacert "$PKI/ca.crt"
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" -X "$method" -o "$out" -w '%{http_code}')
  if [ -n "$data" ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$data")
  fi
  code=$(curl "${args[@]}" "$API$path") || { rm -f "$out"; return 1; }
  if [ "$code" -ge 400 ]; then
    printf '%s %s: HTTP %s: %s\n' "$method" "$path" "$code" "$(head -c 600 "$out")" >&2
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}

# create PATH JSON: POST, where "already exists" counts as success.
create() {
  local out
  if out=$(api POST "$1" "$2" 2>&1); then return 0; fi
  case "$out" in *"HTTP 409"*) return 0 ;; esac
  printf '%s\n' "$out" >&2
  return 1
}

apiserver_ready() { [ "$(api GET /readyz 2>/dev/null)" = ok ]; }

node_ready() {
  api GET "/api/v1/nodes/$NODE" | jq -e '
    ([.status.conditions[] | select(.type == "Ready" and .status == "True")] | length == 1)
    and ([(.spec.taints // [])[] | select(.key | startswith("node.kubernetes.io/not-ready"))] | length == 0)
  ' >/dev/null
}

# --- network -----------------------------------------------------------------------------------

setup_network() {
  log "creating netns $NETNS ($HOST_IF $HOST_IP <-> eth0 $NODE_IP)"
  ip netns add "$NETNS"
  # The node end is created under a temporary name: the host has its own eth0.
  ip link add "$HOST_IF" type veth peer name dbox0-node
  ip link set dbox0-node netns "$NETNS"
  in_node ip link set dbox0-node name eth0
  in_node ip link set lo up
  in_node ip addr add "$NODE_IP/30" dev eth0
  in_node ip link set eth0 up
  ip addr add "$HOST_IP/30" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  # Forwarding inside the node only (the node routes between eth0 and the pod bridge, as a
  # kind node does); the host's own ip_forward is never touched. No default route in the node:
  # only the /30 and, once the CNI bridge exists, the pod CIDR.
  in_node sysctl -qw net.ipv4.ip_forward=1
  # IPv4 only: no IPv6 on the node's interfaces (not even link-local towards the host); the
  # default covers the bridge and veths made later. Loopback keeps ::1.
  in_node sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.eth0.disable_ipv6=1
  # Bridged pod-to-pod replies must pass iptables so conntrack can undo a Service's DNAT
  # (pod -> Service -> pod on the same bridge). Per-netns since Linux 5.3; usually already 1.
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    in_node sysctl -qw net.bridge.bridge-nf-call-iptables=1 ||
      warn "could not set bridge-nf-call-iptables in the node netns"
  fi
  # The host reaches pods and Services through the node, and nothing else changes on the host.
  ip route replace "$POD_CIDR" via "$NODE_IP" dev "$HOST_IF"
  ip route replace "$SVC_CIDR" via "$NODE_IP" dev "$HOST_IF"
  if in_node ip route show default | grep -q .; then
    fail "" "the node netns has a default route; refusing to continue"
  fi
}

# --- PKI ---------------------------------------------------------------------------------------

# cert NAME SUBJECT EXTENSIONS: a key and a CA-signed certificate in $PKI.
cert() {
  local name=$1 subject=$2 ext=$3
  openssl req -new -nodes -newkey rsa:2048 -keyout "$PKI/$name.key" -subj "$subject" \
    -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -out "$PKI/$name.crt" \
    -extfile <(printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n' "$ext") \
    2>/dev/null
  rm -f "$PKI/$name.csr"
}

setup_pki() {
  log "creating the PKI (CA, serving and client certificates, service-account key)"
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  openssl req -x509 -new -nodes -newkey rsa:2048 -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -days 3650 -subj "/CN=drillbook-box-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  local client='extendedKeyUsage=clientAuth'
  cert apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,IP:$SVC_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
  # The API server's identity towards the kubelet (logs, exec); system:masters passes the
  # kubelet's webhook authorization.
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  cert admin "/O=system:masters/CN=box-admin" "$client"
  # The kubelet's client identity: the Node authorizer and NodeRestriction key on it.
  cert kubelet "/O=system:nodes/CN=system:node:$NODE" "$client"
  # The kubelet's serving certificate, so the API server can verify it (--kubelet-certificate-authority).
  cert kubelet-serving "/CN=$NODE" "extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,DNS:$NODE"
  # The bootstrap RBAC policy binds these user names to their roles.
  cert kube-proxy "/CN=system:kube-proxy" "$client"
  cert kube-controller-manager "/CN=system:kube-controller-manager" "$client"
  cert kube-scheduler "/CN=system:kube-scheduler" "$client"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

# kubeconfig FILE USER CERT NAMESPACE: cluster and context `box`, credentials embedded.
kubeconfig() {
  local file=$1 user=$2 cert=$3 namespace=$4
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: box
  cluster:
    server: $API
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 < "$PKI/$cert.key")
contexts:
- name: box
  context:
    cluster: box
    user: $user
    namespace: $namespace
current-context: box
EOF
  chmod 600 "$file"
}

# --- configuration files -----------------------------------------------------------------------

write_configs() {
  mkdir -p "$CONF" "$BOX_DIR/cni/net.d" "$BOX_DIR/cni/ipam" "$BOX_DIR/selftest"
  kubeconfig "$KUBECONFIG_OUT" box-admin admin "$CHART_NAMESPACE"
  kubeconfig "$CONF/kubelet.kubeconfig" "system:node:$NODE" kubelet default
  kubeconfig "$CONF/kube-proxy.kubeconfig" system:kube-proxy kube-proxy default
  kubeconfig "$CONF/kube-controller-manager.kubeconfig" system:kube-controller-manager kube-controller-manager default
  kubeconfig "$CONF/kube-scheduler.kubeconfig" system:kube-scheduler kube-scheduler default

  # Pods get no resolver at all: there is no cluster DNS and nothing outside may be asked.
  : > "$BOX_DIR/resolv.conf"

  # The pod network: one bridge, host-local addresses, no masquerade. Pods get routes to the
  # node /30 and the Service CIDR only (no default route): a connect to any other address
  # fails in the pod itself with "network unreachable", and nothing is sent.
  cat > "$BOX_DIR/cni/net.d/10-drillbook-box.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "drillbook-box",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$BOX_DIR/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$POD_GW" }]],
        "routes": [{ "dst": "$LINK_CIDR" }, { "dst": "$SVC_CIDR" }]
      }
    }
  ]
}
EOF

  # containerd with its own root, state, socket and runc root, so it shares nothing with a
  # system containerd. restrict_oom_score_adj: no CAP_SYS_RESOURCE here, and without it every
  # sandbox fails with runc "can't get final child's PID from pipe: EOF".
  cat > "$CONF/containerd.toml" <<EOF
version = 2
root = "$BOX_DIR/containerd"
state = "$BOX_RUN/containerd"
[grpc]
  address = "$CTR_SOCK"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$BOX_DIR/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$BOX_RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$BOX_DIR/cni/net.d"
    max_conf_num = 1
EOF

  cat > "$CONF/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
# The API server proves itself with its kubelet client certificate (x509); bearer tokens are
# checked by TokenReview; every request is authorized by SubjectAccessReview.
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_NAME
failSwapOn: false
resolvConf: $BOX_DIR/resolv.conf
clusterDomain: cluster.local
# A DNS Service address that no Service holds: pods get the usual ClusterFirst resolv.conf
# (no "MissingClusterDNS" warning on every pod start) and names never resolve; the address is
# in the Service CIDR, which has no route out of the node.
clusterDNS: ["10.252.0.10"]
# A test node: no disk-pressure evictions and no image garbage collection.
evictionHard:
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
volumePluginDir: $BOX_DIR/kubelet/volume-plugins
rotateCertificates: false
serverTLSBootstrap: false
EOF

  cat > "$CONF/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $CONF/kube-proxy.kubeconfig
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
mode: iptables
clusterCIDR: $POD_CIDR
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  masqueradeAll: false
  syncPeriod: 10s
  minSyncPeriod: 0s
# Zeros leave the global conntrack sysctls (table size, hash size, timeouts) alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

# The kubelet, on start, *writes* six global kernel settings it wants (vm.overcommit_memory=1,
# kernel.panic=10, kernel.panic_on_oops=1, ...) and cannot be told not to (protectKernelDefaults
# only turns the write into a fatal error). This is the host's kernel, so the kubelet runs in a
# mount namespace of its own where those /proc/sys files are bind-mounted over with files that
# already hold the wanted values: it reads them, finds nothing to change, and the host's
# settings stay as they are. Its volume mounts still reach the host (and so containerd/runc)
# through the rshared bind mount of the kubelet root dir made in prepare_kubelet_root.
write_kubelet_wrapper() {
  local shield="$CONF/kernel-shield" key value
  mkdir -p "$shield"
  local wrapper="$CONF/kubelet-wrapper.sh"
  {
    echo '#!/bin/sh'
    echo '# Written by box.sh: run as `unshare --mount --propagation unchanged -- sh THIS kubelet ARGS`.'
    echo 'set -e'
    echo 'mount --make-rprivate /proc'
    for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
      kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
      key=${kv%%=*} value=${kv#*=}
      echo "$value" > "$shield/${key//\//.}"
      echo "mount --bind '$shield/${key//\//.}' /proc/sys/$key"
    done
    echo 'exec "$@"'
  } > "$wrapper"
}

# The kubelet's root dir as an rshared mount point: mounts the kubelet makes below it (secret
# and projected volumes) from its own mount namespace then appear in the host's, where runc
# bind-mounts them into containers.
prepare_kubelet_root() {
  mkdir -p "$BOX_DIR/kubelet"
  if ! mountpoint -q "$BOX_DIR/kubelet"; then
    mount --bind "$BOX_DIR/kubelet" "$BOX_DIR/kubelet"
  fi
  mount --make-rshared "$BOX_DIR/kubelet"
}

# cgroup-root must exist before the kubelet starts; cpuset children need cpus/mems filled in.
prepare_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/; do
    mountpoint -q "$h" || continue
    mkdir -p "$h$CGROUP_NAME"
    if [ -f "${h}cpuset.cpus" ]; then
      [ -s "$h$CGROUP_NAME/cpuset.cpus" ] && [ -n "$(cat "$h$CGROUP_NAME/cpuset.cpus")" ] ||
        cat "${h}cpuset.cpus" > "$h$CGROUP_NAME/cpuset.cpus"
      [ -n "$(cat "$h$CGROUP_NAME/cpuset.mems")" ] ||
        cat "${h}cpuset.mems" > "$h$CGROUP_NAME/cpuset.mems"
    fi
  done
}

# Some paths are fixed whatever the flags: kubelet 1.20 writes pod logs to /var/log/pods (+
# /var/log/containers links) and its device-plugin socket to /var/lib/kubelet/device-plugins;
# containerd's shims put sockets in /run/containerd/s; libcni caches results in /var/lib/cni.
# Note which of those we create, so `down` removes exactly those.
HOST_DIRS=(/var/log/pods /var/log/containers /var/lib/kubelet /var/lib/cni /run/containerd)
note_created_dirs() {
  local d
  for d in "${HOST_DIRS[@]}"; do
    if [ ! -e "$d" ]; then
      echo "$d" >> "$BOX_DIR/created-host-dirs"
    fi
  done
}

# --- components --------------------------------------------------------------------------------

start_control_plane() {
  start etcd etcd --name box --data-dir "$BOX_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster box=http://127.0.0.1:2380 --logger zap --log-outputs stderr
  wait_until 60 "etcd to be healthy" etcd \
    in_node curl -sf --noproxy '*' --max-time 3 http://127.0.0.1:2379/health

  start kube-apiserver "$(k8s_bin kube-apiserver)" \
    --advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port=6443 --insecure-port=0 \
    --etcd-servers=http://127.0.0.1:2379 \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SVC_CIDR" --allow-privileged=true \
    --enable-priority-and-fairness=false --profiling=false --cert-dir="$BOX_DIR/apiserver-certs"
  wait_until 120 "the API server to be ready" kube-apiserver apiserver_ready

  # All default controllers: node-lifecycle (it removes the not-ready taint), cronjob, the
  # service-account token controller (SA key) and the root CA published to pods.
  start kube-controller-manager "$(k8s_bin kube-controller-manager)" \
    --kubeconfig="$CONF/kube-controller-manager.kubeconfig" --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --flex-volume-plugin-dir="$BOX_DIR/kubelet/volume-plugins" \
    --cluster-name=box --leader-elect=false --port=0 --secure-port=0 --profiling=false
  start kube-scheduler "$(k8s_bin kube-scheduler)" \
    --kubeconfig="$CONF/kube-scheduler.kubeconfig" \
    --leader-elect=false --port=0 --secure-port=0 --profiling=false --v=2
}

start_node() {
  start containerd containerd --config "$CONF/containerd.toml"
  wait_until 60 "containerd to answer" containerd ctr --address "$CTR_SOCK" version

  log "importing images"
  "$HERE/images.sh" import "$CTR_SOCK" >&2 || fail containerd "importing the images failed"

  prepare_kubelet_root
  write_kubelet_wrapper
  start kubelet unshare --mount --propagation unchanged -- sh "$CONF/kubelet-wrapper.sh" \
    "$(k8s_bin kubelet)" --config="$CONF/kubelet.yaml" --kubeconfig="$CONF/kubelet.kubeconfig" \
    --container-runtime=remote --container-runtime-endpoint="unix://$CTR_SOCK" \
    --pod-infra-container-image="$PAUSE_IMAGE" \
    --root-dir="$BOX_DIR/kubelet" --cert-dir="$BOX_DIR/kubelet/pki" \
    --hostname-override="$NODE" --node-ip="$NODE_IP" --v=2
  start kube-proxy "$(k8s_bin kube-proxy)" --config="$CONF/kube-proxy.yaml" --v=2
  wait_until 60 "kube-proxy to be healthy" kube-proxy \
    in_node curl -sf --noproxy '*' --max-time 3 http://127.0.0.1:10256/healthz
  log "waiting for node $NODE to be Ready (and untainted)"
  wait_until 180 "node $NODE to be Ready without the not-ready taint" kubelet node_ready
}

# Debian's Prometheus inside the node's netns, scraping every 5 s the pods annotated
# prometheus.io/scrape=true on each declared container port, with namespace, pod, container and
# the pod's labels as target labels. Debian builds it without kubernetes_sd, so pod-targets.sh
# keeps a file_sd list from the API server. One alerting rule, for `alerts` checks, sent to the
# box's Alertmanager, which routes everything to the receiver `on-call` (no integration).
start_prometheus() {
  mkdir -p "$BOX_DIR/prometheus" "$BOX_DIR/alertmanager"
  cat > "$CONF/alertmanager.yaml" <<'EOF'
route: {receiver: on-call, group_wait: 1s, group_interval: 5s, repeat_interval: 1h}
receivers: [{name: on-call}]
EOF
  start prometheus-alertmanager prometheus-alertmanager --config.file="$CONF/alertmanager.yaml" \
    --storage.path="$BOX_DIR/alertmanager" --web.listen-address="$ALERTMANAGER_ADDR" \
    --cluster.listen-address= --log.level=warn
  wait_until 60 "Alertmanager to be ready" prometheus-alertmanager \
    curl -sf --noproxy '*' --max-time 3 "http://$ALERTMANAGER_ADDR/-/ready"
  echo '[]' > "$CONF/pod-targets.json"
  start pod-targets.sh "$HERE/pod-targets.sh" "$CONF/pod-targets.json" "$PKI" "$API"
  cat > "$CONF/prometheus-rules.yaml" <<'EOF'
groups:
  - name: box
    interval: 5s
    rules:
      - alert: LabProxyErrorRateHigh
        expr: >-
          sum by (namespace) (rate(lab_proxy_requests_total{code=~"5.."}[30s]))
          / sum by (namespace) (rate(lab_proxy_requests_total[30s])) > 0.03
        for: 15s
        labels: {severity: warning}
        annotations: {summary: "more than 3 % of the requests-proxy's answers are 5xx"}
EOF
  cat > "$CONF/prometheus.yaml" <<EOF
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: [$CONF/prometheus-rules.yaml]
alerting:
  alertmanagers: [{static_configs: [{targets: ['$ALERTMANAGER_ADDR']}]}]
scrape_configs:
  - job_name: box-pods
    file_sd_configs: [{files: [$CONF/pod-targets.json], refresh_interval: 5s}]
EOF
  start prometheus prometheus --config.file="$CONF/prometheus.yaml" \
    --storage.tsdb.path="$BOX_DIR/prometheus" --storage.tsdb.retention.time=1d \
    --web.listen-address="$PROM_ADDR" --log.level=warn
  wait_until 60 "Prometheus to be ready" prometheus \
    curl -sf --noproxy '*' --max-time 3 "http://$PROM_ADDR/-/ready"
}

# --- self-test ---------------------------------------------------------------------------------

pod_phase() { api GET "/api/v1/namespaces/$SELFTEST_NS/pods/$1" | jq -r .status.phase; }
pod_ready() {
  api GET "/api/v1/namespaces/$SELFTEST_NS/pods/$1" |
    jq -e '[.status.conditions[]? | select(.type == "Ready" and .status == "True")] | length == 1' >/dev/null
}
pod_done() { case "$(pod_phase "$1")" in Succeeded | Failed) return 0 ;; *) return 1 ;; esac; }
sa_token_ready() {
  api GET "/api/v1/namespaces/$SELFTEST_NS/serviceaccounts/default" | jq -e '(.secrets // []) | length > 0' >/dev/null
}
host_reaches() { [ "$(curl -sS --noproxy '*' --max-time 3 "http://$1/")" = box-ok ]; }
sigterm_seen() { [ -s "$BOX_DIR/selftest/sigterm" ]; }

pod_events() {
  api GET "/api/v1/namespaces/$SELFTEST_NS/events" 2>/dev/null |
    jq -r '.items[] | "\(.involvedObject.name): \(.reason): \(.message)"' | tail -n 15 >&2 || true
}

# The web pod: busybox httpd behind a real HTTP readiness probe. On SIGTERM it leaves a mark in
# a hostPath dir, which proves that deleting a pod delivers a real SIGTERM to the container.
WEB_SCRIPT='mkdir -p /www && echo box-ok > /www/index.html
httpd -f -p 8080 -h /www &
pid=$!
trap "echo SIGTERM > /mark/sigterm; kill $pid; exit 0" TERM
echo web-started
wait'

# The client pod: the kubernetes Service (the API server), the web Service (pod -> Service ->
# pod on the same bridge) and an outside address, which must fail in the pod itself.
# (busybox 1.35's `wget -T` segfaults, so `timeout` bounds each try instead.)
CLIENT_SCRIPT='api=$(timeout 5 wget -q -U box-selftest --no-check-certificate -O - "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version" 2>&1) &&
  echo "kubernetes-service: ok $(echo "$api" | tr -d " \n" | head -c 60)" || echo "kubernetes-service: FAIL $api"
i=0
while [ $i -lt 20 ]; do web=$(timeout 3 wget -q -O - "http://$WEB_IP/" 2>&1) && break; i=$((i + 1)); sleep 1; done
[ "$web" = box-ok ] && echo "web-service: ok" || echo "web-service: FAIL $web"
echo "outside: $(timeout 5 wget -q -O - http://192.0.2.1/ 2>&1)"'

selftest() {
  log "self-test: pods, probes, Services, logs, SIGTERM, no way out"
  local web_ip out
  SHOW_EVENTS=1
  rm -f "$BOX_DIR/selftest/sigterm"
  create /api/v1/namespaces "$(jq -n --arg n "$SELFTEST_NS" '{metadata: {name: $n}}')" ||
    fail "" "creating namespace $SELFTEST_NS failed"
  wait_until 60 "the service-account token in $SELFTEST_NS" kube-controller-manager sa_token_ready

  create "/api/v1/namespaces/$SELFTEST_NS/services" "$(jq -n '{
    metadata: {name: "web"},
    spec: {selector: {app: "web"}, ports: [{port: 80, targetPort: 8080}]}}')" ||
    fail "" "creating the web Service failed"
  web_ip=$(api GET "/api/v1/namespaces/$SELFTEST_NS/services/web" | jq -r .spec.clusterIP)

  create "/api/v1/namespaces/$SELFTEST_NS/pods" "$(jq -n --arg img "$BUSYBOX_IMAGE" \
    --arg mark "$BOX_DIR/selftest" --arg script "$WEB_SCRIPT" '{
    metadata: {name: "web", labels: {app: "web"}},
    spec: {
      terminationGracePeriodSeconds: 20,
      containers: [{
        name: "web", image: $img, imagePullPolicy: "Never",
        command: ["/bin/sh", "-c", $script],
        ports: [{containerPort: 8080}],
        readinessProbe: {httpGet: {path: "/", port: 8080}, periodSeconds: 1},
        volumeMounts: [{name: "mark", mountPath: "/mark"}]
      }],
      volumes: [{name: "mark", hostPath: {path: $mark, type: "Directory"}}]
    }}')" || fail "" "creating the web pod failed"
  wait_until 120 "the web pod to be Ready (HTTP readiness probe)" kubelet pod_ready web
  log "web pod Ready (its HTTP readiness probe passes)"

  create "/api/v1/namespaces/$SELFTEST_NS/pods" "$(jq -n --arg img "$BUSYBOX_IMAGE" \
    --arg web "$web_ip" --arg script "$CLIENT_SCRIPT" '{
    metadata: {name: "client"},
    spec: {
      restartPolicy: "Never",
      containers: [{
        name: "client", image: $img, imagePullPolicy: "Never",
        env: [{name: "WEB_IP", value: $web}],
        command: ["/bin/sh", "-c", $script]
      }]
    }}')" || fail "" "creating the client pod failed"
  wait_until 90 "the client pod to finish" kubelet pod_done client
  # `kubectl logs`: API server -> kubelet (client cert, webhook authz) -> containerd.
  out=$(api GET "/api/v1/namespaces/$SELFTEST_NS/pods/client/log") ||
    fail kube-apiserver "reading the client pod's logs through the API server failed"
  printf '%s\n' "$out" | sed 's/^/    /' >&2
  grep -q '^kubernetes-service: ok' <<<"$out" || fail kube-proxy "a pod cannot reach the kubernetes Service ($SVC_IP:443)"
  grep -q '^web-service: ok' <<<"$out" || fail kube-proxy "a pod cannot reach the web Service ($web_ip) (pod -> Service -> pod)"
  grep -q '^outside: .*Network is unreachable' <<<"$out" ||
    fail "" "a pod's connect to an outside address did not fail with 'Network is unreachable'"
  log "pod -> kubernetes Service ok, pod -> Service -> pod ok, pod -> outside: network unreachable"

  wait_until 30 "the web Service $web_ip to answer from the host" kube-proxy host_reaches "$web_ip"
  log "host -> Service $web_ip ok (through kube-proxy in the node)"

  api DELETE "/api/v1/namespaces/$SELFTEST_NS/pods/web" '{"gracePeriodSeconds": 20}' >/dev/null ||
    fail "" "deleting the web pod failed"
  wait_until 25 "the web pod to receive SIGTERM after its delete" kubelet sigterm_seen
  log "pod delete -> SIGTERM delivered"

  # Builds with the vendored reflect2 1.0.1 crashed on any pretty-printed map (curl's
  # User-Agent or ?pretty=true); e2e/control-plane.sh vendors 1.0.2. A crash here fails `up`.
  curl -fsS --noproxy '*' --max-time 20 -A curl/8 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
    --key "$PKI/admin.key" "$API/api/v1/nodes?pretty=true" >/dev/null ||
    fail kube-apiserver "a pretty-printed answer (curl's User-Agent) failed"
  wait_until 10 "the API server to answer after a pretty-printed response" kube-apiserver apiserver_ready
  log "pretty-printed answers ok"

  api DELETE "/api/v1/namespaces/$SELFTEST_NS" >/dev/null || warn "deleting namespace $SELFTEST_NS failed"
  rm -f "$BOX_DIR/selftest/sigterm"
  SHOW_EVENTS=
}

# --- up / down / status ------------------------------------------------------------------------

require() {
  [ "$(id -u)" = 0 ] || { echo "box: must run as root (it creates a netns, mounts, cgroups)" >&2; exit 1; }
  [ "$(uname -s)" = Linux ] || { echo "box: Linux only" >&2; exit 1; }
  local missing=() c
  for c in ip nsenter unshare setsid mountpoint flock openssl curl jq containerd containerd-shim-runc-v2 \
    runc ctr iptables conntrack umoci gcc objcopy etcd prometheus prometheus-alertmanager; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] ||
    missing+=("/usr/lib/cni/{bridge,host-local,loopback}")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "box: missing: ${missing[*]}" >&2
    echo "box: apt-get install -y containerd runc containernetworking-plugins iptables conntrack umoci busybox-static etcd-server gcc libc6-dev binutils openssl curl jq iproute2 util-linux prometheus prometheus-alertmanager" >&2
    exit 1
  fi
}

healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  [ -e "$NETNS_PATH" ] && apiserver_ready && node_ready
}

# Anything of a box present (netns, pid files, state)?
anything_there() {
  [ -e "$NETNS_PATH" ] || [ -d "$BOX_RUN" ] || [ -d "$BOX_DIR" ] || ip link show "$HOST_IF" >/dev/null 2>&1
}

install_chart() {
  if [ -x "$HERE/install-chart.sh" ]; then
    log "installing the chart (e2e/box/install-chart.sh)"
    KUBECONFIG="$KUBECONFIG_OUT" BOX_DIR="$BOX_DIR" PATH="$TOOLS_BIN:$PATH" "$HERE/install-chart.sh" 9>&- ||
      fail "" "e2e/box/install-chart.sh failed"
  fi
}

up() {
  require
  local started=$SECONDS
  K8S_CACHE=$("$ROOT/e2e/control-plane.sh") || fail "" "e2e/control-plane.sh failed"
  local b
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    [ -x "$(k8s_bin "$b")" ] || fail "" "$(k8s_bin "$b") is missing"
  done

  if [ -d "$BOX_RUN" ] && [ -f "$PKI/admin.crt" ] && healthy; then
    log "the box is already up; reusing it"
    "$HERE/images.sh" import "$CTR_SOCK" >&2 || fail containerd "importing the images failed"
  else
    if anything_there; then
      log "a stopped or half-started box is here; removing it first"
      down
    fi
    mkdir -p "$BOX_DIR" "$BOX_RUN" "$LOGS"
    chmod 700 "$BOX_DIR"
    note_created_dirs
    setup_network
    setup_pki
    write_configs
    prepare_cgroups
    start_control_plane
    start_node
    start_prometheus
    create /api/v1/namespaces "$(jq -n --arg n "$CHART_NAMESPACE" '{metadata: {name: $n}}')" ||
      fail "" "creating namespace $CHART_NAMESPACE failed"
    selftest
    log "box up in $((SECONDS - started))s"
  fi
  create /api/v1/namespaces "$(jq -n --arg n "$CHART_NAMESPACE" '{metadata: {name: $n}}')" ||
    fail "" "creating namespace $CHART_NAMESPACE failed"
  install_chart
  cat >&2 <<EOF
==> the box is up: node $NODE ($NODE_IP), pods $POD_CIDR, Services $SVC_CIDR
    context box, namespace $CHART_NAMESPACE; logs in $LOGS; images: $("$HERE/images.sh" refs | tr '\n' ' ')
    containerd: ctr --address $CTR_SOCK --namespace k8s.io images ls
    Prometheus (scrapes the annotated pods): http://$PROM_ADDR, its Alertmanager: http://$ALERTMANAGER_ADDR
    the cutover system: releases tracebloc (stateless) and tracebloc-legacy, one namespace each
    run the seed drills:  make demo-k8s
    or one of them:       drillbook run scenarios/box/proxy-restart.yaml --context box
    see what it would do: drillbook plan scenarios/box/proxy-restart.yaml --context box
    remove it with: make box-down   (or $0 down)
EOF
  env_line
}

env_line() { echo "export KUBECONFIG=$KUBECONFIG_OUT"; }

# Every pid in our cgroup tree (the pods' processes).
cgroup_pids() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$CGROUP_NAME" ] || continue
    find "$h$CGROUP_NAME" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}

# Every process of ours outside the pods: anything in the node netns (containerd, its shims,
# kubelet, kube-proxy, the control plane), and, should the netns be gone already, our daemons
# recognised by name *and* a command line that names our state dirs.
our_pids() {
  local ino="" d pid comm cmd
  [ -e "$NETNS_PATH" ] && ino=$(stat -L -c %i "$NETNS_PATH" 2>/dev/null || true)
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    if [ -n "$ino" ] && [ "$(stat -L -c %i "$d/ns/net" 2>/dev/null)" = "$ino" ]; then
      echo "$pid"
      continue
    fi
    comm=$(cat "$d/comm" 2>/dev/null) || continue
    case "$comm" in
      etcd | kube-apiserver | kube-controller | kube-scheduler | kubelet | kube-proxy | containerd | containerd-shim*) ;;
      *) continue ;;
    esac
    cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null) || continue
    case "$cmd" in *"$BOX_DIR/"* | *"$BOX_RUN/"*) echo "$pid" ;; esac
  done
}

# kill_and_wait SIGNAL SECONDS LISTER: signal everything LISTER prints until it prints nothing.
kill_and_wait() {
  local sig=$1 limit=$2 lister=$3 pids deadline=$((SECONDS + $2))
  while :; do
    pids=$($lister)
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086
    kill "-$sig" $pids 2>/dev/null || true
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.5
  done
}

# Mount points under our dirs, deepest first (mountinfo escapes spaces as \040).
our_mounts() {
  awk '{ print $5 }' /proc/self/mountinfo | sed 's/\\040/ /g' |
    awk -v a="$BOX_DIR" -v b="$BOX_RUN" '$0 == a || index($0, a "/") == 1 || $0 == b || index($0, b "/") == 1' |
    awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}

# Sockets containerd's shims made in the fixed /run/containerd/s: named by the hash of
# "<containerd address>/<namespace>/<id>", so ours are computed from our task dirs.
remove_shim_sockets() {
  local dir="$BOX_RUN/containerd/io.containerd.runtime.v2.task" nsdir id h
  [ -d "$dir" ] || return 0
  for nsdir in "$dir"/*/; do
    [ -d "$nsdir" ] || continue
    for id in $(ls "$nsdir"); do
      h=$(printf '%s' "$CTR_SOCK/$(basename "$nsdir")/$id" | sha256sum | cut -d' ' -f1)
      rm -f "/run/containerd/s/$h"
    done
  done
}

# Our entries in the fixed host paths; the dirs themselves if our `up` created them.
remove_host_leftovers() {
  local dir="$BOX_RUN/containerd/io.containerd.runtime.v2.task" id
  remove_shim_sockets
  rm -f /var/lib/cni/results/drillbook-box-*
  if [ -d "$dir/k8s.io" ]; then
    for id in $(ls "$dir/k8s.io"); do rm -f "/var/lib/cni/results/cni-loopback-$id-lo"; done
  fi
  [ -f "$BOX_DIR/created-host-dirs" ] || return 0
  while IFS= read -r m; do
    case "$m" in
      /var/log/pods | /var/log/containers | /var/lib/cni) rm -rf "$m" ;;
      # Not while something else (a system kubelet or containerd) uses it.
      /var/lib/kubelet) pgrep -x kubelet >/dev/null || rm -rf "$m" ;;
      /run/containerd) [ -S /run/containerd/containerd.sock ] || rm -rf "$m" ;;
    esac
  done < "$BOX_DIR/created-host-dirs"
}

down() {
  [ "$(id -u)" = 0 ] || { echo "box: must run as root" >&2; exit 1; }
  log "removing the box"
  local c pid
  # The node agents first, so nothing restarts the pods being killed.
  for c in kubelet kube-proxy; do
    if alive "$c"; then kill -TERM "$(cat "$(pidfile "$c")")" 2>/dev/null || true; fi
  done
  for c in kubelet kube-proxy; do
    for _ in $(seq 1 20); do alive "$c" || break; sleep 0.25; done
  done
  # The pods' processes (pause included), by cgroup; repeated, as a dying shell may still fork.
  kill_and_wait KILL 10 cgroup_pids || warn "processes remain in our cgroups: $(cgroup_pids | tr '\n' ' ')"
  # containerd, shims, control plane: politely, then not.
  kill_and_wait TERM 8 our_pids || kill_and_wait KILL 5 our_pids ||
    warn "processes remain: $(our_pids | tr '\n' ' ')"

  # Mounts: containerd's overlay rootfs and shm, kubelet volumes, pod netns files, the rshared
  # kubelet root. Lazy unmount only if a plain one fails.
  local m pass
  for pass in 1 2 3; do
    while IFS= read -r m; do
      [ -n "$m" ] || continue
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(our_mounts)
    [ -z "$(our_mounts)" ] && break
  done
  [ -z "$(our_mounts)" ] || warn "mounts remain: $(our_mounts | tr '\n' ' ')"

  # Cgroups, leaves first.
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$CGROUP_NAME" ] || continue
    find "$h$CGROUP_NAME" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [ -d "$h$CGROUP_NAME" ] && warn "cgroup $h$CGROUP_NAME remains"
  done

  # The netns takes the veth pair, the pod bridge, the node's routes and every iptables rule
  # kubelet and kube-proxy made with it; the host routes go with dbox0.
  if [ -e "$NETNS_PATH" ]; then ip netns delete "$NETNS" || warn "ip netns delete $NETNS failed"; fi
  if ip link show "$HOST_IF" >/dev/null 2>&1; then ip link delete "$HOST_IF" || true; fi
  ip route del "$POD_CIDR" 2>/dev/null || true
  ip route del "$SVC_CIDR" 2>/dev/null || true

  remove_host_leftovers
  rm -rf "$BOX_RUN" "$BOX_DIR"
  log "box removed"
}

status() {
  local ok=0 c pid
  if [ -e "$NETNS_PATH" ]; then echo "netns: $NETNS present"; else echo "netns: $NETNS absent"; ok=1; fi
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then
      pid=$(cat "$(pidfile "$c")")
      echo "$c: running (pid $pid)"
    else
      echo "$c: not running"
      ok=1
    fi
  done
  if [ -f "$PKI/admin.crt" ] && apiserver_ready 2>/dev/null; then
    echo "apiserver: ready at $API"
    if node_ready 2>/dev/null; then echo "node: $NODE Ready"; else echo "node: $NODE not Ready"; ok=1; fi
  else
    echo "apiserver: not ready"
    ok=1
  fi
  if [ "$ok" = 0 ]; then echo "box: healthy"; env_line; else echo "box: not healthy"; fi
  return "$ok"
}

# (Sourcing the file defines the functions only, for debugging one step at a time.)
[ "${BASH_SOURCE[0]}" = "$0" ] || return 0
# One `up`/`down` at a time (CI and a developer, or two make targets, may overlap).
lock() {
  [ "$(id -u)" = 0 ] || { echo "box: must run as root (it creates a netns, mounts, cgroups)" >&2; exit 1; }
  exec 9>"$BOX_RUN.lock"
  flock -w 900 9 || { echo "box: another box.sh up/down still runs after 15 minutes" >&2; exit 1; }
}

case "${1:-}" in
  up) lock; up ;;
  down) lock; down ;;
  status) status ;;
  env) env_line ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
