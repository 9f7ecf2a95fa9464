#!/usr/bin/env bash
# Runs Verdant's fuzz targets (cargo-fuzz, libFuzzer, stable Rust: `-s none`).
#
#   fuzz/run.sh [--merge] SECONDS [TARGET...]    (TARGET: a name, `weather` or `all`)
#
# `all` (the default) is the 8 targets; `weather` the four weather-file parsers. Every
# target needs only verdant-core and verdant-crds, not the operator (see README.md for the
# build time). Each target runs SECONDS from the committed corpus (fuzz/corpus/TARGET); what it finds
# goes to a scratch folder, so a short run (make test) leaves the tree as it was. With
# --merge (make fuzz), the corpus is then minimized together with the new finds
# (libFuzzer -merge=1) and replaced. A crash stops the run: the input is in
# fuzz/artifacts/TARGET/, reproduce it with
#   cargo fuzz run -s none -a TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")"

merge=false
if [[ ${1:-} == --merge ]]; then
  merge=true
  shift
fi
seconds=${1:?usage: fuzz/run.sh [--merge] SECONDS [TARGET...]}
shift
weather=(weather_tmy3 weather_pvgis weather_generic weather_windpowerlib)
others=(agent_report open_meteo prometheus crd_quantities)
targets=()
for arg in "${@:-all}"; do
  case $arg in
    all) targets+=("${weather[@]}" "${others[@]}") ;;
    weather) targets+=("${weather[@]}") ;;
    *) targets+=("$arg") ;;
  esac
done

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (crates.io)"
  cargo install cargo-fuzz --locked
fi
# -a: overflow checks and debug assertions, as in the debug builds the tests run.
flags=(-s none -a)
start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz targets built in $(($(date +%s) - start)) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "$scratch/$target"
  log="$scratch/$target.log"
  if ! cargo fuzz run "${flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "FAILED: fuzz target $target (input in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  rate=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  echo "$target: ${runs} runs in ${seconds} s (${rate}/s), no crash"
  if $merge; then
    merged="$scratch/$target.merged"
    mkdir -p "$merged"
    cargo fuzz run "${flags[@]}" "$target" "$merged" "corpus/$target" "$scratch/$target" -- \
      -merge=1 -max_len=4096 >>"$log" 2>&1
    rm -rf "corpus/$target"
    mv "$merged" "corpus/$target"
    echo "$target: corpus minimized to $(ls "corpus/$target" | wc -l) inputs"
  fi
done
