"""The IO edge: uint8 (T, H, W, 3) frames <-> float (B=1, C=3, T, H, W) tensors in [-1, 1]."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor


def frames_to_tensor(frames: Iterable[np.ndarray], dtype: torch.dtype = torch.float32) -> Tensor:
    stack = np.stack(list(frames))  # (T, H, W, 3)
    x = torch.from_numpy(stack).permute(3, 0, 1, 2).unsqueeze(0)
    return x.to(dtype) / 127.5 - 1.0


def tensor_to_frames(x: Tensor) -> Iterator[np.ndarray]:
    """Yield the frames of a (1, 3, T, H, W) tensor as (H, W, 3) uint8, rounded and clipped."""
    if x.dim() != 5 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"expected a (1, 3, T, H, W) tensor, got {tuple(x.shape)}")
    frames = x[0].detach().to("cpu", torch.float32).add(1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
    frames = frames.permute(1, 2, 3, 0).contiguous().numpy()  # (T, H, W, 3), converted in one pass
    yield from frames
