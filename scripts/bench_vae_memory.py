"""Peak memory of one untiled VAE decode, real-size architectures with random weights (no downloads).

The figure behind ``--vae-tiling auto`` (``lvtino.models.base.VAE_BYTES_PER_PIXEL``): run in a fresh
process per size, on the CPU in float32; a 16-bit GPU decode needs about half.

    python scripts/bench_vae_memory.py wan 512 512 2     # Wan VAE: 2 latent frames (5 frames) of 512x512
    python scripts/bench_vae_memory.py sdxl 256 256 1    # SDXL VAE: a batch of 1 frame of 256x256
"""

import argparse
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lvtino.models.architectures import FULL  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("kind", choices=["wan", "sdxl"], help="which VAE")
parser.add_argument("height", type=int)
parser.add_argument("width", type=int)
parser.add_argument("count", type=int, help="latent frames (wan) or a batch of frames (sdxl)")
args = parser.parse_args()
kind, h, w, t = args.kind, args.height, args.width, args.count
torch.manual_seed(0)
if kind == "wan":
    from diffusers import AutoencoderKLWan
    vae = AutoencoderKLWan(**FULL["video_vae"]).eval()
    z = torch.randn(1, 16, t, h // 8, w // 8)
else:
    from diffusers import AutoencoderKL
    vae = AutoencoderKL(**FULL["image_vae"]).eval()
    z = torch.randn(t, 4, h // 8, w // 8)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.inference_mode():
    out = vae.decode(z, return_dict=False)[0]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
frames = out.shape[2] if kind == "wan" else out.shape[0]
per_pixel = (peak - base) * 1024 / (h * w * (1 if kind == "wan" else t))  # ru_maxrss is in KiB
print(f"{kind} VAE decode to {frames} frame(s) of {w}x{h}: peak +{(peak - base) / 1024:.0f} MB, "
      f"{per_pixel:.0f} bytes per pixel of a {'frame' if kind == 'wan' else 'batch frame'} (float32)")
