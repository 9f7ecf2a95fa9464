#!/usr/bin/env bash
# A real, local Kubernetes cluster for development and tests: etcd, kube-apiserver (RBAC
# and the Node authorizer on, ServiceAccount token signing configured, so TokenRequest and
# TokenReview work), kube-controller-manager (garbage collection, ServiceAccounts,
# EndpointSlices, node lifecycle, ...), kube-scheduler, and kwok, which runs the fake GPU
# nodes. With --real-node, also the machine's one real node (hack/node.sh: containerd,
# kubelet, kube-proxy, CoreDNS); kube-apiserver then listens on the node address, where
# pods reach it, instead of 127.0.0.1 (see docs/architecture.md).
#
#   hack/control-plane.sh up   DIR [--real-node] [--watch-pid PID]   start (idempotent);
#                                                   kubeconfig at DIR/kubeconfig
#   hack/control-plane.sh down DIR                  stop everything and remove DIR
#   hack/control-plane.sh status DIR
#
# Ports: ETCD_PORT, ETCD_PEER_PORT, APISERVER_PORT, KWOK_PORT (defaults: free ports).
# VERDANT_KWOK_CONFIG (default hack/kwok/stages.yaml) and VERDANT_NODE_MONITOR_GRACE_PERIOD
# (default 120s): the scale bench gives thousands of KWOK nodes a slower heartbeat, and
# the node lifecycle controller a grace period longer than it.
# With --watch-pid, the control plane tears itself down when that process exits, even if
# it crashed or panicked: the test harness uses this.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/pki.sh
source "$REPO/hack/lib/pki.sh"
cmd="${1:-}"; dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || { sed -n '2,19p' "$0" >&2; exit 2; }
shift 2
watch_pid=""
real_node=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --watch-pid) watch_pid="$2"; shift 2 ;;
    --real-node) real_node=1; shift ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
ADMIN_TOKEN_FILE="$dir/admin-token"

log() { echo "[control-plane] $*" >&2; }

alive() { [[ -f "$dir/$1.pid" ]] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

# A free port below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768 and
# up by default) and below NodePorts (30000-32767, the real node's kube-proxy): a port
# that bind(0) handed out and was closed again can be handed to any other socket before the
# component binds it (etcd failed once with "address already in use" so), a port below the
# range cannot. Random, so that control planes starting at once rarely pick the same one.
# verdant_tests::free_port does the same for the tests' processes.
free_port() {
  python3 -c '
import random, socket
for _ in range(200):
    port = random.randint(20000, 29999)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit("no free port in 20000-29999")
'
}

# A wait that ran out: says what for, shows the components' logs, and stops the script.
timed_out() { # desc, seconds
  log "timed out after ${2}s waiting for $1; logs in $dir/*.log"
  tail -n 20 "$dir"/*.log >&2 || true
  exit 1
}

wait_for() { # desc, seconds, command...
  local desc=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || timed_out "$desc" "$limit"
    sleep 0.2
  done
}

start_bg() { # name, command...
  local name=$1; shift
  nohup "$@" >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

stop_one() { # name
  if [[ -f "$dir/$1.pid" ]]; then
    local pid; pid="$(cat "$dir/$1.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/$1.pid"
  fi
}

stop() {
  # The node first: its kubelet and kube-proxy talk to this API server.
  [[ ! -f "$dir/real-node" ]] || "$REPO/hack/node.sh" down "$dir"
  local components=(kwok kube-scheduler kube-controller-manager kube-apiserver etcd)
  [[ -n "${VERDANT_FROM_WATCHDOG:-}" ]] || components+=(watchdog)
  for c in "${components[@]}"; do stop_one "$c"; done
}

# start_on_free_port NAME FIXED_PORT LIMIT_S: runs "launch NAME PORT" and waits up to
# LIMIT_S for "healthy NAME PORT"; sets PORT. The port is picked right before the start
# (FIXED_PORT if set), and picked again, up to 5 times, when the component logs "address
# already in use": between free_port's check and the component's bind, another control
# plane or test process starting at the same moment can take it (kwok did once, its port
# picked ten seconds before it started).
start_on_free_port() {
  local name=$1 fixed=$2 limit=$3 attempt deadline
  for attempt in 1 2 3 4 5; do
    PORT="${fixed:-$(free_port)}"
    launch "$name" "$PORT"
    deadline=$((SECONDS + limit))
    until healthy "$name" "$PORT" >/dev/null 2>&1; do
      if [[ -z "$fixed" ]] && grep -q "address already in use" "$dir/$name.log" 2>/dev/null; then
        log "$name: a port it was given was taken before it bound it (try $attempt of 5); starting it on others"
        stop_one "$name"
        continue 2
      fi
      (( SECONDS < deadline )) || timed_out "$name" "$limit"
      sleep 0.2
    done
    return 0
  done
  log "$name: no free port it could bind after 5 tries; logs in $dir/*.log"
  exit 1
}

certs() {
  [[ -f "$dir/pki/serving.crt" ]] && return 0
  mkdir -p "$dir/pki"
  (
    cd "$dir/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=verdant-local-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout serving.key -out serving.csr 2>/dev/null
    # 10.96.0.1: the kubernetes Service, how pods reach the API server; 10.245.255.1: the
    # real node's address (hack/node.sh), where the API server listens with --real-node.
    printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:10.245.255.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n' >san.ext
    openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile san.ext -out serving.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  # kube-apiserver's identity towards kubelets (which trust the cluster CA), and the
  # controller-manager's and scheduler's, bound to their roles by the default RBAC policy.
  client_cert "$dir/pki" apiserver-kubelet-client kube-apiserver-kubelet-client
  client_cert "$dir/pki" kube-controller-manager system:kube-controller-manager
  client_cert "$dir/pki" kube-scheduler system:kube-scheduler
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$ADMIN_TOKEN_FILE"
  echo "$(cat "$ADMIN_TOKEN_FILE"),verdant-admin,verdant-admin,system:masters" >"$dir/pki/tokens.csv"
}

write_kubeconfig() {
  local server=$1
  cat >"$dir/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: verdant-local
  cluster:
    server: ${server}
    certificate-authority-data: $(base64 -w0 "$dir/pki/ca.crt")
users:
- name: verdant-admin
  user:
    token: $(cat "$ADMIN_TOKEN_FILE")
contexts:
- name: verdant-local
  context:
    cluster: verdant-local
    user: verdant-admin
current-context: verdant-local
KUBECONFIG
}

# The components that listen on a port, started by start_on_free_port. They read up()'s
# locals (bin, api_ip, api_endpoints, etcd_port).
launch() { # name, port
  case "$1" in
    etcd)
      local peer_port="${ETCD_PEER_PORT:-$(free_port)}"
      log "starting etcd on 127.0.0.1:$2"
      start_bg etcd "$bin/etcd" --name verdant --data-dir "$dir/etcd" \
        --listen-client-urls "http://127.0.0.1:$2" --advertise-client-urls "http://127.0.0.1:$2" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "verdant=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn
      ;;
    kube-apiserver)
      log "starting kube-apiserver on https://$api_ip:$2"
      start_bg kube-apiserver "$bin/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address "$api_ip" --advertise-address "$api_ip" --secure-port "$2" \
        --tls-cert-file "$dir/pki/serving.crt" --tls-private-key-file "$dir/pki/serving.key" \
        --client-ca-file "$dir/pki/ca.crt" \
        --token-auth-file "$dir/pki/tokens.csv" \
        --authorization-mode Node,RBAC \
        --kubelet-client-certificate "$dir/pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$dir/pki/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$dir/pki/sa.pub" \
        --service-account-signing-key-file "$dir/pki/sa.key" \
        --api-audiences https://kubernetes.default.svc.cluster.local \
        --service-cluster-ip-range 10.96.0.0/16 \
        --enable-priority-and-fairness=false \
        "${api_endpoints[@]}" \
        --watch-cache=true \
        --v=0
      ;;
    kwok)
      log "starting kwok (fake nodes annotated kwok.x-k8s.io/node=fake)"
      start_bg kwok "$bin/kwok" --kubeconfig "$dir/kubeconfig" \
        --config "${VERDANT_KWOK_CONFIG:-$REPO/hack/kwok/stages.yaml}" \
        --server-address "127.0.0.1:$2"
      ;;
  esac
}

# At most 5 s an answer: on a port taken by another process, a request may hang.
healthy() { # name, port
  case "$1" in
    etcd) curl -sf -m 5 "http://127.0.0.1:$2/health" ;;
    kube-apiserver) curl -sf -m 5 --cacert "$dir/pki/ca.crt" \
      -H "Authorization: Bearer $(cat "$ADMIN_TOKEN_FILE")" "https://$api_ip:$2/readyz" ;;
    kwok) curl -sf -m 5 "http://127.0.0.1:$2/healthz" ;;
  esac
}

up() {
  "$REPO/hack/tools.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok
  local bin; bin="$("$REPO/hack/tools.sh" --print-dir)/bin"
  if alive etcd && alive kube-apiserver && alive kube-controller-manager && alive kube-scheduler \
    && alive kwok && { [[ -z "$real_node" ]] || "$REPO/hack/node.sh" status >/dev/null; }; then
    log "already running; kubeconfig: $dir/kubeconfig"
    return 0
  fi
  stop
  local started=$SECONDS
  # Loopback only, unless pods must reach the API server: then the real node's address
  # (kube-apiserver binds one address), advertised as the kubernetes Service's endpoint.
  local api_ip=127.0.0.1 api_endpoints=(--endpoint-reconciler-type=none)
  if [[ -n "$real_node" ]]; then
    "$REPO/hack/node.sh" claim "$dir"
    api_ip="$("$REPO/hack/node.sh" address)"
    api_endpoints=(--endpoint-reconciler-type=lease)
    # A fresh cluster: the node's pods, leases and the kubernetes Service's endpoint (its
    # port is free-chosen each start) must not outlive the processes that made them.
    rm -rf "$dir/etcd"
    touch "$dir/real-node"
  fi
  certs
  # Started first, so that a start that fails half-way is cleaned up too.
  if [[ -n "$watch_pid" ]]; then
    VERDANT_FROM_WATCHDOG=1 nohup bash -c \
      "while kill -0 $watch_pid 2>/dev/null; do sleep 0.5; done; '$REPO/hack/control-plane.sh' down '$dir'" \
      >/dev/null 2>&1 &
    echo $! >"$dir/watchdog.pid"
  fi
  local etcd_port api_port
  start_on_free_port etcd "${ETCD_PORT:-}" 90; etcd_port=$PORT
  start_on_free_port kube-apiserver "${APISERVER_PORT:-}" 180; api_port=$PORT
  echo "$api_port" >"$dir/apiserver-port"
  write_kubeconfig "https://$api_ip:$api_port"

  # No serving ports (--secure-port 0): many control planes run side by side in the tests.
  cert_kubeconfig "$dir/pki" kube-controller-manager "https://$api_ip:$api_port" "$dir/kube-controller-manager.kubeconfig"
  cert_kubeconfig "$dir/pki" kube-scheduler "https://$api_ip:$api_port" "$dir/kube-scheduler.kubeconfig"
  log "starting kube-controller-manager and kube-scheduler"
  start_bg kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/kube-controller-manager.kubeconfig" --secure-port 0 --leader-elect=false \
    --use-service-account-credentials --service-account-private-key-file "$dir/pki/sa.key" \
    --root-ca-file "$dir/pki/ca.crt" --cluster-name verdant-local \
    --node-monitor-grace-period "${VERDANT_NODE_MONITOR_GRACE_PERIOD:-120s}" \
    --v=0
  start_bg kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig "$dir/kube-scheduler.kubeconfig" --secure-port 0 --leader-elect=false --v=0

  log "installing CRDs"
  KUBECONFIG="$dir/kubeconfig" "$bin/kubectl" apply --server-side --force-conflicts -f "$REPO/crds/" >/dev/null
  wait_for "CRDs to be Established" 30 env KUBECONFIG="$dir/kubeconfig" "$bin/kubectl" wait \
    --for condition=Established --timeout=5s crd/trainingjobs.verdant.dev crd/energysites.verdant.dev
  start_on_free_port kwok "${KWOK_PORT:-}" 30
  # The controller-manager is working once it made the default namespace's ServiceAccount.
  wait_for "kube-controller-manager (the default ServiceAccount)" 120 env KUBECONFIG="$dir/kubeconfig" \
    "$bin/kubectl" get serviceaccount default --namespace default
  [[ -z "$real_node" ]] || "$REPO/hack/node.sh" up "$dir"

  log "ready in $((SECONDS - started))s; export KUBECONFIG=$dir/kubeconfig"
}

case "$cmd" in
  up) up ;;
  down) stop; rm -rf "$dir"; log "stopped and removed $dir" ;;
  status)
    for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
      if alive "$c"; then echo "$c: running (pid $(cat "$dir/$c.pid"))"; else echo "$c: stopped"; fi
    done
    [[ ! -f "$dir/real-node" ]] || "$REPO/hack/node.sh" status || true ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
