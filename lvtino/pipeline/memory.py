"""Which network sits where at each stage of a generative restoration, and the expected peak: a plan to read
before starting (``restore --dry-run``), kept in ``--stats``.

Weights come from the networks' parameter counts (real configurations, counted
on the meta device: nothing is allocated). Activation peaks are per-pixel and
per-token figures measured on the CPU with real-size networks and random weights
in float32 and halved for 16-bit (``scripts/bench_vae_memory.py`` and
``scripts/bench_prompt_cache.py``; the transformer and UNet figures from one
forward pass each): an estimate until a GPU run measures the same job, which
``scripts/gpu_timing.py`` prints next to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lvtino.models.base import VAE_BYTES_PER_PIXEL

GB = 1e9
# 16-bit activation peaks of one call: the slope between two sizes of one float32 forward on the CPU (peak RSS
# above the weights), halved. Wan2.1-1.3B: 768 tokens 0.19 GB, 3072 tokens 0.50 GB; SDXL UNet, batch 1: 32x32
# latents 0.19 GB, 64x64 0.25 GB. With a memory-efficient attention kernel nothing grows with tokens squared.
TRANSFORMER_BYTES_PER_TOKEN = 70_000
UNET_BYTES_PER_LATENT_PIXEL = 9_400
FIXED_GB = 0.1  # what each call needs besides (the intercept of those lines, rounded up)
TEXT_ENCODER_PARAMS = {"video": 5.68e9, "image": 0.82e9}  # UMT5-XXL encoder; CLIP-L + OpenCLIP-bigG text towers


@lru_cache(maxsize=None)
def parameters() -> dict[str, int]:
    """Parameter counts of the real-size networks (built on the meta device)."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderKLWan, UNet2DConditionModel, WanTransformer3DModel

    from lvtino.models.architectures import FULL

    counts = {}
    with torch.device("meta"):
        for name, cls, key in (("video transformer", WanTransformer3DModel, "video_transformer"),
                               ("video VAE", AutoencoderKLWan, "video_vae"),
                               ("image UNet", UNet2DConditionModel, "image_unet"),
                               ("image VAE", AutoencoderKL, "image_vae")):
            counts[name] = sum(p.numel() for p in cls(**FULL[key]).parameters())
    return counts


@dataclass
class Stage:
    name: str
    on_device: list[str]      # networks whose weights are on the device
    weights_gb: float
    activations_gb: float

    @property
    def peak_gb(self) -> float:
        return self.weights_gb + self.activations_gb


def plan(kinds: list[str], frames: int, height: int, width: int, offload: str = "none",
         video_bytes: int = 2, image_bytes: int = 2, batch: int = 8, prompts_cached: bool = True) -> list[Stage]:
    """The stages of one window of ``frames`` x ``height`` x ``width`` for the models ``kinds``."""
    params = parameters()
    size = {name: n * (video_bytes if name.startswith("video") else image_bytes) / GB for name, n in params.items()}
    nets = [n for n in size if n.split()[0] in kinds]

    def resident(*active: str) -> list[str]:
        if offload == "none":
            return nets
        return list(active)

    def weights(names: list[str], active: tuple[str, ...]) -> float:
        if offload == "group":  # one block of the active network at a time (about 1/30 of it), VAEs whole
            return sum(size[n] / 30 if n.endswith(("transformer", "UNet")) else size[n] for n in active)
        return sum(size[n] for n in names)

    stages = []
    if not prompts_cached:
        for kind in kinds:
            enc = TEXT_ENCODER_PARAMS[kind] * 2 / GB  # in 16 bits whatever the networks' width (models.prompts.ENCODER_DTYPES)
            stages.append(Stage(f"encode the {kind} prompt (once; cached after)", [f"{kind} text encoder"], enc, 0.5))
    lat_t, lat_h, lat_w = 1 + (frames - 1 + 3) // 4, -(-height // 16) * 2, -(-width // 16) * 2
    if "video" in kinds:
        tokens = lat_t * (lat_h // 2) * (lat_w // 2)
        vae = VAE_BYTES_PER_PIXEL["video"] * height * width / GB + 3 * frames * height * width * 4 / GB + FIXED_GB
        for name, active, act in (("video VAE encode", ("video VAE",), vae),
                                  ("video transformer", ("video transformer",),
                                   TRANSFORMER_BYTES_PER_TOKEN * tokens / GB + FIXED_GB),
                                  ("video VAE decode", ("video VAE",), vae)):
            names = resident(*active)
            stages.append(Stage(name, names, weights(names, active), act))
    if "image" in kinds:
        from lvtino.models.image import VAE_FRAMES

        n, v = min(batch, frames), min(VAE_FRAMES, frames)
        for name, active, act in (("image VAE encode", ("image VAE",),
                                   VAE_BYTES_PER_PIXEL["image"] * v * height * width / GB + FIXED_GB),
                                  ("image UNet", ("image UNet",),
                                   UNET_BYTES_PER_LATENT_PIXEL * n * (height // 8) * (width // 8) / GB + FIXED_GB),
                                  ("image VAE decode", ("image VAE",),
                                   VAE_BYTES_PER_PIXEL["image"] * v * height * width / GB + FIXED_GB)):
            names = resident(*active)
            stages.append(Stage(name, names, weights(names, active), act))
    return stages


def describe(stages: list[Stage], process: dict[str, float] | None = None) -> list[str]:
    """``process``: what the process holds besides the networks, by what it is (GB), where they share its memory."""
    process = process or {}
    peak = max(stages, key=lambda s: s.peak_gb)
    lines = [f"  {s.name:44} {s.weights_gb:6.1f} GB weights + {s.activations_gb:5.1f} GB working = "
             f"{s.peak_gb:5.1f} GB  [{', '.join(s.on_device)}]" for s in stages]
    lines += [f"  {'and throughout, ' + what:44} {gb:6.1f} GB" for what, gb in process.items()]
    lines.append(f"  expected peak {peak.peak_gb + sum(process.values()):.1f} GB, at: {peak.name} "
                 f"(an estimate from CPU measurements)")
    return lines


def as_facts(stages: list[Stage], process: dict[str, float] | None = None) -> dict:
    process = process or {}
    return {"stages": [{"stage": s.name, "on_device": s.on_device, "weights_gb": round(s.weights_gb, 2),
                        "working_gb": round(s.activations_gb, 2), "peak_gb": round(s.peak_gb, 2)} for s in stages],
            "process_gb": {what: round(gb, 2) for what, gb in process.items()},
            "expected_peak_gb": round(max(s.peak_gb for s in stages) + sum(process.values()), 2)}
