#!/usr/bin/env bash
# A lent GPU's checks and benchmarks as one prepared run, most valuable first, each part under a
# time-out. The default (all: loop24, predict, heads) takes issue #24's GPU numbers in one call
# of under 8 minutes: its time-outs add up to 480 s. The next call, `tests newcomer`, takes
# 330 s at most. The training step's parts (b2 under 250 s, b8 under 280 s, most of it
# compiling) go in a call of their own:
#   tests  the CUDA tests (AMP, compiled training, prediction, planner trial steps, pinned memory)
#   loop   the Trainer's loop against nnU-Net's run_training loop: the study's plan (patch
#          64 x 128 x 192, batch 2), k = 2 4 1 8 loader workers (most wanted first, results saved
#          after each k), both trainers eager (compiling both would spend most of the time-out)
#   loop24 the same with k = 2 and 4 only, the targets (150 s at most)
#   newcomer  docs/getting-started.md and docs/how-to/own-data.md as written, each step timed
#          (benchmarks/bench_newcomer.py; the getting-started page renders the times)
#   b2     the training step against nnU-Net's trainer step at batch 2
#   b8     the same at batch 8
#   step   b2 and b8 with the main variants (530 s at most); full: every variant at b2 (330 s)
#   suite  python -m benchmarks.run --device cuda (under 10 minutes: a call of its own)
#   heads  the head-cost benchmark as the suite runs it (fp32, 2 x 128^3), with each attention
#          head also run with its voxel sums as one batched GEMM (/unsplit, the former path) and
#          a torch.profiler summary per variant in $OUT/heads-profile/ (top CUDA kernels,
#          launches, bytes); then the attention heads under bf16 autocast (140 s at most)
#   predict  sliding-window prediction against nnU-Net's predictor (3d_fullres plain, patch
#          64 x 128 x 128, volume 128 x 256 x 256): float32 (8 and 1 per call), bf16, fp16;
#          time ratios, Dice against nnU-Net's float32 run and ours, operator counts; first
#          the placement tests of tests/inference/test_sliding_window_cost.py (under 190 s)
#   bash benchmarks/gpu_session.sh [all | tests newcomer | loop | loop24 | step | b2 | b8 | full | suite | predict | heads ...]
# Carry the wheels that the GPU image lacks in .whl/ (docs/benchmarks.md says which). Results go
# to benchmarks/results/ and, when $OUT is set, next to the logs in $OUT.
set -u
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
OUT=${OUT:-$(mktemp -d)}
if compgen -G ".whl/*.whl" >/dev/null; then
    mkdir -p /tmp/site  # installed packages too large as wheels: .whl/NAME-site.tar.xz
    for archive in .whl/*-site.tar.xz; do [ -e "$archive" ] && tar -xJf "$archive" -C /tmp/site; done
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 3
    export PYTHONPATH=/tmp/site:$PWD/src:$PWD
else
    export PYTHONPATH=$PWD/src:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
MAIN=(nnunet_eager ours_amp_bf16 ours_amp_bf16_compile ours_amp_bf16_reduce_overhead)

step() {  # step BATCH TIMEOUT [bench_train_step options...]
    local batch=$1 limit=$2 start=$SECONDS
    shift 2
    timeout "$limit" python3 -m benchmarks.bench_train_step --device cuda --batch "$batch" \
        --compile --repeats 10 --name "train_step-b$batch" "$@" 2>&1 \
        | grep -v -i -e warn -e softmax -e "important use" -e "split the reduction" -e '^$' \
        | tee "$OUT/train-step-b$batch.log"
    cp "benchmarks/results/train_step-b$batch-cuda.json" "$OUT/" 2>/dev/null
    echo "batch $batch: $((SECONDS - start)) s"
}

parts=()
for part in "${@:-all}"; do  # all and step stand for several parts, wherever they are named
    case $part in
        all) parts+=(loop24 predict heads) ;;
        step) parts+=(b2 b8) ;;
        *) parts+=("$part") ;;
    esac
done
for part in "${parts[@]}"; do
    case $part in
        tests)
            start=$SECONDS
            timeout 90 python3 -m pytest -q -x -p no:cacheprovider --durations=8 \
                tests/training/test_cuda.py tests/data/sampling/test_loader.py::test_pin_memory_keeps_values \
                tests/data/sampling/test_device_augmentation_cuda.py \
                2>&1 | tee "$OUT/pytest-cuda.log" | tail -25
            echo "tests: $((SECONDS - start)) s" ;;
        loop)
            start=$SECONDS
            timeout 300 python3 -m benchmarks.bench_train_loop --device cuda --plans study \
                --k 2 4 1 8 --compile off --timed 15 --budget-s 230 2>&1 \
                | grep -v -i -e warn -e '^$' | tee "$OUT/train-loop.log" | tail -30
            cp benchmarks/results/train_loop-cuda.json "$OUT/" 2>/dev/null
            echo "loop: $((SECONDS - start)) s" ;;
        loop24)
            start=$SECONDS
            timeout 150 python3 -m benchmarks.bench_train_loop --device cuda --plans study \
                --k 2 4 --compile off --timed 15 --budget-s 100 2>&1 \
                | grep -v -i -e warn -e '^$' | tee "$OUT/train-loop.log" | tail -30
            cp benchmarks/results/train_loop-cuda.json "$OUT/" 2>/dev/null
            echo "loop24: $((SECONDS - start)) s" ;;
        newcomer)
            start=$SECONDS
            timeout 240 python3 -m benchmarks.bench_newcomer 2>&1 | tail -5 | tee "$OUT/newcomer.log"
            cp benchmarks/results/newcomer-cuda.json "$OUT/" 2>/dev/null
            echo "newcomer: $((SECONDS - start)) s" ;;
        b2) step 2 250 --only "${MAIN[@]}" ;;
        b8) step 8 280 --only "${MAIN[@]}" ;;
        full) step 2 330 ;;
        suite)
            start=$SECONDS
            timeout 575 python3 -m benchmarks.run --device cuda 2>&1 \
                | grep -v -i -e warn -e softmax -e "important use" -e "split the reduction" -e '^$' \
                | tee "$OUT/suite.log" | tail -40
            for name in suite train_step-suite study_train-suite heads \
                network-nnunet_3d_fullres_plain predict-nnunet_3d_fullres_plain; do
                cp "benchmarks/results/$name-cuda.json" "$OUT/" 2>/dev/null
            done
            cp benchmarks/results/suite-cuda.md "$OUT/" 2>/dev/null
            echo "suite: $((SECONDS - start)) s" ;;
        predict)
            start=$SECONDS
            timeout 40 python3 -m pytest -q -p no:cacheprovider \
                tests/inference/test_sliding_window_cost.py 2>&1 | tail -3 | tee "$OUT/predict-tests.log"
            timeout 150 python3 -m benchmarks.bench_predict --device cuda \
                --arch nnunet_3d_fullres_plain --patch 64 128 128 --shape 128 256 256 \
                --variants fp32 fp32_b1 bf16 fp16 --repeats 3 --profile 2>&1 \
                | grep -v -i -e warn -e '^$' | tee "$OUT/predict.log" | tail -15
            cp benchmarks/results/predict-nnunet_3d_fullres_plain-cuda.json "$OUT/" 2>/dev/null
            echo "predict: $((SECONDS - start)) s" ;;
        heads)
            start=$SECONDS
            heads=(python3 -m benchmarks.bench_heads --device cuda --size 128 128 128 --batch 2)
            timeout 100 "${heads[@]}" --compare-unsplit --profile "$OUT/heads-profile" \
                --profile-variants seg_only attention attention_query attention/unsplit \
                attention_query/unsplit --out benchmarks/results/heads-cuda.json 2>&1 \
                | grep -v -i -e warn -e '^$' | tee "$OUT/heads.log" | tail -20
            cp benchmarks/results/heads-cuda.json "$OUT/" 2>/dev/null
            timeout 40 "${heads[@]}" --only attention attention_query --compare-unsplit \
                --autocast bf16 --out benchmarks/results/heads-bf16-cuda.json 2>&1 \
                | grep -v -i -e warn -e '^$' | tee "$OUT/heads-bf16.log" | tail -8
            cp benchmarks/results/heads-bf16-cuda.json "$OUT/" 2>/dev/null
            echo "heads: $((SECONDS - start)) s" ;;
        *) echo "unknown part '$part': use tests, loop, loop24, newcomer, b2, b8, step, full, suite, predict, heads or all" >&2
           exit 2 ;;
    esac
done
exit 0
