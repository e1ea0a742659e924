#!/usr/bin/env bash
# Builds (once) a real Kubernetes control plane from Debian bookworm's `kubernetes` source
# package (1.20.2, vendored) and caches the binaries under ~/.cache/drillbook/k8s-<version>/.
# There is no kind/k3d and no internet here; Debian's sources and Go toolchain are what we have.
# Prints the cache directory on success. Idempotent: a complete cache is reused as is.
set -euo pipefail

VERSION=1.20.2
CACHE="${DRILLBOOK_CACHE:-$HOME/.cache/drillbook}/k8s-$VERSION"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

# Bumped whenever the build itself changes, so an older cache is rebuilt.
#   2: vendored reflect2 1.0.1 replaced by Debian's 1.0.2 (1.0.1 built with Go >= 1.18 makes the
#      API server crash in mapiterinit whenever it pretty-prints a response with a map).
BUILD_REVISION=2

have_all() {
  for b in "${BINARIES[@]}"; do [ -x "$CACHE/bin/$b" ] || return 1; done
  [ "$(cat "$CACHE/build-revision" 2>/dev/null)" = "$BUILD_REVISION" ] || return 1
  command -v etcd >/dev/null 2>&1
}

log() { printf '==> %s\n' "$*" >&2; }

# The box's pause image is built from this source tree (e2e/box/images.sh), so a cache with
# the binaries but without the tree (cleaned to save disk) gets the tree back, not a rebuild.
src_root="${DRILLBOOK_CACHE:-$HOME/.cache/drillbook}/k8s-src"
have_source() { ls "$src_root"/kubernetes-*/build/pause/linux/pause.c >/dev/null 2>&1; }

if have_all && have_source; then
  echo "$CACHE"
  exit 0
fi
if have_all; then
  log "binaries cached; fetching the kubernetes $VERSION source tree again (the box's pause image)"
  mkdir -p "$src_root"
  (cd "$src_root" && apt-get source -qq kubernetes >&2)
  have_source || { echo "no pause.c after apt-get source" >&2; exit 1; }
  echo "$CACHE"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive

if ! grep -rqs 'deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
  log "adding a deb-src entry for bookworm main"
  cat > /etc/apt/sources.list.d/drillbook-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq >&2
fi

log "installing build tools and etcd"
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends golang-go rsync etcd-server dpkg-dev make \
  golang-github-modern-go-reflect2-dev >&2
# The Debian package starts etcd on :2379; tests run their own on ephemeral ports.
(systemctl stop etcd 2>/dev/null || service etcd stop 2>/dev/null || true) >/dev/null 2>&1

work="${DRILLBOOK_CACHE:-$HOME/.cache/drillbook}/k8s-src"
mkdir -p "$work"
cd "$work"
if ! ls -d kubernetes-*/ >/dev/null 2>&1; then
  log "fetching the kubernetes $VERSION source package"
  apt-get source -qq kubernetes >&2
fi
src=$(ls -d kubernetes-*/ | head -n1)
cd "$src"

# reflect2 1.0.1 reads Go's runtime map internals in a way Go 1.18+ broke; 1.0.2 is the fix, and
# Debian ships it. The vendor tree is only read by `-mod=vendor`, so swapping the files is enough.
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -f "$reflect2/reflect2.go" ] || { echo "no reflect2 sources at $reflect2" >&2; exit 1; }
rm -f vendor/github.com/modern-go/reflect2/*.go
cp "$reflect2"/*.go vendor/github.com/modern-go/reflect2/
rm -f vendor/github.com/modern-go/reflect2/*_test.go

log "building ${BINARIES[*]} (20-30 minutes on 2 cores)"
export GOFLAGS=-mod=vendor GO111MODULE=on GOCACHE="$work/go-cache" GOPATH="$work/gopath"
make WHAT="$(printf 'cmd/%s ' "${BINARIES[@]}")" >&2

mkdir -p "$CACHE/bin"
for b in "${BINARIES[@]}"; do
  found=$(find _output -type f -name "$b" -perm -u+x | head -n1)
  [ -n "$found" ] || { echo "build produced no $b" >&2; exit 1; }
  # Replaced by rename: a running box may be executing the old binary.
  cp "$found" "$CACHE/bin/$b.new"
  mv -f "$CACHE/bin/$b.new" "$CACHE/bin/$b"
done
echo "$BUILD_REVISION" >"$CACHE/build-revision"
have_all
echo "$CACHE"
