#!/usr/bin/env bash
# Builds the testbed's control plane from the Go module proxy and caches the binaries:
# kube-apiserver, kube-controller-manager, kube-scheduler and kubectl (from k8s.io/kubernetes),
# etcd (from go.etcd.io/etcd/server/v3, the version Kubernetes pins) and helm. Idempotent: exits
# early when every binary is cached.
#
# The Rust `testbed install` command (and every test fixture) runs this script, embedded at compile
# time, after writing the committed wrapper modules (crates/testbed/go/) to $MODULE_DIR, so people
# and CI share one install path. Environment it is given:
#   K8S_VERSION  the Kubernetes version to build (default: the committed module's)
#   MODULE_DIR   a copy of crates/testbed/go/ (generate.sh, kubernetes/, helm/)
#   BIN_DIR      where the binaries go
#
# Why a shell script: every step is a `go` invocation; nothing here needs more than bash.
set -euo pipefail

: "${MODULE_DIR:?MODULE_DIR is not set: run this through \`testbed install\`}"
: "${BIN_DIR:?BIN_DIR is not set: run this through \`testbed install\`}"
# Both are required only by the modules' tools, so `go mod tidy` marks them `// indirect`.
COMMITTED_VERSION="$(sed -n 's#^[[:space:]]*k8s\.io/kubernetes v\([0-9.]*\).*#\1#p' "$MODULE_DIR/kubernetes/go.mod")"
K8S_VERSION="${K8S_VERSION:-$COMMITTED_VERSION}"
K8S_VERSION="${K8S_VERSION#v}"
HELM_VERSION="$(sed -n 's#^[[:space:]]*helm\.sh/helm/v[0-9]* v\([0-9.]*\).*#\1#p' "$MODULE_DIR/helm/go.mod")"
[ -n "$COMMITTED_VERSION" ] && [ -n "$HELM_VERSION" ] || die "no k8s.io/kubernetes or helm requirement in $MODULE_DIR/*/go.mod"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm)

say() { printf '[testbed install] %s\n' "$*" >&2; }
die() { printf '[testbed install] error: %s\n' "$*" >&2; exit 1; }

have_binaries() {
  for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || return 1; done
}

if have_binaries; then
  say "control plane $K8S_VERSION already cached in $BIN_DIR"
  exit 0
fi

# Go: the machine's own (>= 1.24, which the wrapper modules' `tool` directives need).
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || die "go is not on PATH: the testbed builds Kubernetes from Go modules and needs Go 1.24 or later"
GO_MINOR="$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
[ -n "$GO_MINOR" ] && [ "$GO_MINOR" -ge 24 ] || die "$(go version) is too old: Go 1.24 or later is needed"
# Module-mode builds outside any VCS checkout; stamping comes from ldflags below, not from git.
export GOFLAGS="-buildvcs=false -mod=mod"
export GO111MODULE=on

STARTED=$(date +%s)
if [ "$K8S_VERSION" != "$COMMITTED_VERSION" ]; then
  say "Kubernetes $K8S_VERSION requested (committed: $COMMITTED_VERSION): generating its wrapper modules"
  bash "$MODULE_DIR/generate.sh" "$K8S_VERSION" "$HELM_VERSION" "$MODULE_DIR" \
    || die "could not generate the wrapper module for Kubernetes $K8S_VERSION (is it served by the Go module proxy?)"
fi

say "downloading the sources of Kubernetes $K8S_VERSION, etcd and helm $HELM_VERSION (go mod download; about 1.5 GB the first time)"
(cd "$MODULE_DIR/kubernetes" && go mod download) || die "go mod download failed for the control-plane module"
(cd "$MODULE_DIR/helm" && go mod download) || die "go mod download failed for the helm module"
DOWNLOADED=$(date +%s)
say "sources ready in $((DOWNLOADED - STARTED)) s"

MINOR="${K8S_VERSION#*.}"; MINOR="${MINOR%%.*}"
MAJOR="${K8S_VERSION%%.*}"
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# What Kubernetes' own build (hack/lib/version.sh) stamps: without it /version reports minor "0",
# and clients that gate features on the server version (CronJob timeZone) turn them off.
LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS="$LDFLAGS -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=$MAJOR -X $pkg.gitMinor=$MINOR"
  LDFLAGS="$LDFLAGS -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE"
done

mkdir -p "$BIN_DIR"
TMP_BIN="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
trap 'rm -rf "$TMP_BIN"' EXIT
say "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd with $(go version | cut -d' ' -f3) (about 15-25 minutes on 2 cores the first time)"
(cd "$MODULE_DIR/kubernetes" && go build -trimpath -ldflags "$LDFLAGS" -o "$TMP_BIN/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl) || die "building the control plane failed (output above)"
# etcd at the version Kubernetes itself pins and tests against (its package path ends in /v3, so
# the binary is named explicitly).
(cd "$MODULE_DIR/kubernetes" && go build -trimpath -ldflags "-s -w" -o "$TMP_BIN/etcd" go.etcd.io/etcd/server/v3) \
  || die "building etcd failed (output above)"
say "building helm $HELM_VERSION"
HELM_MAJOR="v${HELM_VERSION%%.*}"
(cd "$MODULE_DIR/helm" && go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/$HELM_MAJOR/internal/version.version=v$HELM_VERSION" \
  -o "$TMP_BIN/helm" "helm.sh/helm/$HELM_MAJOR/cmd/helm") || die "building helm failed (output above)"
for b in "${BINARIES[@]}"; do
  [ -x "$TMP_BIN/$b" ] || die "the build finished but $b was not produced"
  mv -f "$TMP_BIN/$b" "$BIN_DIR/$b"
done
BUILT=$(date +%s)
say "built in $((BUILT - DOWNLOADED)) s; cached in $BIN_DIR"
have_binaries || die "binaries still missing after install"
say "done in $((BUILT - STARTED)) s: $("$BIN_DIR/kubectl" version --client 2>/dev/null | head -n1), etcd $("$BIN_DIR/etcd" --version 2>/dev/null | sed -n 's/^etcd Version: //p'), helm $("$BIN_DIR/helm" version --short 2>/dev/null)"
