"""What the two priors share: the denoiser contract, device placement and padding.

The contract of every adapter: given a clip in pixel space, (B, 3, T, H, W) in
[-1, 1], a timestep and a generator, encode it, add noise at that timestep, call
the network once and return its estimate of the clean clip, same shape, in
[-1, 1]. VAE normalisation, the noise parameterisation, text conditioning,
padding and dtypes stay inside the adapter.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lvtino.errors import UserError, said
from lvtino.models.options import DTYPE_NAMES, OFFLOAD_MODES, TILING_MODES
from lvtino.runtime import StageTimer

# Activation memory of an untiled VAE decode in 16-bit, bytes per pixel of a frame (Wan decodes its latent frames
# one causal chunk at a time, so the peak follows the frame size, not the frame count) or of each frame an SDXL
# call decodes. The slope between two sizes of a float32 decode on the CPU with the real-size architectures and
# random weights, halved: Wan 256x256 1.57 GB, 512x512 5.36 GB; SDXL 128x128 0.13 GB, 256x256 0.37 GB
# (scripts/bench_vae_memory.py).
VAE_BYTES_PER_PIXEL = {"video": 9_700, "image": 2_400}
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


class Placement:
    """Where the networks live and run: ``--device``, ``--dtype`` and ``--offload``.

    - none: every network stays on the device.
    - model: networks wait in CPU memory and move to the device for their call only.
    - group: diffusers' group offloading, block by block (networks that support it).
    """

    def __init__(self, device: torch.device, dtype: torch.dtype, offload: str = "none", vae_tiling: str = "off"):
        if vae_tiling not in TILING_MODES:
            raise UserError(f"{said('vae_tiling', vae_tiling)}: unknown (known: {', '.join(TILING_MODES)})")
        if offload not in OFFLOAD_MODES:
            raise UserError(f"{said('offload', offload)}: unknown mode (known: {', '.join(OFFLOAD_MODES)})")
        if offload != "none" and device.type != "cuda":
            raise UserError(f"{said('offload', offload)}: offloading moves networks to a CUDA device; "
                            f"with {said('device', str(device))} use {said('offload', 'none')}")
        self.device, self.dtype, self.offload, self.vae_tiling = device, dtype, offload, vae_tiling

    def with_dtype(self, dtype: torch.dtype) -> "Placement":
        return Placement(self.device, dtype, self.offload, self.vae_tiling)

    def tile(self, vae, kind: str, pixels: int) -> bool:
        """Switch ``vae``'s tiling for a call over ``pixels`` output pixels: ``off`` (the published code's way),
        ``on``, or ``auto``: only when the untiled decode would not fit the device's free memory."""
        if self.vae_tiling == "auto":
            on = self.device.type == "cuda" and VAE_BYTES_PER_PIXEL[kind] * pixels > torch.cuda.mem_get_info()[0]
        else:
            on = self.vae_tiling == "on"
        if on != bool(getattr(vae, "use_tiling", False)):
            vae.enable_tiling() if on else vae.disable_tiling()
        return on

    def adopt(self, module: nn.Module) -> nn.Module:
        """Freeze ``module``, cast it and put it where it waits between calls."""
        module.requires_grad_(False).eval()
        keep = getattr(module, "_keep_in_fp32_modules", None) or []
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if tensor.is_floating_point():  # diffusers' from_pretrained keeps some layers in float32
                fp32 = any(part in name.split(".") for part in keep)
                tensor.data = tensor.data.to(torch.float32 if fp32 else self.dtype)
        if self.offload == "group" and hasattr(module, "enable_group_offload"):
            module.enable_group_offload(onload_device=self.device, offload_device=torch.device("cpu"),
                                        offload_type="block_level", num_blocks_per_group=1)
        elif self.offload == "none" or self.offload == "group":
            module.to(self.device)
        return module

    @contextlib.contextmanager
    def running(self, module: nn.Module) -> Iterator[nn.Module]:
        """``module`` on the device for the duration of the block."""
        if self.offload != "model":
            yield module
            return
        module.to(self.device)
        try:
            yield module
        finally:
            module.to("cpu")


class ConsistencyModel:
    """A few-step prior seen through the adapter contract. Counts its calls."""

    kind = "model"

    def __init__(self, placement: Placement, timer: StageTimer | None = None):
        self.placement = placement
        self.timer = timer or StageTimer(placement.device)
        self.calls = 0

    def denoise(self, x: Tensor, timestep: float, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def noise(self, shape, generator: torch.Generator) -> Tensor:
        """Standard normal noise drawn on the CPU (same numbers on every device), float32."""
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(self.placement.device)


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pad_frames(x: Tensor, multiple: int) -> Tensor:
    """Replicate-pad the last two axes of ``x`` up to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = round_up(h, multiple) - h, round_up(w, multiple) - w
    if ph == 0 and pw == 0:
        return x
    if x.dim() == 5:  # (B, C, T, H, W): pad as a batch of frames
        b, c, t = x.shape[:3]
        flat = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        flat = F.pad(flat, (0, pw, 0, ph), mode="replicate")
        return flat.reshape(b, t, c, h + ph, w + pw).permute(0, 2, 1, 3, 4)
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def pad_time(x: Tensor, stride: int) -> Tensor:
    """Repeat the last frame of (B, C, T, H, W) until T = 1 + stride * k."""
    t = x.shape[2]
    target = 1 + round_up(t - 1, stride)
    if target == t:
        return x
    return torch.cat([x, x[:, :, -1:].expand(-1, -1, target - t, -1, -1)], dim=2)
