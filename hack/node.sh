#!/usr/bin/env bash
# The local cluster's one real node: containerd (Debian's 1.6, CRI with runc), the CNI
# bridge, kubelet and kube-proxy (iptables) from the pinned Kubernetes release, and
# CoreDNS (kubernetes plugin) serving cluster.local. hack/control-plane.sh drives it when
# started with --real-node; run by hand only to clean up:
#
#   hack/node.sh claim PLANE_DIR  make the node PLANE_DIR's: fails while another running
#                                 control plane has it; removes what an earlier run left
#   hack/node.sh address          create the node address (before kube-apiserver binds to
#                                 it) and print it
#   hack/node.sh up PLANE_DIR     start the node against the control plane in PLANE_DIR
#   hack/node.sh down [PLANE_DIR] stop everything and remove every trace (idempotent); with
#                                 PLANE_DIR, only if the node is that control plane's
#   hack/node.sh status           exits non-zero unless every part runs
#
# There is one node per machine: its state lives at fixed paths (/var/lib/verdant-node,
# /run/verdant-node), so that `down` finds whatever an earlier run left. Logs go to
# PLANE_DIR/node/. Addresses (nothing else is ever sent traffic):
#   10.245.255.1/32  the node (a port-less bridge verdant0): kube-apiserver, kubelet, DNS
#   10.245.0.0/24    pods, on the CNI bridge verdant-cni0 (routes only to 10.245/16, 10.96/16)
#   10.96.0.0/16     Services; 10.96.0.1 kube-apiserver, 10.96.0.10 kube-dns
#
# Images are never pulled: hack/images.sh imports them (pause included) into containerd.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/pki.sh
source "$REPO/hack/lib/pki.sh"

NODE_NAME=verdant-node
NODE_IP=10.245.255.1
NODE_LINK=verdant0
POD_SUBNET=10.245.0.0/24
CLUSTER_CIDR=10.245.0.0/16
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
CNI_BRIDGE=verdant-cni0
# The node's extended resource (there are no GPUs: the agent's simulated backend fakes them).
NODE_GPUS="${VERDANT_NODE_GPUS:-4}"
NODE_SITE="${VERDANT_NODE_SITE:-local}"
NODE_GPU_MODEL=NVIDIA-H100-80GB-HBM3
ROOT=/var/lib/verdant-node
RUN=/run/verdant-node
SOCK=$RUN/containerd.sock
RUNC_ROOT=$RUN/runc
# kubelet puts every pod under this cgroup (per controller), so `down` can find them all.
CGROUP_ROOT=verdant-node

log() { echo "[node] $*" >&2; }

tools_bin() { echo "$("$REPO/hack/tools.sh" --print-dir)/bin"; }

OWNER_FILE=$RUN/plane
# The machine's settings the node changes (we set the first two; the kubelet sets the
# rest, as on any node), and where `address` saves them for `down` to put back.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables kernel.panic kernel.panic_on_oops
  vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
SYSCTLS_SAVED=$RUN/sysctls.orig

ctr_k8s() { ctr --address "$SOCK" --namespace k8s.io "$@"; }

pid_alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

wait_for() { # desc, seconds, logfile, command...
  local desc=$1 limit=$2 logfile=$3; shift 3
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then
      log "timed out after ${limit}s waiting for $desc; last lines of $logfile:"
      tail -n 30 "$logfile" >&2 || true
      exit 1
    fi
    sleep 0.3
  done
}

start_bg() { # name, logdir, command...
  local name=$1 logdir=$2; shift 2
  nohup "$@" >"$logdir/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

preflight() {
  local missing=()
  for c in containerd containerd-shim-runc-v2 runc ctr iptables ip openssl; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  [[ -x /usr/lib/cni/bridge ]] || missing+=("/usr/lib/cni/bridge (containernetworking-plugins)")
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "error: the real node needs ${missing[*]}; run hack/prereqs.sh" >&2
    exit 1
  fi
  [[ $(id -u) -eq 0 ]] || { echo "error: the real node needs root (containerd, kubelet, iptables)" >&2; exit 1; }
  # Below the kubelet's eviction threshold (evictionHard below) the node reports
  # DiskPressure and evicts every pod it starts: say so now, not after a rollout timeout.
  mkdir -p "$ROOT"
  local free_mib
  free_mib=$(df -Pm "$ROOT" | awk 'NR == 2 {print $4}')
  if [[ $free_mib -lt 2048 ]]; then
    echo "error: only ${free_mib} MiB free on the file system of $ROOT; the real node needs 2 GiB (the kubelet evicts pods under 1 GiB): free some space (e.g. cargo target folders)" >&2
    exit 1
  fi
}

# --- claim -----------------------------------------------------------------------------

owner() { cat "$OWNER_FILE" 2>/dev/null || true; }

claim() {
  local plane=$1 current
  current="$(owner)"
  # (A killed process may linger a moment as a zombie: that one is gone.)
  if [[ -n "$current" && "$current" != "$plane" && -f "$current/kube-apiserver.pid" ]] &&
    ps -o stat= -p "$(cat "$current/kube-apiserver.pid")" 2>/dev/null | grep -qv Z; then
    echo "error: the real node belongs to the running control plane $current;" \
      "stop it first (hack/control-plane.sh down $current)" >&2
    exit 1
  fi
  down
  mkdir -p "$RUN"
  echo "$plane" >"$OWNER_FILE"
}

# --- address ---------------------------------------------------------------------------

address() {
  if [[ ! -f "$SYSCTLS_SAVED" ]]; then
    mkdir -p "$RUN"
    sysctl -e "${SYSCTLS[@]}" 2>/dev/null | sed 's/ = /=/' >"$SYSCTLS_SAVED.tmp"
    mv "$SYSCTLS_SAVED.tmp" "$SYSCTLS_SAVED"
  fi
  # The kernel has no dummy links here; a bridge without ports holds a local address as well.
  if ! ip link show "$NODE_LINK" >/dev/null 2>&1; then
    ip link add "$NODE_LINK" type bridge
  fi
  ip addr replace "$NODE_IP/32" dev "$NODE_LINK"
  ip link set "$NODE_LINK" up
  sysctl -qw net.ipv4.ip_forward=1
  # Bridged pod-to-pod traffic goes through iptables, so a Service reply is un-DNATed.
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
  echo "$NODE_IP"
}

# --- up --------------------------------------------------------------------------------

write_containerd_config() {
  cat >"$ROOT/containerd.toml" <<TOML
version = 2
root = "$ROOT/containerd"
state = "$RUN/containerd"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # The machine lacks CAP_SYS_RESOURCE: no container may ask for a lower oom_score_adj.
  restrict_oom_score_adj = true
  enable_selinux = false
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$RUNC_ROOT"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$ROOT/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = ""
TOML
}

write_cni_config() {
  mkdir -p "$ROOT/cni/net.d" "$ROOT/cni/networks"
  cat >"$ROOT/cni/net.d/10-verdant.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "verdant",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$ROOT/cni/networks",
        "ranges": [[{"subnet": "$POD_SUBNET"}]],
        "routes": [{"dst": "$CLUSTER_CIDR"}, {"dst": "$SERVICE_CIDR"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}

write_kubelet_config() {
  local pki=$1
  cat >"$ROOT/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
# Only kube-apiserver (a certificate of the cluster CA) reaches the kubelet's API.
authorization: {mode: AlwaysAllow}
# The machine has cgroup v1 (kubelet 1.36 needs to be told) and no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
containerRuntimeEndpoint: unix://$SOCK
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
# Pods get only the cluster DNS; there is no upstream resolver to forward to.
resolvConf: ""
podLogsDir: $ROOT/pod-logs
oomScoreAdj: 0
failSwapOn: false
maxPods: 110
serializeImagePulls: false
# Images are imported, never pulled: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# The node shares the developer's disk with cargo's build folders: evict only when the
# disk is really about to fill (a percentage of a big disk is gigabytes that builds use).
evictionHard: {memory.available: 100Mi, nodefs.available: 1Gi, imagefs.available: 1Gi}
shutdownGracePeriod: 0s
YAML
}

write_kube_proxy_config() {
  cat >"$ROOT/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $ROOT/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $CLUSTER_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts only on the node address, never on the machine's own interfaces.
nodePortAddresses: ["$NODE_IP/32"]
oomScoreAdj: 0
iptables:
  # Every Service connection is SNATed, so replies come back through the node even
  # between two pods on the same bridge.
  masqueradeAll: true
  localhostNodePorts: false
  syncPeriod: 30s
  minSyncPeriod: 0s
# Leave the machine's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

write_corefile() {
  cat >"$ROOT/Corefile" <<COREFILE
.:53 {
    bind $NODE_IP
    errors
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $ROOT/coredns.kubeconfig verdant-local
        pods insecure
        ttl 5
        fallthrough in-addr.arpa ip6.arpa
    }
}
COREFILE
}

# The kube-dns Service, backed by CoreDNS on the node address (an EndpointSlice of our own,
# as the Service has no selector), and CoreDNS's read access to the API.
apply_dns_objects() {
  "$(tools_bin)/kubectl" --kubeconfig "$1" apply --server-side --force-conflicts -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "verdant:coredns"}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: verdant-node.sh
addressType: IPv4
endpoints:
- addresses: [$NODE_IP]
  conditions: {ready: true}
  nodeName: $NODE_NAME
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
YAML
}

# kubelet wants its cgroup root to exist in every controller.
make_cgroup_root() {
  local c
  for c in /sys/fs/cgroup/*/; do
    [[ -f "$c/cgroup.procs" && "$c" != */unified/ ]] || continue
    mkdir -p "$c$CGROUP_ROOT"
    if [[ -f "$c/cpuset.cpus" ]]; then
      cat "$c/cpuset.cpus" >"$c$CGROUP_ROOT/cpuset.cpus"
      cat "$c/cpuset.mems" >"$c$CGROUP_ROOT/cpuset.mems"
    fi
  done
}

load_images() {
  if [[ -n "${VERDANT_NODE_IMAGE_TARS:-}" ]]; then
    # For debugging the node without hack/images.sh: a space-separated list of OCI tars.
    local tar
    for tar in $VERDANT_NODE_IMAGE_TARS; do ctr_k8s images import "$tar" >/dev/null; done
  else
    # VERDANT_NODE_IMAGES: the images to load (default: all that hack/images.sh builds).
    # shellcheck disable=SC2086
    "$REPO/hack/images.sh" load --address "$SOCK" ${VERDANT_NODE_IMAGES:-}
  fi
  ctr_k8s images check name==registry.k8s.io/pause:3.10 2>/dev/null | grep -q complete ||
    { log "the pause image registry.k8s.io/pause:3.10 is not in containerd after loading the images"; exit 1; }
}

up() {
  local plane=$1
  [[ -f "$plane/pki/ca.key" && -f "$plane/apiserver-port" ]] ||
    { echo "error: $plane is not a control plane folder (hack/control-plane.sh up)" >&2; exit 2; }
  preflight
  "$REPO/hack/tools.sh" kubelet kube-proxy coredns
  local bin pki=$plane/pki logs=$plane/node server admin=$plane/kubeconfig
  bin="$(tools_bin)"
  server="https://$NODE_IP:$(cat "$plane/apiserver-port")"
  [[ "$(owner)" == "$plane" ]] || { echo "error: claim the node for $plane first (hack/node.sh claim)" >&2; exit 2; }
  mkdir -p "$ROOT" "$logs"
  address >/dev/null
  local started=$SECONDS

  client_cert "$pki" kubelet "system:node:$NODE_NAME" system:nodes
  client_cert "$pki" kube-proxy system:kube-proxy
  client_cert "$pki" coredns verdant:coredns
  cert_kubeconfig "$pki" kubelet "$server" "$ROOT/kubelet.kubeconfig"
  cert_kubeconfig "$pki" kube-proxy "$server" "$ROOT/kube-proxy.kubeconfig"
  cert_kubeconfig "$pki" coredns "$server" "$ROOT/coredns.kubeconfig"
  write_containerd_config
  write_cni_config
  write_kubelet_config "$pki"
  write_kube_proxy_config
  write_corefile
  make_cgroup_root

  log "starting containerd ($SOCK)"
  start_bg containerd "$logs" containerd --config "$ROOT/containerd.toml"
  wait_for "containerd" 30 "$logs/containerd.log" ctr --address "$SOCK" version
  load_images

  log "starting kubelet (node $NODE_NAME at $NODE_IP)"
  start_bg kubelet "$logs" "$bin/kubelet" --config "$ROOT/kubelet.yaml" \
    --kubeconfig "$ROOT/kubelet.kubeconfig" --root-dir "$ROOT/kubelet" --cert-dir "$ROOT/kubelet-pki" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --node-labels "type=real,verdant.dev/site=$NODE_SITE,nvidia.com/gpu.present=true,nvidia.com/gpu.product=$NODE_GPU_MODEL" \
    --v 1
  log "starting kube-proxy (iptables)"
  start_bg kube-proxy "$logs" "$bin/kube-proxy" --config "$ROOT/kube-proxy.yaml" --v 1
  apply_dns_objects "$admin"
  log "starting CoreDNS on $NODE_IP:53 (Service kube-dns, $DNS_IP)"
  start_bg coredns "$logs" "$bin/coredns" -conf "$ROOT/Corefile"

  local kubectl=("$bin/kubectl" --kubeconfig "$admin")
  wait_for "node $NODE_NAME Ready" 120 "$logs/kubelet.log" \
    "${kubectl[@]}" wait --for condition=Ready --timeout 5s "node/$NODE_NAME"
  # An extended resource, as the Kubernetes docs advertise one: the kubelet copies
  # capacity to allocatable and keeps both.
  "${kubectl[@]}" patch node "$NODE_NAME" --subresource status --type json \
    -p "[{\"op\": \"add\", \"path\": \"/status/capacity/nvidia.com~1gpu\", \"value\": \"$NODE_GPUS\"}]" >/dev/null
  wait_for "nvidia.com/gpu in the node's allocatable" 60 "$logs/kubelet.log" bash -c \
    "[[ \"\$('${kubectl[0]}' --kubeconfig '$admin' get node $NODE_NAME -o jsonpath='{.status.allocatable.nvidia\\.com/gpu}')\" == '$NODE_GPUS' ]]"
  wait_for "kube-proxy" 60 "$logs/kube-proxy.log" curl -sf http://127.0.0.1:10256/healthz
  wait_for "CoreDNS" 60 "$logs/coredns.log" curl -sf http://127.0.0.1:18181/ready
  log "node $NODE_NAME ready in $((SECONDS - started))s ($NODE_GPUS nvidia.com/gpu, site $NODE_SITE)"
}

# --- down ------------------------------------------------------------------------------

stop_pidfile() {
  local name=$1 pid
  [[ -f "$RUN/$name.pid" ]] || return 0
  pid="$(cat "$RUN/$name.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid"
}

kill_containers() {
  local id pid
  # The shims of this containerd (their command line names its socket) and the containers
  # they run, through runc's state.
  if [[ -S "$SOCK" ]] && pid_alive containerd; then
    for id in $(timeout 10 ctr --address "$SOCK" --namespace k8s.io tasks ls -q 2>/dev/null); do
      timeout 10 ctr_k8s tasks kill --all --signal SIGKILL "$id" >/dev/null 2>&1 || true
    done
  fi
  stop_pidfile containerd
  for pid in $(pgrep -f -- "-address $SOCK" || true); do kill -9 "$pid" 2>/dev/null || true; done
  if [[ -d "$RUNC_ROOT" ]]; then
    local ns
    for ns in "$RUNC_ROOT"/*/; do
      [[ -d "$ns" ]] || continue
      for id in $(runc --root "$ns" list -q 2>/dev/null); do
        runc --root "$ns" kill --all "$id" KILL 2>/dev/null || true
        runc --root "$ns" delete --force "$id" 2>/dev/null || true
      done
    done
  fi
  # Whatever is still in the node's cgroups (a container whose runc state was lost).
  local c dir
  for c in /sys/fs/cgroup/*/; do
    [[ -d "$c$CGROUP_ROOT" ]] || continue
    for pid in $(find "$c$CGROUP_ROOT" -name cgroup.procs -exec cat {} + 2>/dev/null); do
      kill -9 "$pid" 2>/dev/null || true
    done
  done
  for c in /sys/fs/cgroup/*/; do
    [[ -d "$c$CGROUP_ROOT" ]] || continue
    for _ in $(seq 50); do
      while read -r dir; do rmdir "$dir" 2>/dev/null || true; done < <(find "$c$CGROUP_ROOT" -depth -type d)
      [[ -d "$c$CGROUP_ROOT" ]] || break
      sleep 0.1
    done
    [[ ! -d "$c$CGROUP_ROOT" ]] || log "warning: could not remove cgroup $c$CGROUP_ROOT"
  done
}

# Pod network namespaces (those with an address in the pod range), and the CNI plugins'
# cached results for them.
delete_netns() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    if ip -n "$ns" -4 -o addr show 2>/dev/null | grep -q " ${POD_SUBNET%.*/*}\."; then
      ip netns delete "$ns" 2>/dev/null || true
      grep -lsF "/var/run/netns/$ns\"" /var/lib/cni/results/* | xargs -r rm -f
    fi
  done
}

unmount_state() {
  local target
  while read -r target; do
    umount -l "$target" 2>/dev/null || true
  done < <(awk -v a="$ROOT" -v b="$RUN" 'index($5, a) == 1 || index($5, b) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
}

# The chains kubelet, kube-proxy and the CNI plugins made (KUBE-*, CNI-*), and the jumps to
# them from the built-in chains. No other Kubernetes runs on this machine.
delete_chains() {
  local cmd=$1 table rule chain
  command -v "$cmd" >/dev/null || return 0
  for table in filter nat mangle; do
    "$cmd" -t "$table" -S 2>/dev/null >/dev/null 2>&1 || continue
    while read -r rule; do
      # shellcheck disable=SC2086
      "$cmd" -t "$table" ${rule/#-A/-D} 2>/dev/null || true
    done < <("$cmd" -t "$table" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j (KUBE|CNI)-')
    for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ { print $2 }'); do
      "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ { print $2 }'); do
      "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

down() {
  stop_pidfile coredns
  stop_pidfile kube-proxy
  stop_pidfile kubelet
  kill_containers
  delete_netns
  unmount_state
  local proxy; proxy="$(tools_bin)/kube-proxy"
  [[ ! -x "$proxy" ]] || "$proxy" --cleanup >/dev/null 2>&1 || true
  delete_chains iptables
  delete_chains ip6tables
  local link
  for link in "$CNI_BRIDGE" "$NODE_LINK"; do
    ! ip link show "$link" >/dev/null 2>&1 || ip link delete "$link"
  done
  if [[ -f "$SYSCTLS_SAVED" ]]; then
    sysctl -q -w $(cat "$SYSCTLS_SAVED") >/dev/null 2>&1 || log "warning: could not restore $(tr '\n' ' ' <"$SYSCTLS_SAVED")"
  fi
  # kubelet's links to the container logs (they point into $ROOT).
  find /var/log/containers -maxdepth 1 -lname "$ROOT/*" -delete 2>/dev/null || true
  rm -rf /var/lib/cni/results/verdant-* "$ROOT" "$RUN"
}

# Exits non-zero unless every part of the node runs.
status() {
  local c stopped=0
  for c in containerd kubelet kube-proxy coredns; do
    if pid_alive "$c"; then echo "$c: running (pid $(cat "$RUN/$c.pid"))"; else echo "$c: stopped"; stopped=1; fi
  done
  return "$stopped"
}

usage() { sed -n '2,26p' "$0" >&2; exit 2; }
plane_arg() { [[ -n "${1:-}" ]] || usage; mkdir -p "$1"; cd "$1" && pwd; }

case "${1:-}" in
  claim) preflight; claim "$(plane_arg "${2:-}")" ;;
  address) preflight; address ;;
  up) up "$(plane_arg "${2:-}")" ;;
  down)
    if [[ -z "${2:-}" || ! -d "$2" || "$(owner)" == "$(cd "$2" && pwd)" || -z "$(owner)" ]]; then
      down; log "stopped; state removed"
    fi ;;
  status) status ;;
  *) usage ;;
esac
