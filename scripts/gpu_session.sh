#!/usr/bin/env bash
# The GPU checks of one lent session, in one call of the device tool, most telling first:
#   1. a CUDA device is there (else stop at once); the tiny networks' CUDA output against the CPU's;
#   2. Problem B, 25 x 768 x 1280, real-size networks (random weights), bf16: seconds per stage, total, NFE, peak
#      GPU memory, beside the memory plan of the same job (the paper: 132 s, 35.2 GB);
#   3. Problem A, the same size;
#   4. torchrun with 2 processes on the one GPU (tiny networks): the sharding path;
#   5. Problem B with --offload model (each network moved to the GPU once per sweep);
#   6. --prior tv on cuda against the cpu;
#   7. Problem C's 81 frames, if time is left.
# Prepare here first (the wheels the device's image lacks): bash scripts/gpu_prepare.sh
# Then, with the device tool: run command="bash scripts/gpu_session.sh" carry=[".whl"] timeout_s=420
#
# What comes back (the tool returns at most 8 files from $OUT and the last 12,000 characters printed): three files,
#   $OUT/summary.json  every step's exit, seconds and figures, rewritten after each step;
#   $OUT/steps.log     the steps' whole output, one after another;
#   $OUT/session.txt   what was printed: one line a step, then the table of the figures that matter.
# The steps' limits are clipped to BUDGET seconds (330 by default), so the call ends inside 6 minutes and a second
# try fits in the session's 15. A failed install or no CUDA device stops the session with one line.
#
# GPU_SESSION_STEPS (default: every step) names the steps to run by their keys (cuda-vs-cpu B A torchrun B-offload
# tv C), e.g. a second call that runs again only the steps the first could not finish; the others are recorded as
# "not selected".
#
# GPU_SESSION_REHEARSAL=1 runs it here, without installing anything (this machine's packages, PYTHON or python3)
# and with the tiny networks at tiny sizes on GPU_SESSION_DEVICE (default cuda: without a GPU it stops at step 1;
# cpu: every step runs). WHEELS (default .whl) is where the wheels are looked for.
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/p' "$0" | grep '^#' | cut -c3-; exit 0 ;; esac
set -uo pipefail
export PYTHONUNBUFFERED=1
REPO=$(pwd)
OUT=$(realpath -m "${OUT:-gpu-out}")
BUDGET=${BUDGET:-330}
REHEARSAL=${GPU_SESSION_REHEARSAL:-0}
STEPS=${GPU_SESSION_STEPS:-}
DEV=${GPU_SESSION_DEVICE:-cuda}
WHEELS=${WHEELS:-$REPO/.whl}
PY=${PYTHON:-python3}
PARTS=$(mktemp -d)
mkdir -p "$OUT"
SESSION=$OUT/session.txt
LOG=$OUT/steps.log
SUMMARY=$OUT/summary.json
: >"$SESSION"
: >"$LOG"

say() { echo "$*" | tee -a "$SESSION"; }
summarise() {
    "$PY" "$REPO/scripts/gpu_summary.py" merge "$PARTS" "$SUMMARY" --info "rehearsal=$REHEARSAL" \
        "seconds=$SECONDS" "budget=$BUDGET" >>"$LOG" 2>&1
}
stop() {
    echo "== stopped: $*" >>"$LOG"
    summarise
    say "gpu_session: $*"
    exit 1
}
record() { "$PY" "$REPO/scripts/gpu_summary.py" record "$PARTS" "$@" >>"$LOG" 2>&1; summarise; }
# step KEY LIMIT NAME COMMAND...: run with a time limit (never past the budget), output appended to steps.log
selected() { [ -z "${STEPS:-}" ] || [[ " $STEPS " == *" $1 "* ]]; }
step() {
    local key=$1 limit=$2 name=$3
    shift 3
    if ! selected "$key"; then
        record "$key" "$name" "not selected" 0
        return 0
    fi
    local left=$((BUDGET - SECONDS - 10))
    if [ "$left" -lt 20 ]; then
        say "-- $name: skipped (${left}s of the budget left)"
        record "$key" "$name" skipped 0
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "===== $(date +%T) $name (limit ${limit}s)" >>"$LOG"
    local t0=$SECONDS
    timeout --signal=INT --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    say "-- $name: exit $rc in $((SECONDS - t0))s$([ $rc -eq 124 ] && echo ' (its limit)')"
    record "$key" "$name" "$rc" "$((SECONDS - t0))"
}

for key in $STEPS; do
    case " cuda-vs-cpu B A torchrun B-offload tv C " in *" $key "*) ;;
        *) stop "GPU_SESSION_STEPS: unknown step $key (the steps: cuda-vs-cpu B A torchrun B-offload tv C)" ;; esac
done
RUN=$(mktemp -d)
if [ "$REHEARSAL" = 1 ]; then  # this machine's packages, the tiny networks at tiny sizes
    export PYTHONPATH=$REPO
    TIMING=(--tiny --frames 5 --size 32x48 --device "$DEV")
    TIMING_C=(--tiny --frames 9 --size 32x48 --device "$DEV")
    WARMUP=()
    NETS="tiny networks (rehearsal)"
    CHECK=(--device "$DEV" --dtype float32)
    TV_CLIP=(16 64 96)
else
    for wheel in diffusers av importlib_metadata; do
        compgen -G "$WHEELS/$wheel-*.whl" >/dev/null ||
            stop "no $wheel wheel in $WHEELS: run 'bash scripts/gpu_prepare.sh' here and carry .whl"
    done
    { "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl && "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
        --target /tmp/site "$REPO"; } >>"$LOG" 2>&1 || stop "pip could not install the wheels and lvtino: $(tail -1 "$LOG")"
    export PYTHONPATH=/tmp/site
    TIMING=(--device "$DEV")
    TIMING_C=(--device "$DEV" --frames 81)
    WARMUP=(--warmup-frames 5)
    NETS="real-size"
    CHECK=(--device "$DEV" --dtype bfloat16)
    TV_CLIP=(48 360 640)
fi
cd "$RUN"  # outside the source tree: lvtino (and its configs) as installed
# one process: the packages import (exit 4 and the error's last line in steps.log if not), then the device's facts
# into device.json, and (cuda) whether there is one (exit 3 if not)
"$PY" -c "
import json, sys
try:
    import diffusers, av, torch, lvtino, lvtino.configs
except Exception as err:
    print(f'{type(err).__name__}: {err}', file=sys.stderr)
    sys.exit(4)
print('diffusers', diffusers.__version__, 'av', av.__version__, 'torch', torch.__version__, 'lvtino from',
      lvtino.__file__, file=sys.stderr)
cuda = torch.cuda.is_available() and '$DEV' == 'cuda'
json.dump({'torch': torch.__version__, 'cuda': torch.version.cuda,
           'name': torch.cuda.get_device_name(0) if cuda else 'cpu (rehearsal)'}, sys.stdout)
sys.exit(3 if '$DEV' == 'cuda' and not cuda else 0)
" >"$PARTS/device.json" 2>>"$LOG"
case $? in
    0) ;;
    3) rm -f "$PARTS/device.json"; stop "no CUDA device (torch.cuda.is_available() is False): nothing to measure here" ;;
    4) rm -f "$PARTS/device.json"; stop "the packages do not import: $(tail -1 "$LOG")" ;;
    *) rm -f "$PARTS/device.json"; stop "torch could not tell the device: $(tail -1 "$LOG")" ;;
esac
[ "$DEV" = cuda ] && nvidia-smi >>"$LOG" 2>&1
say "gpu_session: $(cat "$PARTS/device.json"), budget ${BUDGET}s"

step cuda-vs-cpu 40 "1. tiny networks: $DEV against cpu float32" \
    "$PY" "$REPO/scripts/cuda_vs_cpu.py" "${CHECK[@]}" --json "$PARTS/cuda-vs-cpu.json"
step B 130 "2. Problem B, $NETS" \
    "$PY" "$REPO/scripts/gpu_timing.py" --problem B "${TIMING[@]}" "${WARMUP[@]}" --json "$PARTS/B.json"
step A 90 "3. Problem A, $NETS" \
    "$PY" "$REPO/scripts/gpu_timing.py" --problem A "${TIMING[@]}" "${WARMUP[@]}" --json "$PARTS/A.json"
step torchrun 45 "4. torchrun, 2 processes, restore with the tiny networks" bash -c '
    "$0" -c "
from fractions import Fraction
from lvtino.video.synthetic import synthetic_clip
from lvtino.video.writer import VideoWriter
from lvtino.pipeline.degrade import DegradeRequest, degrade
with VideoWriter(\"clean.mkv\", Fraction(30)) as w:
    for f in synthetic_clip(33, 64, 96): w.write(f)
degrade(DegradeRequest(\"clean.mkv\", \"y.mkv\", problem=\"A\", overwrite=\"yes\"))
" &&
    "$0" -m torch.distributed.run --nproc_per_node 2 -m lvtino restore y.mkv -o torchrun.mkv --prior lvtino \
        --models tiny --device "$1" --window 16 --overlap 4 --stats "$2" -y' "$PY" "$DEV" "$PARTS/torchrun.json"
if [ "$DEV" = cuda ] || ! selected B-offload; then
    step B-offload 70 "5. Problem B, --offload model" \
        "$PY" "$REPO/scripts/gpu_timing.py" --problem B --offload model "${TIMING[@]}" --json "$PARTS/B-offload.json"
else
    say "-- 5. Problem B, --offload model: skipped (offloading needs CUDA)"
    record B-offload "5. Problem B, --offload model" skipped 0
fi
step tv 40 "6. --prior tv, $DEV against the cpu" bash -c '
    "$0" -c "
import sys
from fractions import Fraction
from lvtino.video.synthetic import synthetic_clip
from lvtino.video.writer import VideoWriter
from lvtino.pipeline.degrade import DegradeRequest, degrade
with VideoWriter(\"tv-clean.mkv\", Fraction(30)) as w:
    for f in synthetic_clip(*map(int, sys.argv[1:4])): w.write(f)
degrade(DegradeRequest(\"tv-clean.mkv\", \"tv-y.mkv\", problem=\"A\", overwrite=\"yes\"))
" "$2" "$3" "$4" &&
    for d in "$1" cpu; do "$0" -m lvtino restore tv-y.mkv -o tv-$d.mkv --prior tv --device $d \
        --stats tv-$d.json -y -q || exit 1; done &&
    "$0" -c "
import json, sys
import numpy as np
from lvtino.video.reader import probe, read_frames
dev, out = sys.argv[1:3]
s = {d: json.load(open(f\"tv-{d}.json\")) for d in (dev, \"cpu\")}
a, b = (np.stack(list(read_frames(probe(f\"tv-{d}.mkv\")))).astype(int) for d in (dev, \"cpu\"))
json.dump({\"cuda_seconds\": s[dev][\"seconds\"], \"cpu_seconds\": s[\"cpu\"][\"seconds\"], \"frames\": len(a),
           \"max_diff\": int(np.abs(a - b).max()), \"mean_diff\": float(np.abs(a - b).mean())}, open(out, \"w\"))
" "$1" "$5"' "$PY" "$DEV" "${TV_CLIP[@]}" "$PARTS/tv.json"
step C 200 "7. Problem C, $NETS" \
    "$PY" "$REPO/scripts/gpu_timing.py" --problem C "${TIMING_C[@]}" --json "$PARTS/C.json"

summarise
echo "== done in ${SECONDS}s" >>"$LOG"
"$PY" "$REPO/scripts/gpu_summary.py" table "$SUMMARY" 2>>"$LOG" | tee -a "$SESSION"
