#!/usr/bin/env bash
# The GPU checks of the fast engine, for a lent GPU machine (docs/developing.md#speed-rules-for-a-training-step),
# in two parts that each fit one 10-minute call:
#   bash tools/gpu_check.sh gan          # install, the GPU tests, make bench's GAN cases (about 9 minutes)
#   bash tools/gpu_check.sh translation  # install, make bench's CycleGAN and pix2pix cases (about 9 minutes)
# Extra arguments go to benchmarks/throughput.py. Before it, on the development machine: build wheels of what the
# GPU image lacks into wheels/ (pip wheel hydra-core omegaconf antlr4-python3-runtime==4.9.3 mlxtend torchdata -w
# wheels), put the reference checkouts in refs/ (examples/dcgan/main.py, cyclegan/{models,options,util}), list
# both in .git/info/exclude and carry them. Results go to $OUT (or ./gpu_check_out): the GPU tests' log and the
# benchmark's tables.
set -uo pipefail
part=${1:-gan}
shift || true
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
python -m pip install --quiet --no-index --find-links wheels hydra-core omegaconf mlxtend torchdata 2>&1 | tail -3
python -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | tail -3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt"
refs=(); [ -d refs ] && refs=(--refs refs)
if [ "$part" = gan ]; then
  # the GPU tests (names with on_a_gpu): no step synchronises (torch.cuda.set_sync_debug_mode("error")), the
  # captured update trains the weights of eager training, and a captured run resumes exactly after a kill
  timeout 200 python -m pytest -q -p no:cacheprovider -rs -k on_a_gpu tests/test_step_capture.py \
    tests/test_engine.py > "$OUT/tests.txt" 2>&1
  tail -3 "$OUT/tests.txt"
  timeout 300 python benchmarks/throughput.py --device cuda --repeats 3 --models dcgan,dcgan256,mlp "${refs[@]}" \
    "$@" > "$OUT/bench_gan.txt" 2>&1
  tail -40 "$OUT/bench_gan.txt"
else
  timeout 520 python benchmarks/throughput.py --device cuda --repeats 3 --models pix2pix,cyclegan "${refs[@]}" \
    "$@" > "$OUT/bench_translation.txt" 2>&1
  tail -30 "$OUT/bench_translation.txt"
fi
