#!/usr/bin/env bash
# A lent GPU's checks and benchmarks as one prepared run (the workplace's device tool: 15 minutes
# of device time per session, start-up included), most valuable first, each under a time-out:
#   1. the CUDA tests (AMP, compiled training, prediction, planner trial steps, pinned memory);
#   2. the training-step benchmark against nnU-Net's trainer step at batch 2 and 8.
# Carry the wheels that the GPU image lacks in .whl/ (docs/benchmarks.md says which). Results go
# to benchmarks/results/ and, when $OUT is set, next to the logs in $OUT.
set -u
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
OUT=${OUT:-$(mktemp -d)}
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 3
    export PYTHONPATH=/tmp/site:$PWD/src:$PWD
else
    export PYTHONPATH=$PWD/src:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"

start=$SECONDS
timeout "${TEST_TIMEOUT:-200}" python3 -m pytest -q -x -p no:cacheprovider --durations=8 \
    tests/training/test_cuda.py tests/data/test_loader.py::test_pin_memory_keeps_values \
    2>&1 | tee "$OUT/pytest-cuda.log" | tail -25
echo "tests: $((SECONDS - start)) s"

start=$SECONDS
timeout "${BENCH_TIMEOUT:-330}" python3 -m benchmarks.bench_train_step --device cuda \
    --batch 2 8 --compile --repeats 10 2>&1 | tee "$OUT/train-step.log"
echo "train step: $((SECONDS - start)) s"
cp benchmarks/results/train_step-cuda.json "$OUT/" 2>/dev/null
exit 0
