#!/usr/bin/env bash
# Installs the Debian packages Verdant's build and tests need, when they are missing.
# Go (1.26) and Rust are expected on the machine; everything else is installed here.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
# The dashboard tests: a real Prometheus (prometheus, promtool) and headless Chromium.
# Verdant starts its own Prometheus processes; the package's service is not used.
{ command -v prometheus && command -v promtool; } >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
# make images (hack/images.sh): the trainer's Debian root, the static pause binary, and
# the image tests' private containerd.
command -v debootstrap >/dev/null || need+=(debootstrap)
[[ -f /usr/lib/x86_64-linux-gnu/libc.a ]] || need+=(libc6-dev)
{ command -v containerd && command -v ctr && command -v runc; } >/dev/null || need+=(containerd runc)
# The local cluster's real node (hack/node.sh): the CNI plugins, and iptables for
# kube-proxy and the kubelet.
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
# The fuzz targets (fuzz/run.sh): libFuzzer is compiled from its C++ sources.
command -v g++ >/dev/null || need+=(g++)
command -v go >/dev/null || { echo "error: Go 1.26 is required (https://go.dev/doc/install)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "error: Rust (cargo) is required (https://rustup.rs)" >&2; exit 1; }
if [[ ${#need[@]} -gt 0 ]]; then
  echo ">> installing ${need[*]} from Debian packages" >&2
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
