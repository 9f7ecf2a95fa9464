#!/usr/bin/env bash
# Evidence on a real NVIDIA GPU, strictly READ-ONLY: runs a prebuilt verdant-agent with the
# NVML backend and checks that the GPU's total-energy counter agrees with its integrated
# power readings within 5 %.
#
#   hack/gpu-evidence.sh /path/to/verdant-agent        # outputs to $OUT/ if set, else ./gpu-evidence/
#
# Build the binary on the development machine first:
#   cargo build --release -p verdant-agent   (target/release/verdant-agent, x86-64 Linux)
#
# What it does, and nothing else:
#   1. `nvidia-smi --query-gpu=...` (if present) for context;
#   2. `verdant-agent sample --backend nvml` (one JSON reading of every GPU);
#   3. 30 s of `verdant-agent run --backend nvml --read-only --no-report --json-out ...`
#      (100 ms sampling, 5 s windows), while a PyTorch fp16 matmul loop loads GPU 0 from
#      second 5 to second 25 if torch with CUDA is importable; /metrics is scraped once
#      under load;
#   4. compares, per GPU, the energy counter's increase with power integrated over the
#      same readings, and prints a verdict.
# It never sets power limits (--read-only; and --no-report means no operator can ask for
# any), clocks, MIG or persistence mode, and never resets a GPU.
set -euo pipefail

AGENT=${1:?usage: hack/gpu-evidence.sh /path/to/verdant-agent}
[[ -x $AGENT ]] || { echo "error: $AGENT is not an executable" >&2; exit 2; }
OUT=${OUT:-$PWD/gpu-evidence}
mkdir -p "$OUT"
RUN_S=30
LOAD_FROM_S=5
LOAD_S=20
METRICS_ADDR=127.0.0.1:19400
log() { echo ">> $*" | tee -a "$OUT/summary.txt" >&2; }
: >"$OUT/summary.txt"

log "verdant-agent: $("$AGENT" --version)"
log "host: $(uname -srm)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,name,uuid,driver_version,power.draw,power.limit,utilization.gpu \
    --format=csv >"$OUT/nvidia-smi.csv" 2>&1 || true
  log "nvidia-smi: $(tail -n +2 "$OUT/nvidia-smi.csv" | wc -l) GPU(s)"
fi

log "1/3 verdant-agent sample --backend nvml --read-only"
if ! NODE_NAME=$(hostname) "$AGENT" sample --backend nvml --read-only >"$OUT/sample.json" 2>"$OUT/sample.log"; then
  log "FAILED: the NVML backend could not read the GPUs:"
  cat "$OUT/sample.log" >&2
  exit 1
fi
python3 - "$OUT/sample.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
s = json.load(open(sys.argv[1]))
for g in s["gpus"]:
    print(f'   GPU {g["index"]} {g["model"]} {g["uuid"]}: {g["powerW"]:.1f} W '
          f'({"instantaneous" if g["powerInstant"] else "1 s average"}), '
          f'energy counter {"%d mJ" % g["energyMj"] if g["energyMj"] is not None else "absent"}, '
          f'limit {g["powerLimitW"]:.0f} W [{g["minPowerLimitW"]:.0f}, {g["maxPowerLimitW"]:.0f}], '
          f'{g["temperatureC"]:.0f} °C, {g["smClockMhz"]} MHz, util {g["gpuUtilPercent"]:.0f} %')
for e in s["errors"]:
    print("   error:", e)
PY

log "2/3 ${RUN_S} s of sampling (100 ms, 5 s windows), read-only, no reporting"
rm -f "$OUT/windows.jsonl"
NODE_NAME=$(hostname) "$AGENT" run --backend nvml --read-only --no-report \
  --json-out "$OUT/windows.jsonl" --sample-interval 100ms --report-window 5s \
  --metrics-addr "$METRICS_ADDR" --buffer-dir "$OUT/buffer" 2>"$OUT/run.log" &
agent_pid=$!
trap 'kill -TERM $agent_pid 2>/dev/null || true' EXIT

load_pid=""
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  (
    sleep "$LOAD_FROM_S"
    exec python3 - "$LOAD_S" <<'PY'
import sys, time, torch
seconds = float(sys.argv[1])
dev = torch.device("cuda:0")
n = 8192
a = torch.randn(n, n, device=dev, dtype=torch.float16)
b = torch.randn(n, n, device=dev, dtype=torch.float16)
start = time.time(); count = 0
while time.time() - start < seconds:
    for _ in range(10):
        c = a @ b
    torch.cuda.synchronize(); count += 10
elapsed = time.time() - start
print(f"{torch.cuda.get_device_name(0)}: {count} fp16 matmuls {n}x{n} in {elapsed:.1f} s, "
      f"{2 * n**3 * count / elapsed / 1e12:.1f} TFLOP/s")
PY
  ) >"$OUT/load.log" 2>&1 &
  load_pid=$!
  log "   load: PyTorch matmul loop on cuda:0 from second ${LOAD_FROM_S} for ${LOAD_S} s"
else
  log "   load: none (torch with CUDA is not importable); the GPUs are measured as they are"
fi

sleep $((LOAD_FROM_S + LOAD_S / 2))
curl -fsS "http://$METRICS_ADDR/metrics" >"$OUT/metrics.txt" 2>/dev/null \
  || python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://$METRICS_ADDR/metrics').read().decode())" >"$OUT/metrics.txt" 2>/dev/null \
  || log "   (could not scrape /metrics)"
sleep $((RUN_S - LOAD_FROM_S - LOAD_S / 2))
kill -TERM "$agent_pid"
wait "$agent_pid" || { log "FAILED: the agent exited with an error"; tail -20 "$OUT/run.log" >&2; exit 1; }
trap - EXIT
if [[ -n $load_pid ]]; then
  wait "$load_pid" || log "   the load generator failed (see load.log)"
  log "   $(tail -1 "$OUT/load.log")"
fi

log "3/3 energy counter vs integrated power"
python3 - "$OUT/windows.jsonl" "$OUT/sample.json" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
windows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sampled = json.load(open(sys.argv[2]))["gpus"]
has_counter = {g["uuid"]: g["energyMj"] is not None for g in sampled}
has_counter_by_index = {g["index"]: g["energyMj"] is not None for g in sampled}
if not windows:
    print("FAIL: no window was written"); sys.exit(1)
per_gpu = {}
print(f'   {"window":>15} {"GPU":>3} {"samples":>7} {"mean W":>8} {"max W":>8} {"counter J":>10} {"integrated J":>12} {"util %":>6}')
for w in windows:
    r = w["report"]
    for g, integ in zip(r["gpus"], w["integratedPowerJ"]):
        span = f'{(r["windowEndMs"] - r["windowStartMs"]) / 1000:.1f} s'
        print(f'   {span:>15} {g["index"]:>3} {g["samples"]:>7} {g["meanPowerW"]:>8.1f} {g["maxPowerW"]:>8.1f} '
              f'{g["energyJ"]:>10.1f} {integ:>12.1f} {g["meanGpuUtilPercent"]:>6.1f}')
        acc = per_gpu.setdefault(g["uuid"], [g["index"], 0.0, 0.0, False])
        acc[1] += g["energyJ"]; acc[2] += integ; acc[3] |= g["energyCounterReset"]
ok = True
for uuid, (index, counter_j, integrated_j, reset) in sorted(per_gpu.items(), key=lambda kv: kv[1][0]):
    if not has_counter.get(uuid, has_counter_by_index.get(index, False)):
        print(f"   GPU {index}: no energy counter on this GPU: the check does not apply"); continue
    diff = (counter_j - integrated_j) / integrated_j * 100 if integrated_j else float("inf")
    verdict = "PASS" if abs(diff) <= 5 and not reset else "FAIL"
    ok &= verdict == "PASS"
    print(f"   GPU {index} {uuid}: counter {counter_j:.1f} J, integrated power {integrated_j:.1f} J, "
          f"difference {diff:+.2f} % (limit ±5 %){' , counter reset seen' if reset else ''}: {verdict}")
print("VERDICT:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
log "outputs in $OUT"
