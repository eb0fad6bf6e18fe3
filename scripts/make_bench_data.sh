#!/usr/bin/env bash
# Create the datasets of `experiment=bench_d4rl_style` with the shared benchmarks' make_dataset.py:
# D4RL-layout HDF5 files data/bench/{hopper,halfcheetah}-{medium,mixed}.hdf5, rolled out in
# gymnasium's v5 MuJoCo tasks (configs/dataset/bench/*.yaml read them).
#
#   bash scripts/make_bench_data.sh                     # the benchmark's 4 files x 200k transitions, 2 at a time (~4 min on 2 cores)
#   TRANSITIONS=1000000 bash scripts/make_bench_data.sh # D4RL's size (~10 min per file per core)
#   LEVELS="random medium expert medium-expert mixed" bash scripts/make_bench_data.sh
#
# Settings (environment variables):
#   TRANSITIONS  transitions per file (200000)       SEED  rollout seed (0)
#   ENVS         tasks (hopper halfcheetah)          LEVELS  levels (medium mixed)
#   JOBS         files made in parallel (2)          FORCE=1  remake files that already exist
#   CMRL_BENCH_DATA  output folder (data/bench; the dataset configs read the same variable)
#   BENCHMARKS   folder holding make_dataset.py (../shared/benchmarks beside the repository)
#   PYTHON       interpreter with numpy, h5py and gymnasium[mujoco] (.venv/bin/python if present)
#   REFERENCE    SHA-256 list of the reference files (scripts/bench_data.sha256; its first line names
#                the transitions and seed they were made with)
# A file that exists with the requested transitions and seed is kept (delete it or set FORCE=1).
# Files are written under a temporary name and renamed when complete.
#
# Reference files. A file's bytes depend on the CPU's arithmetic: one last-bit difference in a matrix
# product and the rollouts diverge, so files made on two CPUs can differ (2026-12-01: made on an Intel
# Xeon, hopper-medium's behaviour scored 48.6; made on an AMD EPYC, 48.9), and scores on different files
# are not comparable (scripts/report.py refuses to pool them). The benchmark's tables use the files whose
# SHA-256 are in scripts/bench_data.sha256 (200k transitions, seed 0); each file made or kept is checked
# against them. NumPy and OpenBLAS are pinned to their AVX2 code paths below: with them an AMD EPYC with
# AVX2 and one with AVX-512 both wrote the reference files (2026-12-01, 2026-12-02); whether an Intel
# Xeon does is not yet measured; the check says so where it runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRANSITIONS="${TRANSITIONS:-200000}"
SEED="${SEED:-0}"
ENVS="${ENVS:-hopper halfcheetah}"
LEVELS="${LEVELS:-medium mixed}"
JOBS="${JOBS:-2}"
FORCE="${FORCE:-0}"
OUT="${CMRL_BENCH_DATA:-data/bench}"
BENCHMARKS="${BENCHMARKS:-$ROOT/../shared/benchmarks}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

cd "$ROOT"  # OUT is relative to the repository root, like the dataset configs' default
if [[ ! -f "$BENCHMARKS/make_dataset.py" ]]; then
  echo "make_bench_data: no make_dataset.py in $BENCHMARKS (set BENCHMARKS to the folder that holds it)" >&2
  exit 2
fi
mkdir -p "$OUT"
REFERENCE="${REFERENCE:-$ROOT/scripts/bench_data.sha256}"
export PYTHON OUT TRANSITIONS SEED FORCE BENCHMARKS REFERENCE
# One thread per rollout: the files are made side by side.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
# The same arithmetic on every x86 CPU, as far as NumPy and OpenBLAS choose it (see "Reference files").
export OPENBLAS_CORETYPE=Haswell NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"

make_one() {  # make_one ENV-LEVEL
  local env="${1%%-*}" level="${1#*-}"
  local file="$OUT/$env-$level.hdf5"
  if [[ "$FORCE" != 1 && -f "$file" ]]; then
    if "$PYTHON" -c 'import sys, h5py
h = h5py.File(sys.argv[1], "r")
sys.exit(0 if len(h["rewards"]) == int(sys.argv[2]) and int(h.attrs.get("seed", -1)) == int(sys.argv[3]) else 1)' \
        "$file" "$TRANSITIONS" "$SEED" 2>/dev/null
    then
      echo "$file: exists with $TRANSITIONS transitions, seed $SEED (kept; FORCE=1 remakes it)"
      check_reference "$file"
      return 0
    fi
  fi
  local tmp="$OUT/.$env-$level.$$.hdf5"
  "$PYTHON" "$BENCHMARKS/make_dataset.py" "$env" "$level" "$tmp" --transitions "$TRANSITIONS" --seed "$SEED" \
    | sed "s|$tmp|$file|"
  mv "$tmp" "$file"
  check_reference "$file"
}

check_reference() {  # check_reference FILE: compare with the benchmark's reference file of that name
  local file="$1" name expected actual
  name="$(basename "$file")"
  [[ -f "$REFERENCE" ]] && head -n 1 "$REFERENCE" | grep -qx "# transitions=$TRANSITIONS seed=$SEED" || return 0
  expected="$(awk -v n="$name" '$2 == n {print $1}' "$REFERENCE")"
  [[ -n "$expected" ]] || return 0
  actual="$(sha256sum "$file" | cut -d' ' -f1)"
  if [[ "$actual" == "$expected" ]]; then
    echo "$file: the benchmark's reference file (sha256 ${actual:0:16})"
  else
    echo "make_bench_data: warning: $file (sha256 ${actual:0:16}) is not the benchmark's reference file" \
         "(${expected:0:16}, $REFERENCE): this CPU made other rollouts. Scores on it compare" \
         "with each other, not with the tables in docs/benchmark.md" >&2
  fi
}
export -f make_one check_reference

start=$(date +%s)
pairs=()
for env in $ENVS; do for level in $LEVELS; do pairs+=("$env-$level"); done; done
printf '%s\n' "${pairs[@]}" | xargs -P "$JOBS" -I{} bash -c 'set -euo pipefail; make_one "$@"' _ {}
echo "made ${#pairs[@]} dataset(s) in $OUT in $(( $(date +%s) - start )) s"
