#!/usr/bin/env bash
# The GPU checks of one lent session (about 15 minutes of device time), in order of what they tell:
#   1. CUDA output of the tiny networks equal to the CPU's (bf16 tolerance), and a torchrun launch;
#   2. the paper's 25-frame 768x1280 Problem B job with the real-size networks (random weights): seconds per
#      stage, total, NFE, peak GPU memory, in the default placement and with --offload model;
#   3. the 81-frame Problem C job if time is left.
# Run from the repository root on the device machine, with the wheels its image lacks in wheels/:
#   pip download -d wheels --only-binary=:all: diffusers==0.42.1 av==18.1.0 einops==0.8.2 imageio==2.38.1 \
#       opencv-python-headless==5.0.0.93 accelerate==1.15.0 transformers==5.24.0 safetensors==0.8.0 \
#       tokenizers==0.23.3 huggingface-hub pyyaml tqdm jinja2 pillow
#   (the device tool:) run command="bash scripts/gpu_session.sh" carry=["wheels"] timeout_s=540
# Each step has its own time limit and writes into $OUT (default gpu-out); a failed step does not stop the next.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
log() { echo "== $(date +%T) $*" | tee -a "$OUT/session.txt"; }

log "install"
python -m pip install -q --no-index --find-links wheels diffusers av einops imageio opencv-python-headless accelerate \
    transformers safetensors tokenizers huggingface-hub pyyaml tqdm jinja2 pillow >>"$OUT/install.txt" 2>&1
python -m pip install -q --no-deps --no-build-isolation -e . >>"$OUT/install.txt" 2>&1
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
python -c "import torch, diffusers; print(torch.__version__, torch.version.cuda, diffusers.__version__)" | tee -a "$OUT/session.txt"

log "1. tiny networks: cuda bf16 vs cpu float32"
timeout 120 python scripts/cuda_vs_cpu.py --device cuda --dtype bfloat16 2>&1 | tail -3 | tee -a "$OUT/session.txt"
log "1b. torchrun --nproc_per_node 1, tiny networks on cuda"
python - <<'PY' >>"$OUT/session.txt" 2>&1
from fractions import Fraction
from lvtino.video.synthetic import synthetic_clip
from lvtino.video.writer import VideoWriter
with VideoWriter("gpu-clean.mkv", Fraction(30)) as w:
    for f in synthetic_clip(17, 64, 96): w.write(f)
PY
python -m lvtino degrade gpu-clean.mkv -o gpu-y.mkv --problem B -y >>"$OUT/session.txt" 2>&1
timeout 120 torchrun --nproc_per_node 1 -m lvtino restore gpu-y.mkv -o "$OUT/torchrun.mkv" --prior lvtino \
    --models tiny --device cuda --stats "$OUT/torchrun.json" -y 2>&1 | tail -3 | tee -a "$OUT/session.txt"

log "2. Problem B, 25 x 768 x 1280, real-size networks, default placement"
timeout 200 python scripts/gpu_timing.py --problem B --runs 2 2>&1 | tail -30 | tee "$OUT/timing-B.txt"
log "2b. the same with --offload model"
timeout 150 python scripts/gpu_timing.py --problem B --offload model 2>&1 | tail -30 | tee "$OUT/timing-B-offload.txt"
log "2c. the memory plan of the same job, for comparison"
python -m lvtino restore gpu-y.mkv -o /tmp/plan.mp4 --prior lvtino --dry-run --device cuda -y 2>&1 \
    | tee "$OUT/plan.txt" >/dev/null

log "3. Problem C, 81 frames"
timeout 150 python scripts/gpu_timing.py --problem C --frames 81 2>&1 | tail -30 | tee "$OUT/timing-C.txt"
log "done"
