#!/usr/bin/env bash
# `make demo`: the local control plane, fake GPU nodes at two sites, the operator, and
# the example jobs and sites; then what to watch. `make demo-down` stops it all.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$REPO/.verdant"
export KUBECONFIG="$STATE/kubeconfig"
kubectl="$("$REPO/hack/tools.sh" --print-dir)/bin/kubectl"
HTTP_ADDR="${VERDANT_DEMO_HTTP_ADDR:-127.0.0.1:8080}"

case "${1:-up}" in
  up)
    echo ">> building verdant-operator" >&2
    cargo build -q -p verdant-operator
    "$REPO/hack/control-plane.sh" up "$STATE"
    "$REPO/hack/fake-nodes.sh" "$KUBECONFIG" solar-a 4 8
    "$REPO/hack/fake-nodes.sh" "$KUBECONFIG" wind-b 4 8
    # No controller-manager here: create the ServiceAccount it would create.
    "$kubectl" create serviceaccount default -n default >/dev/null 2>&1 || true
    if [[ -f "$STATE/operator.pid" ]] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null; then
      echo ">> operator already running (pid $(cat "$STATE/operator.pid"))" >&2
    else
      # Replay sites in docs/examples name their weather files relative to that folder.
      nohup "$REPO/target/debug/verdant-operator" run --http-addr "$HTTP_ADDR" --cycle-seconds 5 \
        --weather-dir "$REPO/docs/examples" >"$STATE/operator.log" 2>&1 &
      echo $! >"$STATE/operator.pid"
      echo ">> operator started (log: $STATE/operator.log)" >&2
    fi
    "$kubectl" apply -f "$REPO/docs/examples/" >/dev/null
    echo ">> waiting for the first scheduling decisions" >&2
    sleep 8
    "$kubectl" get nodes -L verdant.dev/site,nvidia.com/gpu.product
    echo
    "$kubectl" get tj,esite
    echo
    cat <<MSG
Verdant is running. Try:
  export KUBECONFIG=$KUBECONFIG
  $kubectl get tj -w
  $kubectl describe tj llama-finetune
  $kubectl get events --sort-by .lastTimestamp
  curl -s http://$HTTP_ADDR/metrics | grep ^verdant_
Stop everything with: make demo-down
MSG
    ;;
  down)
    if [[ -f "$STATE/operator.pid" ]]; then
      kill "$(cat "$STATE/operator.pid")" 2>/dev/null || true
      rm -f "$STATE/operator.pid"
    fi
    "$REPO/hack/control-plane.sh" down "$STATE"
    ;;
  *) echo "usage: hack/demo.sh [up|down]" >&2; exit 2 ;;
esac
