"""Sharding windows over the processes of an ``accelerate launch`` or ``torchrun`` run.

Launched alone, lvtino is one process and every call here is a no-op. Launched
by Accelerate or torchrun, each process restores its share of the windows
(``split_between_processes``) into the run's state folder, and the main process
joins and encodes. Nothing a window computes depends on which process runs it.
"""

from __future__ import annotations

import contextlib
import logging
import os

import torch

log = logging.getLogger("lvtino")


def launched_with_several_processes() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class Processes:
    """This process's place in the launch: index, count, device, and the two collective steps lvtino uses."""

    def __init__(self, device: torch.device):
        self.device = device
        self.index, self.count, self._state = 0, 1, None
        if launched_with_several_processes():
            from accelerate import PartialState

            self._state = PartialState(cpu=device.type == "cpu")
            self.index, self.count = self._state.process_index, self._state.num_processes
            if device.type == "cuda":
                self.device = self._state.device  # one GPU per process
            if not self.is_main:
                log.setLevel(logging.WARNING)

    @classmethod
    def alone(cls, device: torch.device) -> "Processes":
        """This process on its own, even inside a launch (a batch item restored by one process)."""
        solo = cls.__new__(cls)
        solo.device, solo.index, solo.count, solo._state = device, 0, 1, None
        return solo

    def gather(self, items: list) -> list:
        """Every process's ``items``, concatenated in process order (on every process)."""
        if self._state is None:
            return list(items)
        from accelerate.utils import gather_object

        return list(gather_object(list(items)))

    def broadcast(self, value):
        """The main process's ``value``, on every process."""
        if self._state is None:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box, from_process=0)
        return box[0]

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @contextlib.contextmanager
    def split(self, items: list):
        """This process's contiguous share of ``items`` (all of them when alone)."""
        if self._state is None:
            yield list(items)
            return
        with self._state.split_between_processes(list(items)) as mine:
            yield list(mine)

    def wait(self) -> None:
        """Block until every process gets here."""
        if self._state is not None:
            self._state.wait_for_everyone()
