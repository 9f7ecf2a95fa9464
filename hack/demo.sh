#!/usr/bin/env bash
# `make demo`: the whole system on one machine.
#   1. builds the operator and the agent, starts the local control plane;
#   2. creates KWOK GPU nodes in three sites: solar (Greensboro TMY replayed), wind (real
#      turbines, 2010 weather replayed) and mixed (Piedmont PVGIS TMY, solar + wind);
#   3. starts the operator and one simulated agent per node (each with a ServiceAccount
#      token bound to an agent pod on its node, as in a cluster);
#   4. submits TrainingJobs drawn from the Microsoft ITP GPU job trace, in scaled time;
#   5. prints the dashboard URL and the kubectl commands to watch.
# Weather replays VERDANT_DEMO_SPEEDUP times faster than real time (default 120: a day in
# 12 minutes), and the operator's clock runs as fast (its flags: hack/demo/operator.args).
# With VERDANT_DEMO_NODE=real (`make demo NODE=real`) the control plane also starts the
# machine's real node (hack/node.sh) and the operator and the agent run from the Helm chart,
# in pods on that node, with images built here (hack/images.sh); the KWOK nodes' simulated
# agents then report to the operator through the chart's Service.
# `make demo-down` (hack/demo.sh down) stops it all.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$REPO/.verdant"
export KUBECONFIG="$STATE/kubeconfig"
kubectl="$("$REPO/hack/tools.sh" --print-dir)/bin/kubectl"
HTTP_ADDR="${VERDANT_DEMO_HTTP_ADDR:-127.0.0.1:8080}"
INGEST_ADDR="${VERDANT_DEMO_INGEST_ADDR:-127.0.0.1:8081}"
SPEEDUP="${VERDANT_DEMO_SPEEDUP:-120}"
NODES_PER_SITE="${VERDANT_DEMO_NODES_PER_SITE:-12}"
JOBS="${VERDANT_DEMO_JOBS:-60}"
TRACE="${VERDANT_DEMO_TRACE:-$REPO/hack/demo/itp-cluster-trace.csv}"
SITES=(solar wind mixed)
NODE_MODE="${VERDANT_DEMO_NODE:-kwok}"
RELEASE=verdant
RELEASE_NAMESPACE=verdant-system
BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug"

step() { echo ">> $*" >&2; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {
  if [[ -f "$1" ]]; then
    kill "$(cat "$1")" 2>/dev/null || true
    rm -f "$1"
  fi
}

# The demo's operator flags (hack/demo/operator.args), one per line.
operator_flags() {
  grep -v -e '^#' -e '^$' "$REPO/hack/demo/operator.args" |
    sed -e "s|__SPEEDUP__|$SPEEDUP|" -e "s|__REPO__|$REPO|"
}

# The operator as a process on this machine; sets OPERATOR_URL and INGEST_URL.
start_operator_process() {
  OPERATOR_URL="http://$HTTP_ADDR"
  INGEST_URL="http://$INGEST_ADDR"
  if alive "$STATE/operator.pid"; then
    step "operator already running (pid $(cat "$STATE/operator.pid"))"
    return 0
  fi
  local flags
  mapfile -t flags < <(operator_flags)
  nohup "$BIN/verdant-operator" run --http-addr "$HTTP_ADDR" "${flags[@]}" \
    --ingest-addr "$INGEST_ADDR" --database-url "sqlite://$STATE/verdant.db" \
    --agent-service-account "$RELEASE_NAMESPACE:verdant-agent" \
    >"$STATE/operator.log" 2>&1 &
  echo $! >"$STATE/operator.pid"
  step "operator started (log: $STATE/operator.log)"
}

# The operator and the agent from the Helm chart, in pods on the real node; sets
# OPERATOR_URL and INGEST_URL to the chart's Service (kube-proxy routes this machine's
# traffic to a ClusterIP as it does a pod's). The operator reads the demo's weather files
# from the repository, mounted read-only at the same path.
install_chart() {
  local helm flag flags set_flags=() i=0
  helm="$("$REPO/hack/tools.sh" --print-dir)/bin/helm"
  mapfile -t flags < <(operator_flags)
  for flag in "${flags[@]}"; do
    case "$flag" in
      # Flags the chart renders itself take the chart's values.
      --cycle-seconds=*) set_flags+=(--set "operator.scheduling.cycleSeconds=${flag#*=}") ;;
      --site-status-seconds=*) set_flags+=(--set "operator.forecast.siteStatusSeconds=${flag#*=}") ;;
      *) set_flags+=(--set-string "operator.extraArgs[$i]=$flag"); i=$((i + 1)) ;;
    esac
  done
  step "installing the Helm chart: the operator and the agent in pods on the real node"
  "$helm" upgrade --install "$RELEASE" "$REPO/helm/verdant" --kubeconfig "$KUBECONFIG" \
    --namespace "$RELEASE_NAMESPACE" --create-namespace --wait --timeout 5m \
    --set operator.image.pullPolicy=Never --set agent.image.pullPolicy=Never \
    --set operator.nodeSelector.type=real \
    --set agent.backend=simulated --set agent.nvidia.runtimeClassName= \
    --set agent.podResourcesDir=/var/lib/verdant-node/kubelet/pod-resources \
    --set agent.bufferHostPath=/var/lib/verdant-node/agent-buffer \
    --set database.sqlite.persistence.enabled=false \
    --set-json "operator.extraVolumes=[{\"name\":\"repo\",\"hostPath\":{\"path\":\"$REPO\",\"type\":\"Directory\"}}]" \
    --set-json "operator.extraVolumeMounts=[{\"name\":\"repo\",\"mountPath\":\"$REPO\",\"readOnly\":true}]" \
    "${set_flags[@]}" >/dev/null
  local ip
  ip="$("$kubectl" get service "$RELEASE-operator" -n "$RELEASE_NAMESPACE" -o jsonpath='{.spec.clusterIP}')"
  OPERATOR_URL="http://$ip:8080"
  INGEST_URL="http://$ip:9090"
}

up() {
  local plane_flags=()
  case "$NODE_MODE" in
    kwok)
      step "building verdant-operator and verdant-agent (first time: several minutes)"
      cargo build -q -p verdant-operator -p verdant-agent ;;
    real)
      step "building the operator and agent images and the real node (first time: several minutes)"
      cargo build -q -p verdant-operator -p verdant-agent
      "$REPO/hack/tools.sh" helm
      export VERDANT_IMAGES_PROFILE=debug
      "$REPO/hack/images.sh" build --no-cargo operator agent pause
      export VERDANT_NODE_IMAGES="operator agent pause"
      plane_flags=(--real-node) ;;
    *) echo "VERDANT_DEMO_NODE must be kwok or real, not '$NODE_MODE'" >&2; exit 2 ;;
  esac
  "$REPO/hack/control-plane.sh" up "$STATE" "${plane_flags[@]}"
  mkdir -p "$STATE/agents"

  for site in "${SITES[@]}"; do
    "$REPO/hack/fake-nodes.sh" "$KUBECONFIG" "$site" "$NODES_PER_SITE" 8
  done
  # The simulated agents' tokens are the agent ServiceAccount's; with the real node the
  # chart creates it.
  if [[ "$NODE_MODE" == kwok ]]; then
    "$kubectl" create namespace "$RELEASE_NAMESPACE" >/dev/null 2>&1 || true
    "$kubectl" create serviceaccount verdant-agent -n "$RELEASE_NAMESPACE" >/dev/null 2>&1 || true
  fi

  step "sites replay their weather ${SPEEDUP}× faster than real time; the operator's clock runs as fast"
  sed "s/__SPEEDUP__/$SPEEDUP/" "$REPO/hack/demo/sites.yaml" | "$kubectl" apply -f - >/dev/null

  if [[ "$NODE_MODE" == real ]]; then install_chart; else start_operator_process; fi

  step "starting one simulated agent per node"
  local port=9400
  for node in $("$kubectl" get nodes -l type=kwok -o name | sed 's|node/||'); do
    port=$((port + 1))
    local pidfile="$STATE/agents/$node.pid"
    alive "$pidfile" && continue
    # The agent pod this node's token is bound to: the operator checks that the pod of a
    # token runs on the node its report names.
    cat <<POD | "$kubectl" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: verdant-agent-$node, namespace: verdant-system, labels: {app: verdant-agent}}
spec:
  nodeName: $node
  serviceAccountName: verdant-agent
  containers: [{name: agent, image: verdant-agent}]
POD
    "$kubectl" create token verdant-agent -n verdant-system --audience verdant --duration 12h \
      --bound-object-kind Pod --bound-object-name "verdant-agent-$node" >"$STATE/agents/$node.token"
    nohup "$BIN/verdant-agent" run --backend simulated --node-name "$node" \
      --operator-url "$INGEST_URL" --token-file "$STATE/agents/$node.token" \
      --metrics-addr "127.0.0.1:$port" --buffer-dir "$STATE/agents/$node.buffer" \
      >"$STATE/agents/$node.log" 2>&1 &
    echo $! >"$pidfile"
  done

  if ! alive "$STATE/submitter.pid"; then
    if [[ -f "$TRACE" ]]; then
      step "submitting $JOBS TrainingJobs from the ITP trace (log: $STATE/submitter.log)"
      nohup python3 "$REPO/hack/demo/submit_trace.py" "$TRACE" --jobs "$JOBS" --speedup "$SPEEDUP" \
        --kubectl "$kubectl" >"$STATE/submitter.log" 2>&1 &
      echo $! >"$STATE/submitter.pid"
    else
      step "no trace at $TRACE; applying docs/examples jobs instead"
      "$kubectl" apply -f "$REPO/docs/examples/trainingjob-2x8.yaml" -f "$REPO/docs/examples/trainingjob-greenonly.yaml" >/dev/null
    fi
  fi

  sleep 10
  "$kubectl" get esite
  echo
  "$kubectl" get tj
  cat <<MSG

Verdant is running: $(( ${#SITES[@]} * NODES_PER_SITE )) KWOK GPU nodes in ${#SITES[@]} sites, one simulated agent per node.
  Dashboard:  $OPERATOR_URL/        (JSON: $OPERATOR_URL/api/v1/jobs)
  Metrics:    $OPERATOR_URL/metrics
Watch it:
  export KUBECONFIG=$KUBECONFIG
  $kubectl get tj -w
  $kubectl get esite -w
  $kubectl describe tj \$($kubectl get tj -o name | head -1 | cut -d/ -f2)
  $kubectl get events --sort-by .lastTimestamp
A demo day lasts $(awk "BEGIN { print 1440 / $SPEEDUP }") minutes: evening comes at the solar site after about half of it.
More: $kubectl apply -f $REPO/docs/examples/   (each file's first comment says what it needs)
Stop everything with: make demo-down
MSG
}

down() {
  stop_pidfile "$STATE/submitter.pid"
  for pidfile in "$STATE"/agents/*.pid; do
    [[ -e "$pidfile" ]] && stop_pidfile "$pidfile"
  done
  stop_pidfile "$STATE/operator.pid"
  "$REPO/hack/control-plane.sh" down "$STATE"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: hack/demo.sh [up|down]" >&2; exit 2 ;;
esac
