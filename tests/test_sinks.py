"""The run's two extension points behind ``Run`` (``pipeline.restore``): every ``WindowStore`` and every
``FrameSink`` kept to its written contract by tests generated from ``STORES`` and ``SINKS``.

A new store or sink is one class with its protocol's methods and one line below; the coverage test fails for a
class of the package that has them and no line.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from lvtino.distributed import Processes
from lvtino.pipeline.restore import FrameSink, MemorySink, MemoryWindows, WindowStore
from lvtino.pipeline.state import RunState
from lvtino.video.convert import tensor_to_frames
from lvtino.video.formats import Encoding
from lvtino.video.reader import probe, read_frames
from lvtino.video.segments import Encoder, Segments

T, H, W = 12, 24, 40


def _state(tmp: Path) -> RunState:
    return RunState(tmp / "out.mkv", {"digest": "x"}, {"run": 1}, Processes.alone(torch.device("cpu")), False,
                    False).open()


# name -> (make(tmp_path), how save/load rounds a window: the values load must give back)
STORES = {
    "RunState": (_state, lambda x: x.to(torch.float16).float()),
    "MemoryWindows": (lambda tmp: MemoryWindows(), lambda x: x),
}


class _FileSink:
    """An ``Encoder`` on lossless FFV1 segments, and the frames its output holds once joined."""

    def __init__(self, tmp: Path, start: int, end: int):
        self.output = tmp / "out.mkv"
        encoding = Encoding.choose(self.output).for_input()
        self.segments = Segments(tmp / "segments", self.output, Fraction(30), start, end, encoding).open()
        self.sink = Encoder(self.segments, start).start()
        self.folder = tmp / "segments"

    def frames(self) -> np.ndarray:
        self.segments.join()
        return np.stack(list(read_frames(probe(self.output))))

    def on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.name.startswith("segment-"))


class _MemorySink:
    def __init__(self, tmp: Path, start: int, end: int):
        self.sink = MemorySink(start, float_output=False)

    def frames(self) -> np.ndarray:
        return self.sink.frames()

    def on_disk(self) -> int:
        return 0


SINKS = {"Encoder": _FileSink, "MemorySink": _MemorySink}


def _frames(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, T, H, W, generator=g) * 2 - 1


def _implementers(protocol) -> set[str]:
    """Every class of the package with all of ``protocol``'s methods (the protocols are structural: an
    implementation names no base, and ``video`` does not import ``pipeline``)."""
    import importlib
    import inspect
    import pkgutil

    import lvtino

    methods = {n for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_")}
    found = set()
    for m in pkgutil.walk_packages(lvtino.__path__, "lvtino."):
        if m.name.endswith("__main__"):
            continue
        for name, cls in inspect.getmembers(importlib.import_module(m.name), inspect.isclass):
            if (cls.__module__ == m.name and not getattr(cls, "_is_protocol", False)
                    and all(callable(getattr(cls, k, None)) for k in methods)):
                found.add(name)
    return found


def test_every_store_and_sink_has_its_generated_tests():
    assert _implementers(WindowStore) == set(STORES)
    assert _implementers(FrameSink) == set(SINKS)


@pytest.mark.parametrize("name", STORES)
def test_a_store_gives_back_what_save_returned_and_forgets_what_is_discarded(tmp_path, name):
    make, rounded = STORES[name]
    store = make(tmp_path)
    x = [_frames(i)[:, :, :4] for i in range(3)]
    given = [v.clone() for v in x]
    kept = [store.save(i, x[i]) for i in range(3)]
    store.flush()
    for i in range(3):
        assert torch.equal(x[i], given[i])  # the caller's tensor is left as it was
        assert torch.equal(kept[i], rounded(given[i]))  # what save returns is what a later load gives
        assert torch.equal(store.load(i, tuple(x[i].shape)), kept[i])
    store.discard(1)
    assert store.load(1, tuple(x[1].shape)) is None
    assert store.load(7, tuple(x[0].shape)) is None  # never saved


@pytest.mark.parametrize("name", STORES)
def test_a_store_counts_the_disk_it_holds(tmp_path, name):
    make, _ = STORES[name]
    store = make(tmp_path)
    for i in range(3):
        store.save(i, _frames(i)[:, :, :4])
    store.flush()
    store.discard(0)
    files = [p for p in tmp_path.rglob("window-*") if p.is_file()]
    assert store.scratch_bytes() == sum(p.stat().st_size for p in files)
    if files:  # a file store: two windows of float16 values and their headers
        assert 2 * 2 * 3 * 4 * H * W <= store.scratch_bytes() <= 2 * (2 * 3 * 4 * H * W + 256)


@pytest.mark.parametrize("pieces", [[T], [5, 7], [1, 4, 3, 4]], ids=["one", "two", "four"])
@pytest.mark.parametrize("name", SINKS)
def test_every_sink_gives_the_frames_submitted_rounded_as_a_file_is(tmp_path, name, pieces):
    """The same frames, handed over in pieces from output frame 3 on: every sink ends with the same uint8 frames,
    and ``closed`` follows what it was given."""
    start = 3
    made = SINKS[name](tmp_path, start, start + T)
    sink, x = made.sink, _frames()
    assert sink.closed == start
    first = start
    for n in pieces:
        sink.submit(first, x[:, :, first - start:first - start + n])
        first += n
        sink.wait_closed(first)
        assert sink.closed == first
    sink.wait()
    assert sink.scratch_bytes() == made.on_disk()
    expected = np.stack(list(tensor_to_frames(x)))
    np.testing.assert_array_equal(made.frames(), expected)


@pytest.mark.parametrize("name", SINKS)
def test_a_sink_stopped_after_a_failure_keeps_what_was_final(tmp_path, name):
    made = SINKS[name](tmp_path, 0, T)
    sink = made.sink
    sink.submit(0, _frames()[:, :, :5])
    sink.wait_closed(5)
    sink.stop()
    assert sink.closed == 5 and sink.scratch_bytes() == made.on_disk()
