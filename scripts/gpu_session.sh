#!/usr/bin/env bash
# The GPU checks of one lent session, in one call of the device tool, in order of what they tell:
#   1. the CUDA output of the tiny networks against the CPU's (bf16 tolerance);
#   2. Problem B, 25 x 768 x 1280, real-size networks (random weights), bf16: seconds per stage, total, NFE,
#      peak GPU memory, beside the memory plan of the same job (the paper: 132 s, 35.2 GB);
#   3. Problem A, the same size;
#   4. Problem B with --offload model;
#   5. a torchrun launch of restore (tiny networks, CUDA);
#   6. --prior tv on cuda against the cpu (seconds, the same pixels);
#   7. Problem C's 81 frames, if time is left.
# Prepare here first (the wheels the device's image lacks): bash scripts/gpu_prepare.sh
# Then, with the device tool: run command="bash scripts/gpu_session.sh" carry=[".whl"] timeout_s=600
# Everything goes to $OUT as it is written (unbuffered); each step has a limit and the limits add up to BUDGET
# seconds (540 by default), so the call ends well inside the tool's 600 s.
set -u
export PYTHONUNBUFFERED=1
REPO=$(pwd)
OUT=$(realpath -m "${OUT:-gpu-out}")
BUDGET=${BUDGET:-540}
mkdir -p "$OUT"
SESSION="$OUT/session.txt"
log() { echo "== $(date +%T) [${SECONDS}s] $*" | tee -a "$SESSION"; }
# step NAME LIMIT FILE COMMAND...: run with a time limit (never past the budget), its output into FILE as it comes
step() {
    local name=$1 limit=$2 file=$3
    shift 3
    local left=$((BUDGET - SECONDS - 5))
    if [ "$left" -lt 20 ]; then
        log "$name: skipped (${left}s left of the budget)"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    log "$name (limit ${limit}s)"
    timeout --signal=INT --kill-after=10 "$limit" "$@" >"$OUT/$file" 2>&1
    local rc=$?
    tail -25 "$OUT/$file" | tee -a "$SESSION"
    log "$name: exit $rc"
}

log "0. install the carried wheels and lvtino (into /tmp/site)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$REPO"/.whl/*.whl \
    >"$OUT/install.txt" 2>&1 &&
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . \
        >>"$OUT/install.txt" 2>&1
export PYTHONPATH=/tmp/site
mkdir -p /tmp/lvtino-run && cd /tmp/lvtino-run  # outside the source tree: lvtino (and its configs) from /tmp/site
if ! python3 -c "import diffusers, av, lvtino, lvtino.configs; print('diffusers', diffusers.__version__, '| av', \
av.__version__, '| lvtino from', lvtino.__file__)" 2>&1 | tee -a "$SESSION"; then
    log "the install failed: see $OUT/install.txt"
    tail -20 "$OUT/install.txt"
    exit 1
fi
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')" 2>&1 | tee -a "$SESSION"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1

step "1. tiny networks: cuda bf16 against cpu float32" 60 cuda-vs-cpu.txt \
    python3 "$REPO/scripts/cuda_vs_cpu.py" --device cuda --dtype bfloat16
step "2. Problem B, 25 x 768 x 1280, real-size, default placement (a warm-up run, then the timed one)" 150 \
    timing-B.txt python3 "$REPO/scripts/gpu_timing.py" --problem B --runs 2
step "3. Problem A, 25 x 768 x 1280, real-size" 110 timing-A.txt python3 "$REPO/scripts/gpu_timing.py" --problem A
step "4. Problem B with --offload model" 90 timing-B-offload.txt \
    python3 "$REPO/scripts/gpu_timing.py" --problem B --offload model
step "5. torchrun, restore with the tiny networks on cuda" 45 torchrun.txt bash -c '
    python3 -c "
from fractions import Fraction
from lvtino.video.synthetic import synthetic_clip
from lvtino.video.writer import VideoWriter
with VideoWriter(\"/tmp/gpu-clean.mkv\", Fraction(30)) as w:
    for f in synthetic_clip(17, 64, 96): w.write(f)
" && python3 -m lvtino degrade /tmp/gpu-clean.mkv -o /tmp/gpu-y.mkv --problem B -y &&
    torchrun --nproc_per_node 1 -m lvtino restore /tmp/gpu-y.mkv -o /tmp/torchrun.mkv --prior lvtino \
        --models tiny --device cuda --stats '"$OUT"'/torchrun.json -y'
step "6. --prior tv on cuda against the cpu: 96 frames of 640x360, Problem A (seconds, prior's share, pixels)" 90 \
    tv-cuda.txt bash -c '
    python3 -c "
from fractions import Fraction
from lvtino.video.synthetic import synthetic_clip
from lvtino.video.writer import VideoWriter
with VideoWriter(\"/tmp/tv-clean.mkv\", Fraction(30)) as w:
    for f in synthetic_clip(96, 360, 640): w.write(f)
" && python3 -m lvtino degrade /tmp/tv-clean.mkv -o /tmp/tv-y.mkv --problem A -y &&
    for d in cuda cpu; do python3 -m lvtino restore /tmp/tv-y.mkv -o /tmp/tv-$d.mkv --prior tv --device $d \
        --stats '"$OUT"'/tv-$d.json -y -q || exit 1; done &&
    python3 -c "
import json, numpy as np
from lvtino.video.reader import probe, read_frames
for d in (\"cuda\", \"cpu\"):
    s = json.load(open(\"'"$OUT"'/tv-\" + d + \".json\"))
    print(d, \"seconds\", s[\"seconds\"], \"prior\", s[\"seconds_per_stage\"][\"prior\"], \"device\", s[\"device\"])
a, b = (np.stack(list(read_frames(probe(f\"/tmp/tv-{d}.mkv\")))).astype(int) for d in (\"cuda\", \"cpu\"))
print(\"frames\", len(a), len(b), \"max |cuda - cpu|\", np.abs(a - b).max(), \"mean\", np.abs(a - b).mean())
"'
step "7. Problem C, 81 x 768 x 1280, real-size" 200 timing-C.txt \
    python3 "$REPO/scripts/gpu_timing.py" --problem C --frames 81
log "done in ${SECONDS}s"
