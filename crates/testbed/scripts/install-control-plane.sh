#!/usr/bin/env bash
# Installs and builds the testbed's Kubernetes control plane (1.20.2) from Debian bookworm's
# source package, then caches the binaries. Idempotent: exits early when the binaries exist.
#
# Why a shell script: every step is a package-manager or make invocation; the Rust `testbed install`
# command runs this script (embedded at compile time) so there is one install path for people and CI.
set -euo pipefail

K8S_VERSION="1.20.2"
CACHE_ROOT="${OMJOB_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/omjob-testbed}"
BIN_DIR="$CACHE_ROOT/kubernetes-$K8S_VERSION/bin"
SRC_DIR="$CACHE_ROOT/kubernetes-$K8S_VERSION/src"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

say() { printf '[testbed install] %s\n' "$*" >&2; }
die() { printf '[testbed install] error: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" != "0" ]; then
  command -v sudo >/dev/null || die "not root and sudo is missing: run as root or install sudo"
  SUDO="sudo"
fi

have_binaries() {
  for c in "${COMPONENTS[@]}"; do [ -x "$BIN_DIR/$c" ] || return 1; done
  command -v etcd >/dev/null || return 1
}

if have_binaries; then
  say "control plane $K8S_VERSION already cached in $BIN_DIR"
  exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found: the testbed installer needs Debian (bookworm)"

SRC_LIST=/etc/apt/sources.list.d/omjob-testbed-bookworm-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src .*bookworm' /etc/apt/sources.list; then
  say "adding a deb-src entry for Debian bookworm ($SRC_LIST)"
  $SUDO tee "$SRC_LIST" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

say "apt-get update"
$SUDO apt-get update -qq
say "installing golang-go, etcd-server, golang-github-modern-go-reflect2-dev, dpkg-dev, rsync"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
  golang-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev rsync >/dev/null

# The Debian package enables and starts an etcd service on :2379; the testbed runs its own etcd
# per control plane on free ports, so stop the packaged one where a service manager exists.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
  $SUDO systemctl stop etcd || true
fi

mkdir -p "$SRC_DIR"
TREE="$(find "$SRC_DIR" -maxdepth 1 -type d -name "kubernetes-$K8S_VERSION*" | head -n1)"
if [ -z "$TREE" ]; then
  say "fetching the kubernetes $K8S_VERSION source package (apt-get source; a few hundred MB)"
  (cd "$SRC_DIR" && apt-get source -qq "kubernetes=$K8S_VERSION*" >/dev/null 2>&1 || apt-get source -qq kubernetes)
  TREE="$(find "$SRC_DIR" -maxdepth 1 -type d -name "kubernetes-*" | head -n1)"
fi
[ -n "$TREE" ] && [ -d "$TREE/vendor" ] || die "source tree with vendor/ not found under $SRC_DIR"

REFLECT2_NEW=/usr/share/gocode/src/github.com/modern-go/reflect2
REFLECT2_OLD="$TREE/vendor/github.com/modern-go/reflect2"
[ -d "$REFLECT2_NEW" ] || die "$REFLECT2_NEW missing (package golang-github-modern-go-reflect2-dev)"
say "replacing vendored reflect2 v1.0.1 with Debian's 1.0.2 (v1.0.1 crashes the API server on Go >= 1.18)"
find "$REFLECT2_OLD" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) -delete
cp "$REFLECT2_NEW"/*.go "$REFLECT2_OLD"/
find "$REFLECT2_NEW" -maxdepth 1 -name '*.s' -exec cp {} "$REFLECT2_OLD"/ \;
rm -f "$REFLECT2_OLD"/*_test.go

say "building ${COMPONENTS[*]} with $(go version) (about 7-10 minutes on 2 cores)"
WHAT=""
for c in "${COMPONENTS[@]}"; do WHAT="$WHAT cmd/$c"; done
(cd "$TREE" && make WHAT="${WHAT# }" KUBE_VERBOSE=1 >&2)

mkdir -p "$BIN_DIR"
for c in "${COMPONENTS[@]}"; do
  found="$(find "$TREE/_output" -type f -name "$c" -perm -u+x | head -n1)"
  [ -n "$found" ] || die "build finished but $c was not produced"
  install -m 0755 "$found" "$BIN_DIR/$c"
done
say "cached binaries in $BIN_DIR"
# The tree is ~1.5 GB with build outputs; keep only the binaries.
rm -rf "$SRC_DIR"
have_binaries || die "binaries or etcd still missing after install"
say "done"
