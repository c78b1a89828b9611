"""Loading the image model's prompt with and without the prompt cache: seconds and peak memory, side by side.

SDXL's two real-size CLIP text encoders (CLIP ViT-L/14's text tower and OpenCLIP
ViT-bigG/14's, 123 M + 695 M parameters) are built from their published
configurations with random weights and saved as a local SDXL base folder (nothing
is downloaded). Each case runs in a fresh process: ``miss`` loads both encoders
from disk and encodes the prompt (what every run did before the cache), ``hit``
reads the cached embeddings. Prints load seconds and peak RSS of each.

    python scripts/bench_prompt_cache.py [--dtype float32|bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# openai/clip-vit-large-patch14 (text) and laion CLIP-ViT-bigG-14 (text), as SDXL's text_encoder(_2)/config.json
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
              num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)


def build(base: Path) -> None:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from lvtino.models.text import char_tokenizer

    torch.manual_seed(0)
    CLIPTextModel(CLIPTextConfig(**CLIP_L)).save_pretrained(base / "text_encoder")
    CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G)).save_pretrained(base / "text_encoder_2")
    for sub in ("tokenizer", "tokenizer_2"):
        char_tokenizer(77).save_pretrained(base / sub)


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(base: str, dtype: str) -> None:
    import torch

    from lvtino.models.base import DTYPES, Placement
    from lvtino.models.loader import ImageSpec, Source, _image_prompt

    before = _peak_mb()
    t0 = time.perf_counter()
    embeds, pooled = _image_prompt(ImageSpec(base=Source(repo=base)), Placement(torch.device("cpu"), DTYPES[dtype]))
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "added_mb": peak - before,
                      "shape": list(embeds.shape)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.one, args.dtype)
    with tempfile.TemporaryDirectory(prefix="lvtino-prompt-") as tmp:
        base, cache = Path(tmp) / "sdxl-base", Path(tmp) / "cache"
        build(base)
        env = {**os.environ, "LVTINO_CACHE": str(cache)}
        rows = {}
        for case in ("miss", "hit"):  # the first run fills the cache, the second finds it
            out = subprocess.run([sys.executable, __file__, "--one", str(base), "--dtype", args.dtype], env=env,
                                 capture_output=True, text=True, check=True).stdout
            rows[case] = json.loads(out.strip().splitlines()[-1])
    print(f"SDXL's two real-size CLIP text encoders (random weights), {args.dtype}, CPU, a fresh process each")
    print(f"{'':28} {'seconds':>8} {'peak RSS MB':>12} {'of it, loading MB':>18}")
    for case, label in (("miss", "no cache: load and encode"), ("hit", "cached embeddings")):
        r = rows[case]
        print(f"{label:28} {r['seconds']:8.2f} {r['peak_mb']:12.0f} {r['added_mb']:18.0f}")
    print(f"ratio (no cache / cached): {rows['miss']['seconds'] / rows['hit']['seconds']:.0f}x seconds, "
          f"{rows['miss']['added_mb'] / max(rows['hit']['added_mb'], 1):.0f}x added memory")


if __name__ == "__main__":
    main()
