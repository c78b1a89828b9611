"""Frames of a video as tensors, decoded on demand: what a window, a seam or a streaming degrade reads."""

from __future__ import annotations

import torch

from lvtino.runtime import StageTimer
from lvtino.video.convert import frames_to_tensor
from lvtino.video.reader import VideoInfo, read_frames

SEEK_AHEAD = 8  # a jump forward by more frames than this seeks instead of decoding through


class DecodedFrames:
    """Frames of a video decoded on demand, mostly in increasing order (a jump back or far ahead seeks), kept
    until the caller says they are no longer needed."""

    def __init__(self, info: VideoInfo, device: torch.device = torch.device("cpu"), timer: StageTimer | None = None,
                 dtype: torch.dtype = torch.float32):
        self.info, self.device, self.timer, self.dtype = info, device, timer or StageTimer(), dtype
        self.cache: dict[int, torch.Tensor] = {}
        self._frames = None
        self._next = None

    def get(self, rows: list[int], keep_from: int | None = None) -> torch.Tensor:
        """Frames ``rows`` as (1, 3, n, h, w); frames below ``keep_from`` are forgotten."""
        with self.timer("read"):
            return self._get(rows, keep_from)

    def _get(self, rows: list[int], keep_from: int | None) -> torch.Tensor:
        if keep_from is not None:
            for r in [r for r in self.cache if r < keep_from]:
                del self.cache[r]
        missing = sorted(r for r in set(rows) if r not in self.cache)
        while missing:
            first = missing[0]
            if self._frames is None or self._next is None or first < self._next or first > self._next + SEEK_AHEAD:
                self._frames = read_frames(self.info, first, deep=True)  # seek; a deep file keeps its bits
                self._next = first
            upto = first  # decode through the run of wanted frames with short gaps, in one batch
            for r in missing[1:]:
                if r - upto > SEEK_AHEAD:
                    break
                upto = r
            batch = [next(self._frames) for _ in range(upto - self._next + 1)]
            x = frames_to_tensor(batch, self.dtype)
            for k in range(len(batch)):
                self.cache[self._next + k] = x[:, :, k:k + 1]
            self._next += len(batch)
            missing = [r for r in missing if r not in self.cache]
        return torch.cat([self.cache[r] for r in rows], dim=2).to(self.device)


class MemoryFrames:
    """Frames given in memory, converted as they are asked for (the same ``get`` as ``DecodedFrames``, without a
    file): (T, h, w, 3) uint8 frames as a decoded file's, or a (1, 3, T, h, w) float tensor in [0, 1] without
    any rounding."""

    def __init__(self, video, info: VideoInfo, device: torch.device = torch.device("cpu"),
                 timer: StageTimer | None = None):
        self.video, self.info, self.device, self.timer = video, info, device, timer or StageTimer()

    def get(self, rows: list[int], keep_from: int | None = None) -> torch.Tensor:
        with self.timer("read"):
            if isinstance(self.video, torch.Tensor):
                return (self.video[:, :, list(rows)].to(self.device, torch.float32) * 2 - 1)
            return frames_to_tensor(self.video[list(rows)]).to(self.device)
