#!/usr/bin/env bash
# Builds the real Kubernetes components Verdant tests against, from their published Go
# modules (no prebuilt downloads), and caches them outside the repository, keyed by
# version, so later runs take no time.
#
#   hack/tools.sh [NAME ...]        # default: the control plane (etcd kube-apiserver
#                                   # kube-controller-manager kube-scheduler kubectl kwok)
#   hack/tools.sh node              # the real node's kubelet, kube-proxy and coredns
#   hack/tools.sh helm
#   hack/tools.sh kueue             # the Kueue manager, and its CRDs in kueue-<version>/crds
#   hack/tools.sh --print-dir                                     # where binaries live
#
# Versions are pinned in hack/tools/*/go.mod. Set VERDANT_TOOLS_DIR to move the cache.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0
CACHE="${VERDANT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/verdant/tools}"

# name -> module dir, package, version source (module whose version keys the cache)
declare -A MODDIR=(
  [kube-apiserver]=kube [kube-controller-manager]=kube [kube-scheduler]=kube [kubectl]=kube
  [kubelet]=kube [kube-proxy]=kube [coredns]=coredns [etcd]=etcd [kwok]=kwok [helm]=helm
  [kueue]=kueue
)
declare -A PKG=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
  [coredns]=github.com/coredns/coredns
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [etcd]=go.etcd.io/etcd/server/v3
  [kwok]=sigs.k8s.io/kwok/cmd/kwok
  [helm]=helm.sh/helm/v3/cmd/helm
  [kueue]=sigs.k8s.io/kueue/cmd/kueue
)
declare -A VERSIONMOD=(
  [kube-apiserver]=k8s.io/kubernetes [kubectl]=k8s.io/kubernetes
  [kube-controller-manager]=k8s.io/kubernetes [kube-scheduler]=k8s.io/kubernetes
  [kubelet]=k8s.io/kubernetes [kube-proxy]=k8s.io/kubernetes
  [coredns]=github.com/coredns/coredns
  [etcd]=go.etcd.io/etcd/server/v3 [kwok]=sigs.k8s.io/kwok [helm]=helm.sh/helm/v3
  [kueue]=sigs.k8s.io/kueue
)

version_of() {
  local name=$1
  awk -v m="${VERSIONMOD[$name]}" '$1 == m || ($1 == "require" && $2 == m) { print ($1 == "require" ? $3 : $2); exit }' \
    "$REPO/hack/tools/${MODDIR[$name]}/go.mod"
}

bin_path() { echo "$CACHE/$1-$(version_of "$1")/$1"; }

# What the projects' own builds stamp in. Kubernetes: the version the API server reports
# (else v0.0.0-master, which fails a chart's kubeVersion check in `helm install`). helm: its
# version, and the Kubernetes version `helm template` and `helm lint` assume without a
# cluster (else v1.20). Kueue: its version, as its Makefile does.
extra_ldflags() {
  if [[ "${MODDIR[$1]}" == kube ]]; then
    local v; v="$(version_of "$1")"
    echo "-X k8s.io/component-base/version.gitVersion=$v" \
      "-X k8s.io/component-base/version.gitMajor=$(echo "${v#v}" | cut -d. -f1)" \
      "-X k8s.io/component-base/version.gitMinor=$(echo "$v" | cut -d. -f2)" \
      "-X k8s.io/component-base/version.gitTreeState=clean" \
      "-X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitTreeState=clean"
    return 0
  fi
  if [[ "$1" == kueue ]]; then
    echo "-X sigs.k8s.io/kueue/pkg/version.GitVersion=$(version_of kueue)"
    return 0
  fi
  [[ "$1" == helm ]] || return 0
  local k8s minor
  k8s="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$REPO/hack/tools/helm/go.mod")"
  minor="$(echo "$k8s" | cut -d. -f2)"
  echo "-X helm.sh/helm/v3/internal/version.version=$(version_of helm)" \
    "-X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor" \
    "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
}

build() {
  local name=$1 out
  out="$(bin_path "$name")"
  if [[ -x "$out" ]]; then
    return 0
  fi
  command -v go >/dev/null || { echo "error: Go is required to build $name (install Go 1.26)" >&2; exit 1; }
  echo ">> building $name $(version_of "$name") from its Go module (first time only; a few minutes)..." >&2
  local start=$SECONDS tmp
  tmp="$(mktemp -d "$CACHE/.build-$name.XXXXXX")"
  (cd "$REPO/hack/tools/${MODDIR[$name]}" && go build -trimpath -ldflags "-s -w $(extra_ldflags "$name")" -o "$tmp/$name" "${PKG[$name]}")
  if [[ "$name" == kueue ]]; then
    # Kueue's CRDs and webhook manifests, from the same module, beside the binary (the
    # module cache is read-only, hence the chmod).
    local src
    src="$(cd "$REPO/hack/tools/kueue" && go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
    mkdir -p "$tmp/crds"
    cp "$src"/config/components/crd/bases/*.yaml "$tmp/crds/"
    cp "$src/config/components/webhook/manifests.yaml" "$tmp/webhooks.yaml"
    chmod -R u+w "$tmp"
  fi
  mkdir -p "$(dirname "$out")"
  if [[ "$name" == kueue ]]; then
    rm -rf "$(dirname "$out")/crds"
    mv "$tmp/crds" "$tmp/webhooks.yaml" "$(dirname "$out")/"
  fi
  mv "$tmp/$name" "$out"
  rmdir "$tmp"
  echo ">> built $name in $((SECONDS - start))s -> $out" >&2
}

mkdir -p "$CACHE"
if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$CACHE"; exit 0
fi
if [[ "${1:-}" == "--path" ]]; then
  bin_path "$2"; exit 0
fi
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
[[ "${names[*]}" != node ]] || names=(kubelet kube-proxy coredns)
for n in "${names[@]}"; do
  [[ -n "${PKG[$n]:-}" ]] || { echo "error: unknown tool '$n' (known: ${!PKG[*]})" >&2; exit 2; }
  build "$n"
done
# A stable bin folder with links to the pinned versions, for PATH.
mkdir -p "$CACHE/bin"
for n in "${names[@]}"; do ln -sf "$(bin_path "$n")" "$CACHE/bin/$n"; done
