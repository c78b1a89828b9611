"""Loading the image model's prompt with and without the prompt cache: seconds and peak memory, side by side.

SDXL's two real-size CLIP text encoders (CLIP ViT-L/14's text tower and OpenCLIP
ViT-bigG/14's, 123 M + 695 M parameters) are built from their published
configurations with random weights and saved as local SDXL base folders (nothing
is downloaded): one with the float32 files only, one with the fp16 files beside
them (``model.fp16.safetensors``, what ``lvtino download`` fetches). Each case runs
in a fresh process: ``miss`` loads both encoders from disk (in fp16, as the
published code runs them) and encodes the prompt, ``hit`` reads the cached
embeddings. Prints load seconds and peak RSS of each.

    python scripts/bench_prompt_cache.py
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
sys.path.insert(0, str(ROOT / "scripts"))

def build(base: Path, fp16: bool) -> None:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from lvtino.models.text import char_tokenizer
    from model_repos import CLIP_G, CLIP_L  # SDXL's text_encoder(_2)/config.json

    torch.manual_seed(0)
    for cls, config, sub in ((CLIPTextModel, CLIP_L, "text_encoder"),
                             (CLIPTextModelWithProjection, CLIP_G, "text_encoder_2")):
        encoder = cls(CLIPTextConfig(**config))
        encoder.save_pretrained(base / sub)
        if fp16:
            encoder.half().save_pretrained(base / sub, variant="fp16")
    for sub in ("tokenizer", "tokenizer_2"):
        char_tokenizer(77).save_pretrained(base / sub)


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(base: str) -> None:
    import torch

    from lvtino.models.base import Placement
    from lvtino.models.prompts import image_prompt
    from lvtino.models.spec import ImageSpec, Source

    before = _peak_mb()
    t0 = time.perf_counter()
    embeds, pooled = image_prompt(ImageSpec(base=Source(repo=base)), Placement(torch.device("cpu"), torch.float32))
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "added_mb": peak - before,
                      "shape": list(embeds.shape)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.one)
    cases = (("float32", "no cache, float32 files"), ("fp16", "no cache, fp16 files"), ("hit", "cached embeddings"))
    with tempfile.TemporaryDirectory(prefix="lvtino-prompt-") as tmp:
        env = {**os.environ, "LVTINO_CACHE": str(Path(tmp) / "cache")}
        rows = {}
        for case, _ in cases:  # each base's first run fills the cache (keyed by its files); "hit" finds fp16's
            base = Path(tmp) / ("sdxl-float32" if case == "float32" else "sdxl-fp16")
            if not base.exists():
                build(base, fp16=case != "float32")
            out = subprocess.run([sys.executable, __file__, "--one", str(base)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            rows[case] = json.loads(out.strip().splitlines()[-1])
    print("SDXL's two real-size CLIP text encoders (random weights) run in fp16, CPU, a fresh process each")
    print(f"{'':28} {'seconds':>8} {'peak RSS MB':>12} {'of it, loading MB':>18}")
    for case, label in cases:
        r = rows[case]
        print(f"{label:28} {r['seconds']:8.2f} {r['peak_mb']:12.0f} {r['added_mb']:18.0f}")
    print(f"fp16 files / float32 files: {rows['fp16']['seconds'] / rows['float32']['seconds']:.2f}x seconds, "
          f"{rows['fp16']['added_mb'] / rows['float32']['added_mb']:.2f}x added memory; no cache (fp16) / cached: "
          f"{rows['fp16']['seconds'] / rows['hit']['seconds']:.0f}x seconds, "
          f"{rows['fp16']['added_mb'] / max(rows['hit']['added_mb'], 1):.0f}x added memory")

if __name__ == "__main__":
    main()
