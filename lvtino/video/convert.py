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
    for t in range(x.shape[2]):
        frame = ((x[0, :, t].detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        yield frame.permute(1, 2, 0).contiguous().numpy()
