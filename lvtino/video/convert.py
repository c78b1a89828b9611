"""The IO edge: uint8 or uint16 (T, H, W, 3) frames <-> float (B=1, C=3, T, H, W) tensors in [-1, 1]."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch
from torch import Tensor


def frames_to_tensor(frames: Iterable[np.ndarray], dtype: torch.dtype = torch.float32) -> Tensor:
    """x = 2 v / top - 1, top = 255 for uint8 frames and 65535 for uint16 ones (16-bit files)."""
    stack = np.stack(list(frames))  # (T, H, W, 3)
    top = 65535.0 if stack.dtype == np.uint16 else 255.0
    x = torch.from_numpy(stack.astype(np.int32) if stack.dtype == np.uint16 else stack)  # torch has no uint16 maths
    return x.permute(3, 0, 1, 2).unsqueeze(0).to(dtype) / (top / 2) - 1.0


def tensor_to_frames(x: Tensor, bits: int = 8) -> Iterator[np.ndarray]:
    """Yield the frames of a (1, 3, T, H, W) tensor as (H, W, 3) uint8 (``bits`` 8) or uint16 (``bits`` 16),
    v = round((x + 1) top / 2) clipped to [0, top]."""
    if x.dim() != 5 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"expected a (1, 3, T, H, W) tensor, got {tuple(x.shape)}")
    if bits == 16:
        frames = x[0].detach().to("cpu", torch.float64).add(1).mul_(65535 / 2).round_().clamp_(0, 65535)
        yield from frames.to(torch.int32).permute(1, 2, 3, 0).numpy().astype(np.uint16)
        return
    frames = x[0].detach().to("cpu", torch.float32).add(1).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
    frames = frames.permute(1, 2, 3, 0).contiguous().numpy()  # (T, H, W, 3), converted in one pass
    yield from frames
