#!/usr/bin/env bash
# Builds the box's OCI images with umoci and imports them into the box's containerd.
#
# There is no registry and no docker here, so images are assembled from files this machine
# already has (a static pause built from the Kubernetes source tree, Debian's busybox-static,
# the drillbook binary and its shared libraries), packed by umoci into an OCI layout, and
# imported with `ctr` into containerd's `k8s.io` namespace, where the CRI plugin (and so the
# kubelet) sees them. Pods use `imagePullPolicy: Never`.
#
#   images.sh build [NAME...]  build (or reuse) every image (or those named); prints the refs
#   images.sh import SOCKET    build, then import into the containerd at SOCKET if its copy differs
#   images.sh refs             prints the image refs
#
# Each image is rebuilt only when its inputs change: the hash of the inputs (files and this
# script) is stored beside the cached layout under ~/.cache/drillbook/box-images/<name>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE_ROOT="${DRILLBOOK_CACHE:-$HOME/.cache/drillbook}"
IMAGES_CACHE="$CACHE_ROOT/box-images"
DRILLBOOK_BIN="${DRILLBOOK_BIN:-$ROOT/target/debug/drillbook}"
SELF="${BASH_SOURCE[0]}"

# name|ref. The registry part `box.local` has a dot, so CRI keeps the name as is instead of
# normalising it to docker.io/...
IMAGES=(
  "pause|box.local/pause:3.4.1"
  "busybox|box.local/busybox:1.35"
  "drillbook|box.local/drillbook:dev"
  # Canary candidates for the box's canary bake: the same binary under other tags, one healthy
  # and one whose lab proxy answers 5 % of its traffic with 503 (LAB_FAIL_RATIO in its config).
  "drillbook-candidate|box.local/drillbook:candidate"
  "drillbook-fails-5pct|box.local/drillbook:candidate-fails-5pct"
)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'images.sh: %s\n' "$*" >&2; exit 1; }

# --- inputs -----------------------------------------------------------------------------------

k8s_src() {
  local d
  d=$(ls -d "$CACHE_ROOT"/k8s-src/kubernetes-*/ 2>/dev/null | head -n1) || true
  [ -n "$d" ] && [ -f "$d/build/pause/linux/pause.c" ] ||
    die "no Kubernetes source tree under $CACHE_ROOT/k8s-src (run e2e/control-plane.sh first)"
  printf '%s\n' "${d%/}"
}

ensure_drillbook_bin() {
  if [ ! -x "$DRILLBOOK_BIN" ]; then
    log "building drillbook ($DRILLBOOK_BIN is missing)"
    (cd "$ROOT" && cargo build --locked >&2)
  fi
  [ -x "$DRILLBOOK_BIN" ] || die "$DRILLBOOK_BIN still missing after cargo build"
}

# Shared libraries and the dynamic loader the binary needs, one absolute path per line.
shared_libs() {
  ldd "$1" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u
}

# The hash of an image's inputs: this script plus the input files' contents.
inputs_hash() {
  local name=$1
  {
    sha256sum "$SELF"
    case "$name" in
      pause) sha256sum "$(k8s_src)/build/pause/linux/pause.c"; gcc --version | head -n1 ;;
      busybox) sha256sum "$(busybox_bin)" ;;
      drillbook*)
        sha256sum "$DRILLBOOK_BIN" /etc/ssl/certs/ca-certificates.crt
        shared_libs "$DRILLBOOK_BIN" | while read -r lib; do sha256sum "$(readlink -f "$lib")"; done
        ;;
    esac
  } | sha256sum | cut -d' ' -f1
}

busybox_bin() {
  # Debian's busybox-static installs /bin/busybox (usrmerge: /usr/bin/busybox); it must be static.
  local b
  for b in /bin/busybox /usr/bin/busybox; do
    if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then printf '%s\n' "$b"; return; fi
  done
  die "no static busybox (apt-get install busybox-static)"
}

# --- rootfs recipes (each fills "$1", the bundle's rootfs) ------------------------------------

etc_files() {
  local rootfs=$1
  mkdir -p "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  cat > "$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat > "$rootfs/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
  mkdir -p "$rootfs/home/nonroot"
  chown 65532:65532 "$rootfs/home/nonroot"
}

rootfs_pause() {
  local rootfs=$1 work=$2
  # Same flags as build/pause/Makefile: static, so the image needs nothing but the binary.
  gcc -Os -Wall -Werror -static -DVERSION=v3.4.1-drillbook-box \
    -o "$work/pause" "$(k8s_src)/build/pause/linux/pause.c"
  strip "$work/pause"
  install -m 0755 "$work/pause" "$rootfs/pause"
}

rootfs_busybox() {
  local rootfs=$1 bb applet
  bb=$(busybox_bin)
  etc_files "$rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/www"
  install -m 0755 "$bb" "$rootfs/bin/busybox"
  # Relative links, so they resolve inside the container whatever the host layout is.
  for applet in $("$bb" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
  done
}

rootfs_drillbook() {
  local rootfs=$1 lib
  ensure_drillbook_bin
  etc_files "$rootfs"
  mkdir -p "$rootfs/usr/local/bin"
  # Debug info makes up most of a debug build; the symbol table stays, so backtraces keep names.
  objcopy --strip-debug "$DRILLBOOK_BIN" "$rootfs/usr/local/bin/drillbook"
  chmod 0755 "$rootfs/usr/local/bin/drillbook"
  # Every library at the path ldd resolved it to (the loader at the binary's PT_INTERP path).
  shared_libs "$DRILLBOOK_BIN" | while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
  # The system trust store, as distroless ships it: the HTTP clients (Prometheus queries) load
  # it when they are built, and refuse to build without one.
  [ -f /etc/ssl/certs/ca-certificates.crt ] ||
    die "no /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"
  mkdir -p "$rootfs/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # Prove the rootfs is self-contained before shipping it.
  chroot "$rootfs" /usr/local/bin/drillbook --version >/dev/null ||
    die "drillbook does not run inside its own rootfs (a missing library?)"
}

image_config() {
  local name=$1 image=$2
  case "$name" in
    pause)
      # Upstream's pause image runs as 65535 too.
      umoci config --image "$image" --no-history --config.entrypoint /pause --config.user 65535:65535 ;;
    busybox)
      umoci config --image "$image" --no-history --config.env PATH=/bin --config.cmd /bin/sh ;;
    drillbook*)
      umoci config --image "$image" --no-history \
        --config.entrypoint /usr/local/bin/drillbook --config.cmd --help \
        --config.user 65532:65532 --config.workingdir /tmp \
        --config.env PATH=/usr/local/bin:/usr/bin:/bin ;;
  esac
  if [ "$name" = drillbook-fails-5pct ]; then
    umoci config --image "$image" --no-history --config.env LAB_FAIL_RATIO=0.05
  fi
}

# --- build / import ---------------------------------------------------------------------------

# Builds image NAME (ref REF) unless its cached layout matches the inputs' hash.
build_one() {
  local name=$1 ref=$2 tag=${2##*:} dir="$IMAGES_CACHE/$1" hash
  [[ "$name" = drillbook* ]] && ensure_drillbook_bin
  hash=$(inputs_hash "$name")
  if [ -f "$dir/hash" ] && [ "$(cat "$dir/hash")" = "$hash" ] && [ -f "$dir/image.tar" ]; then
    return 0
  fi
  log "building image $ref"
  rm -rf "$dir"
  mkdir -p "$dir/work"
  local layout="$dir/oci" bundle="$dir/work/bundle"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  # The drillbook-* variants share drillbook's rootfs; only their config differs.
  "rootfs_${name%%-*}" "$bundle/rootfs" "$dir/work"
  umoci repack --history.created_by "drillbook e2e/box/images.sh ($name)" --image "$layout:$tag" "$bundle"
  image_config "$name" "$layout:$tag"
  umoci gc --layout "$layout"
  tar -C "$layout" -cf "$dir/image.tar" .
  rm -rf "$dir/work"
  echo "$hash" > "$dir/hash"
}

# The manifest digest the cached layout holds for REF's tag.
layout_digest() {
  local name=$1 tag=${2##*:}
  jq -r --arg t "$tag" \
    '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' \
    "$IMAGES_CACHE/$name/oci/index.json"
}

import_one() {
  local sock=$1 name=$2 ref=$3 want have
  local ctr=(ctr --address "$sock" --namespace k8s.io)
  want=$(layout_digest "$name" "$ref")
  have=$("${ctr[@]}" images ls "name==$ref" 2>/dev/null | awk -v r="$ref" '$1 == r { print $3 }')
  if [ -n "$want" ] && [ "$have" = "$want" ]; then
    return 0
  fi
  log "importing $ref into the box's containerd"
  "${ctr[@]}" images import --base-name "${ref%:*}" "$IMAGES_CACHE/$name/image.tar" >/dev/null
  have=$("${ctr[@]}" images ls "name==$ref" | awk -v r="$ref" '$1 == r { print $3 }')
  [ "$have" = "$want" ] || die "after import, containerd has $ref at '${have:-nothing}', not $want"
}

# `ctr images import` can also create `import-<date>:<tag>` refs; CRI may resolve the sandbox
# image to one of those (and then never to ours), so none may stay.
drop_import_refs() {
  local sock=$1 ref
  for ref in $(ctr --address "$sock" --namespace k8s.io images ls -q | grep '^import-' || true); do
    ctr --address "$sock" --namespace k8s.io images rm "$ref" >/dev/null
  done
}

main() {
  local cmd=${1:-build} entry name ref
  case "$cmd" in
    refs)
      for entry in "${IMAGES[@]}"; do echo "${entry#*|}"; done ;;
    build)
      shift
      for entry in "${IMAGES[@]}"; do
        name=${entry%%|*}
        # Optional names restrict the build (`images.sh build pause busybox`).
        if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
        build_one "$name" "${entry#*|}"
        echo "${entry#*|}"
      done ;;
    import)
      local sock=${2:?usage: images.sh import CONTAINERD_SOCKET}
      [ -S "$sock" ] || die "no containerd socket at $sock"
      for entry in "${IMAGES[@]}"; do
        name=${entry%%|*}; ref=${entry#*|}
        build_one "$name" "$ref"
        import_one "$sock" "$name" "$ref"
      done
      drop_import_refs "$sock"
      ;;
    *) die "usage: images.sh build | import CONTAINERD_SOCKET | refs" ;;
  esac
}

main "$@"
