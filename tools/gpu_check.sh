#!/usr/bin/env bash
# The GPU checks of the fast engine, as one script for a lent GPU machine (docs/developing.md#speed-rules-for-a-
# training-step). Before it, on the development machine: build wheels of what the GPU image lacks into wheels/
# (pip wheel hydra-core omegaconf antlr4-python3-runtime==4.9.3 mlxtend torchdata -w wheels), put the reference
# checkouts in refs/ (examples/dcgan/main.py, cyclegan/{models,options,util}), list both in .git/info/exclude and
# carry them. Results go to $OUT (or ./gpu_check_out): the GPU tests' log and make bench's table.
#   bash tools/gpu_check.sh [extra arguments for benchmarks/throughput.py]
set -uo pipefail
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
python -m pip install --quiet --no-index --find-links wheels hydra-core omegaconf mlxtend torchdata 2>&1 | tail -3
python -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | tail -3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt"
# the step under torch.cuda.set_sync_debug_mode("error"), the captured update against eager training and its exact
# resume, and the engine's other tests, on the GPU
timeout 300 python -m pytest -q -p no:cacheprovider -rs tests/test_step_capture.py tests/test_engine.py \
  > "$OUT/tests.txt" 2>&1
tail -3 "$OUT/tests.txt"
refs=(); [ -d refs ] && refs=(--refs refs)
timeout 400 python benchmarks/throughput.py --device cuda --repeats 3 "${refs[@]}" "$@" > "$OUT/bench.txt" 2>&1
tail -40 "$OUT/bench.txt"
