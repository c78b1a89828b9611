"""Tests generated from the priors' catalog (``lvtino.pipeline.catalog.PRIORS``).

Every registered prior restores a small clip through the command line and through
``lvtino.Restorer`` (the generative ones with the tiny random networks): the two
give the same frames (to one grey level: the file path keeps windows in float16), the output fits the input within the bound of a restoration
(relative residual under 5 %), and the network evaluations reported are those of
the networks its entry names. A classical entry without its solver fails
``test_every_classical_entry_has_its_solver``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import lvtino
from conftest import smooth_frames, write_video
from lvtino.cli import main
from lvtino.pipeline.catalog import PRIORS
from lvtino.pipeline.priors import CLASSICAL
from lvtino.video.reader import probe, read_frames

MAX_RESIDUAL = 0.05  # |A(x) - y| / |y| of the restored frames: the noise and 8-bit rounding, with room


def test_every_classical_entry_has_its_solver():
    assert {n for n, e in PRIORS.items() if not e.generative} == set(CLASSICAL)


@pytest.fixture(scope="module")
def low(tmp_path_factory):
    """9 frames of 16x24 (a 2x smaller 32x48 clip), as a user's file."""
    from PIL import Image

    big = smooth_frames(9, 32, 48)
    frames = np.stack([np.asarray(Image.fromarray(f).resize((24, 16), Image.BICUBIC)) for f in big])
    return write_video(tmp_path_factory.mktemp("priors") / "low.mkv", frames, codec="ffv1"), frames


@pytest.mark.parametrize("name", list(PRIORS))
def test_every_prior_restores_through_the_command_line_and_the_api_alike(low, tmp_path, capsys, name):
    path, frames = low
    entry = PRIORS[name]
    tiny = ["--models", "tiny"] if entry.generative else []
    out, stats = tmp_path / "x.mkv", tmp_path / "s.json"
    assert main(["restore", str(path), "-o", str(out), "--scale", "2", "--prior", name, *tiny,
                 "--stats", str(stats)]) == 0, capsys.readouterr().err
    info = probe(out)
    assert (info.frames, info.width, info.height) == (9, 48, 32)
    s = json.loads(stats.read_text())
    assert s["relative_residual"] < MAX_RESIDUAL, s["relative_residual"]
    for kind in ("video", "image"):
        assert (s["nfe"][kind] > 0) == (kind in entry.networks), s["nfe"]
    restorer = lvtino.Restorer(scale=2, prior=name, **({"models": "tiny"} if entry.generative else {}))
    from_api = restorer(frames).astype(int)
    # the same frames, but for the rounding of the file path's windows, kept in float16 in its state folder
    assert np.abs(from_api - np.stack(list(read_frames(info)))).max() <= 1
