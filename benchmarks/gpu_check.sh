#!/usr/bin/env bash
# The GPU checks of docs/performance.md in one call (about 6 minutes on an H100/H200):
# the benchmark in fp32 and bf16, then ganzoo alone with one switch off at a time.
# Results land in ${OUT:-bench-out}/ as JSON next to the printed tables.
set -euo pipefail
out="${OUT:-bench-out}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python benchmarks/bench.py --steps 30 --warmup 6 --json "$out/fp32.json"
python benchmarks/bench.py --steps 30 --warmup 6 --precision bf16 --json "$out/bf16.json"
for switch in cuda_graphs fused channels_last; do
  python benchmarks/bench.py --steps 30 --warmup 6 --precision bf16 --no-baseline --set "$switch=false" --json "$out/bf16-no-$switch.json"
done
