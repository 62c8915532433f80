#!/usr/bin/env bash
# One GPU session (benchmarks/gpu_session.py says what each step measures and proves), run from the repository root:
#
#     OUT=/some/folder bash benchmarks/gpu_session.sh
#
# Installs the wheels in .whl/ (the packages grepq needs that the machine lacks: openai-clip, ftfy, wcwidth, regex,
# piq, openpyxl, et-xmlfile, setuptools<81 for clip's pkg_resources; never torch/torchvision/numpy) into a private
# folder put first on PYTHONPATH, prints nvidia-smi and the versions, then runs gpu_session.py under a time limit.
# Everything printed also goes to $OUT/gpu_log.txt; the numbers go to $OUT/gpu.json (rewritten after every step),
# $OUT/bench_gpu.json and $OUT/pytest_core.xml, $OUT/pytest_more.xml.
#
# Dry run on a CPU machine (tiny sizes, every step on the CPU; checks paths and syntax):
#     GPU_SESSION_DEVICE=cpu OUT=/tmp/gpuout GPU_SESSION_WHEELS=/path/to/.whl bash benchmarks/gpu_session.sh
# (GPU_SESSION_FAKE_CUDA=1 also runs the code of the CUDA-only checks, on the CPU, where ll.bn=sync must fail)
# Settings (environment): GPU_SESSION_DEVICE (cuda; cpu = the dry run), GPU_SESSION_BUDGET (seconds for all steps,
# default 340), GPU_SESSION_WHEELS (default .whl), GPU_SESSION_SITE (install folder, default /tmp/grepq_site).
set -u
: "${OUT:?set OUT to the folder the results go to}"
cd "$(dirname "$0")/.." || exit 2
mkdir -p "$OUT"
DEVICE="${GPU_SESSION_DEVICE:-cuda}"
BUDGET="${GPU_SESSION_BUDGET:-340}"
WHEELS="${GPU_SESSION_WHEELS:-.whl}"
SITE="${GPU_SESSION_SITE:-/tmp/grepq_site}"
export PYTHONUNBUFFERED=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

session() {
    echo "== gpu_session.sh: $(date -u +%FT%TZ) in $PWD, device $DEVICE, budget ${BUDGET}s"
    local t0=$SECONDS
    if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "== installing $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE"
        local pipargs=(-m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE")
        if ! timeout 120 python3 "${pipargs[@]}" "$WHEELS"/*.whl; then
            echo "== bulk install failed; one wheel at a time"
            for w in "$WHEELS"/*.whl; do
                timeout 60 python3 "${pipargs[@]}" "$w" || echo "== WHEEL NOT INSTALLED: $w"
            done
        fi
    else
        echo "== no wheels in $WHEELS: using the installed packages"
    fi
    export PYTHONPATH="$SITE:$PWD"
    echo "== install took $((SECONDS - t0)) s; PYTHONPATH=$PYTHONPATH"
    if command -v nvidia-smi >/dev/null 2>&1; then
        timeout 30 nvidia-smi
        timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit,mig.mode.current --format=csv
    else
        echo "== no nvidia-smi"
    fi
    timeout 60 python3 -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, '| available', torch.cuda.is_available(), '| cudnn', torch.backends.cudnn.version())"
    local extra=()
    [ "$DEVICE" = cpu ] && extra+=(--quick)
    timeout --kill-after=15 $((BUDGET + 40)) python3 benchmarks/gpu_session.py --out "$OUT" --device "$DEVICE" \
        --budget "$BUDGET" ${extra[@]+"${extra[@]}"}
    echo "== gpu_session.py exit $? after $((SECONDS - t0)) s in all"
    ls -la "$OUT"
}

session 2>&1 | tee -a "$OUT/gpu_log.txt"
