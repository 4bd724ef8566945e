#!/usr/bin/env bash
# Every CUDA path of the harness, once, on a machine with a CUDA GPU (issue 18), in four
# parts that each run under a time budget (together 420 s, and at most 10 s each to stop
# at it: all of it fits in 8 minutes):
#
#   specs       the shipped spec library (specs/) on cuda in float64, float32, float16,
#               bfloat16 and the complex dtypes (complex specs declare them): every check but
#               `devices` (specs/ with --harness-devices=cuda)
#   corpora     the planted-bug and tricky corpora on cuda, float64 and float32, 2 seeds
#               (tests/test_planted_bugs.py, tests/test_tricky.py with --corpus-device=cuda)
#   devices     the `devices` check, CPU against CUDA, in the same dtypes
#   benchmarks  pytest --benchmark-only on a few specs, on cuda and on the cpu, and a table
#               of their backward/forward ratios
#
# Each part ends with one line, `gpu-check: PART: N passed, N failed, N skipped in S s
# (budget B s)`, and `: STOPPED at its budget` where the budget ran out (the part is
# interrupted, and what ran is counted), after a `gpu-check: PART: FAILED nodeid: message`
# line per failed test (at most 30; the part's log has them all) and, for the benchmarks,
# their table of ratios. Where CUDA is absent (or torch does not import) each part prints
# `gpu-check: PART: skipped (...)` and the script exits 0. Otherwise it exits 0 when every
# part ran to its end without a failure, 1 if not.
#
# It runs from a checkout, as on the GPU machine, where torch, hypothesis, pytest,
# pytest-benchmark (and pytest-xdist) are installed but the harness is not: the checkout is
# on PYTHONPATH and the plugin is loaded with `-p harness.plugin` (only where no installed
# entry point loads it already). No plugin there needs blocking with `-p no:...`: its
# pytest plugins (pytest-cov, -mock, -timeout, -xdist, -benchmark, Hypothesis') reorder and
# reseed nothing (pytest-randomly is not installed). With pytest-xdist, the specs, corpora
# and devices parts run on several workers (--workers; one CUDA context each, all on the
# one GPU, or worker i on cuda:{i mod count} of several).
#
# Usage: tools/gpu-check.sh [--out DIR] [--budget SECONDS] [--workers N] [--max-examples N]
#                           [--parts specs,corpora,devices,benchmarks] [--device cuda|cpu]
#                           [--dry-run]
#   --out DIR         where each part's log and the benchmarks' JSON go (default: a new
#                     temporary folder; printed)
#   --budget SECONDS  the time of all four parts together (default 420), shared 40/33/12/15
#   --workers N       pytest-xdist workers (default: half the cores, at most 8; 1: none)
#   --max-examples N  examples per item of the specs and devices parts (default: the
#                     harness-dev profile's 20)
#   --parts LIST      run these parts only
#   --device cpu      a rehearsal of the script itself on the CPU (tests/test_gpu_check.py),
#                     not a GPU check: the devices part has nothing to run there
#   --dry-run         print each part's command and budget; run nothing
set -u
# Run from a pytest-xdist worker (tests/test_gpu_check.py under -n), the parts' pytest would
# take itself for a worker too, and pytest-benchmark refuses --benchmark-only there.
unset PYTEST_XDIST_WORKER PYTEST_XDIST_WORKER_COUNT PYTEST_XDIST_TESTRUNUID

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
OUT_DIR=""
BUDGET=420
WORKERS=""
MAX_EXAMPLES=""
PARTS="specs,corpora,devices,benchmarks"
DEVICE=cuda
DRY_RUN=0
SEED=0
GRACE=10  # seconds between the budget's SIGTERM (pytest stops, and reports) and a SIGKILL
DTYPES=float64,float32,float16,bfloat16,complex128,complex64
BENCHMARKED=(  # a few specs of each kind: a loss, matrix products, a solve, layers, a reduction
  specs/seed.toml::linear_mse specs/linalg.toml::matmul specs/linalg.toml::solve
  specs/nn.py::conv2d specs/nn.py::layer_norm specs/nn.py::attention
  specs/reductions.toml::logsumexp specs/elementwise.toml::tanh
)

usage() { sed -n '/^# Usage:/,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR=${2:?}; shift 2 ;;
    --budget) BUDGET=${2:?}; shift 2 ;;
    --workers) WORKERS=${2:?}; shift 2 ;;
    --max-examples) MAX_EXAMPLES=${2:?}; shift 2 ;;
    --parts) PARTS=${2:?}; shift 2 ;;
    --device) DEVICE=${2:?}; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage ;;
    *) echo "gpu-check: unknown argument: $1" >&2; usage ;;
  esac
done
case "$DEVICE" in cuda|cpu) ;; *) echo "gpu-check: --device is cuda or cpu" >&2; exit 2 ;; esac
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "gpu-check: --budget is a number of seconds" >&2; exit 2; }
for part in ${PARTS//,/ }; do
  case "$part" in specs|corpora|devices|benchmarks) ;;
    *) echo "gpu-check: unknown part '$part' (specs, corpora, devices, benchmarks)" >&2
       exit 2 ;;
  esac
done

cd "$ROOT" || exit 2
# The path pytest runs with: the checkout first (an .egg-info there is an installed
# entry point too, for pytest and for the helper's plugin-args alike)
SEARCH_PATH="$ROOT:$ROOT/tools${PYTHONPATH:+:$PYTHONPATH}"
HELPER=(env "PYTHONPATH=$SEARCH_PATH" "$PYTHON" "$ROOT/tools/gpu_check.py")

part_budget() {  # this part's share of the budget, in whole seconds (at least 1)
  local share
  case "$1" in specs) share=40 ;; corpora) share=33 ;; devices) share=12 ;; benchmarks) share=15 ;; esac
  local seconds=$((BUDGET * share / 100))
  echo $((seconds > 0 ? seconds : 1))
}

part_args() {  # the pytest arguments of a part, one per line
  local part=$1
  local examples=()
  [ -n "$MAX_EXAMPLES" ] && examples=("--harness-max-examples=$MAX_EXAMPLES")
  case "$part" in
    specs) printf '%s\n' specs "--harness-devices=$DEVICE" "--harness-dtypes=$DTYPES" \
             -m "not devices" "${examples[@]}" "${XDIST[@]}" ;;
    corpora) printf '%s\n' tests/test_planted_bugs.py tests/test_tricky.py \
               "--corpus-device=$DEVICE" -k "not -2]" "${XDIST[@]}" ;;  # seeds 0 and 1
    devices) printf '%s\n' specs "--harness-devices=$DEVICE" "--harness-dtypes=$DTYPES" \
               -m devices "${examples[@]}" "${XDIST[@]}" ;;
    benchmarks) local devices=cuda,cpu
      [ "$DEVICE" = cpu ] && devices=cpu
      printf '%s\n' "${BENCHMARKED[@]}" --benchmark-only "--harness-devices=$devices" \
        --benchmark-max-time=0.5 "--benchmark-json=$OUT_DIR/benchmarks.json" ;;
  esac
}

shown() {  # a command as one would type it: a word with a space or a special quoted
  local word out=()
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then out+=("$word")
    else out+=("'${word//\'/\'\\\'\'}'"); fi
  done
  echo "${out[*]}"
}

skip_all() {  # every part named, skipped, with the reason
  for part in ${PARTS//,/ }; do echo "gpu-check: $part: skipped ($1)"; done
}

# --- the machine -----------------------------------------------------------------------------
XDIST=()
if [ "$DRY_RUN" = 0 ]; then
  if [ "$DEVICE" = cuda ]; then
    if ! MACHINE=$("${HELPER[@]}" cuda 2>&1); then
      echo "gpu-check: no CUDA here: $MACHINE"
      skip_all "$MACHINE"
      exit 0
    fi
  else
    MACHINE="the CPU (a rehearsal of the script, not a GPU check)"
  fi
  [ -n "$OUT_DIR" ] || OUT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
fi
[ -n "$OUT_DIR" ] || OUT_DIR="<a new temporary folder>"
if [ -z "$WORKERS" ]; then
  cores=$(nproc 2>/dev/null || echo 2)
  WORKERS=$((cores / 2 > 8 ? 8 : cores / 2))
fi
if [ "$WORKERS" -gt 1 ] && "$PYTHON" -c "import xdist" 2>/dev/null; then
  XDIST=(-n "$WORKERS")
fi
PLUGIN=()
if [ "$DRY_RUN" = 0 ]; then
  read -r -a PLUGIN <<< "$("${HELPER[@]}" plugin-args)"
else
  PLUGIN=(-p harness.plugin)  # as on the GPU machine, where the harness is not installed
fi

# --- the parts -------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-tally.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
[ "$DRY_RUN" = 0 ] && mkdir -p "$OUT_DIR"
if [ "$DRY_RUN" = 0 ]; then
  echo "gpu-check: on $MACHINE; budget $BUDGET s; pytest-xdist workers: ${XDIST[1]:-none}; logs in $OUT_DIR"
fi

FAILED=0
for part in ${PARTS//,/ }; do
  budget=$(part_budget "$part")
  mapfile -t args < <(part_args "$part")
  command=(env "PYTHONPATH=$SEARCH_PATH"
           "$PYTHON" -m pytest "${PLUGIN[@]}" -p gpu_check "--gpu-check-tally=$WORK/$part"
           -p no:cacheprovider -q "--harness-seed=$SEED" "${args[@]}")
  if [ "$DRY_RUN" = 1 ]; then
    echo "gpu-check: $part: dry run, budget $budget s: $(shown "${command[@]}")"
    continue
  fi
  if [ "$part" = devices ] && [ "$DEVICE" = cpu ]; then
    echo "gpu-check: $part: skipped (the devices check compares CUDA with the CPU: nothing to run on the CPU alone)"
    continue
  fi
  log="$OUT_DIR/$part.log"
  # a reused --out folder: never print an earlier run's ratios as this one's
  [ "$part" = benchmarks ] && rm -f "$OUT_DIR/benchmarks.json"
  start=$(date +%s.%N)
  timeout --signal=TERM --kill-after="$GRACE" "$budget" "${command[@]}" > "$log" 2>&1
  code=$?
  seconds=$(awk -v start="$start" -v end="$(date +%s.%N)" 'BEGIN { print end - start }')
  if [ "$part" = benchmarks ] && [ -f "$OUT_DIR/benchmarks.json" ]; then
    "${HELPER[@]}" ratios "$OUT_DIR/benchmarks.json" | sed "s/^/gpu-check: $part: /"
  fi
  "${HELPER[@]}" summary "$part" "$WORK/$part" "$seconds" "$code" "$budget" || FAILED=1
done
exit $FAILED
