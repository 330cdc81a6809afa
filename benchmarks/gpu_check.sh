#!/usr/bin/env bash
# The GPU checks of docs/performance.md in one call: `bash benchmarks/gpu_check.sh [PART...]`.
# Parts: tests (tests/gpu: CUDA graphs against eager steps, exact resume under graphs, capture
# failures as errors), bench (fp32 and bf16 against the seed-style loop, ~3 min), ablate
# (ganzoo alone in bf16 with one switch off at a time, ~2 min), profile (top kernels of a
# WGAN-GP iteration, ~1 min); all four when none is named. Results land in ${OUT:-bench-out}/;
# the exit status is 1 when the tests failed.
set -uo pipefail
out="${OUT:-bench-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
data=../shared/data/cxr
if [ ! -d "$data" ]; then
  # No shared X-rays on this machine: 615 synthetic phantoms at their size, written once.
  data=$(python3 -c "import sys, tempfile; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from bench import write_pngs; print(write_pngs(Path(tempfile.mkdtemp()), 615, 299))")
  echo "data: 615 synthetic phantoms of 299x299 in $data"
fi
bench=(python3 benchmarks/bench.py --data "$data" --steps 30 --warmup 6)
status=0
for part in ${*:-tests bench ablate profile}; do
  case "$part" in
    tests)
      # On a GPU machine a skip is a failure: tests/gpu only skips when CUDA is missing.
      python3 -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'" &&
        GANZOO_REQUIRE_ALL=1 python3 -m pytest -q -p no:cacheprovider tests/gpu 2>&1 | tee "$out/tests.txt" || status=1 ;;
    bench)
      "${bench[@]}" --json "$out/fp32.json"
      "${bench[@]}" --precision bf16 --json "$out/bf16.json" ;;
    ablate)
      for switch in cuda_graphs fused channels_last; do
        "${bench[@]}" --precision bf16 --no-baseline --set "$switch=false" --json "$out/bf16-no-$switch.json"
      done ;;
    profile)
      for precision in fp32 bf16; do
        python3 benchmarks/profile_step.py --models wgan-gp-64,wgan-gp-128 --precision "$precision" > "$out/profile-$precision.txt"
        grep '^==' "$out/profile-$precision.txt"
      done ;;
    *) echo "unknown part $part (tests, bench, ablate, profile)"; exit 2 ;;
  esac
done
exit "$status"
