"""The two adapters and their loading: noise parameterisations, padding, checkpoints, missing weights."""

from __future__ import annotations


from pathlib import Path

import pytest
import torch

from lvtino.errors import UserError
from lvtino.models.base import Placement, pad_frames, pad_time
from lvtino.models.loader import load_models
from lvtino.models.spec import load_models_spec
from lvtino.models.weights import causvid_to_diffusers, fuse_wan_lora, read_state_dict
from lvtino.models.video import flow_sigmas
from lvtino.runtime import StageTimer
from model_repos import save_repos

CPU = Placement(torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def tiny():
    return load_models("tiny", ["video", "image"], CPU, StageTimer())


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    return save_repos(tmp_path_factory.mktemp("repos"), "tiny")


def clip(frames=5, h=40, w=56, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, frames, h, w, generator=g) * 2 - 1


def test_flow_sigma_table_is_diffusers_shifted_flow_table():
    """Against diffusers' own flow-matching scheduler with Wan's shift (its table in float32)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    reference = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=8.0).sigmas
    s = flow_sigmas(8.0)
    assert s.shape == reference.shape == (1000,)
    assert torch.allclose(s, reference.double(), atol=2e-7)


def test_video_noise_is_the_nearest_table_sigma_and_the_network_gets_the_integer(tiny):
    sigma, t = tiny.video.sigma_at(757)
    table = 1000 * flow_sigmas(8.0)
    assert t == 757.0  # the schedule's integer, as the published sampler passes it
    assert 1000 * sigma == pytest.approx(float(table[(table - 757).abs().argmin()]))


def test_padding_reaches_the_multiples_and_keeps_content():
    x = clip(6, 30, 50)
    p = pad_time(pad_frames(x, 16), 4)
    assert p.shape == (1, 3, 9, 32, 64)
    assert torch.equal(p[:, :, :6, :30, :50], x)
    assert torch.equal(p[:, :, 8], p[:, :, 5])  # the last frame repeated
    assert pad_time(clip(5), 4).shape[2] == 5  # already 1 + 4k


@pytest.mark.parametrize("shape", [(1, 16, 16), (5, 40, 56), (7, 33, 47)])
def test_adapters_return_the_input_shape_in_range(tiny, shape):
    x = clip(*shape)
    for model, t in ((tiny.video, 757), (tiny.image, 374)):
        out = model.denoise(x, t, torch.Generator().manual_seed(1))
        assert out.shape == x.shape
        assert out.abs().max() <= 1 and torch.isfinite(out).all()


def test_video_adapter_recovers_x0_from_an_oracle_velocity(tiny, monkeypatch):
    """With v = eps - z0 exactly, the adapter returns decode(encode(x)): its noise and x0 formulas agree."""
    video = tiny.video
    x = clip(5, 32, 48)
    eps = torch.randn((1, 16, 2, 4, 6), generator=torch.Generator().manual_seed(3))  # the adapter's own draw
    sigma, _ = video.sigma_at(522)

    def oracle(zt, timestep, encoder_hidden_states, return_dict=False):
        z0 = (zt - sigma * eps) / (1 - sigma)
        return (eps - z0,)

    monkeypatch.setattr(video, "transformer", oracle)
    out = video.denoise(x, 522, torch.Generator().manual_seed(3))
    with torch.inference_mode():
        z = video.vae.encode(x).latent_dist.mean
        expected = video.vae.decode(z).sample.clamp(-1, 1)
    assert torch.allclose(out, expected, atol=1e-5)


def test_image_adapter_recovers_x0_from_an_oracle_noise_shared_by_all_frames(tiny, monkeypatch):
    """The UNet sees one noise draw for every frame; an oracle eps returns decode(encode(frame))."""
    image = tiny.image
    x = clip(4, 32, 48)
    eps = torch.randn((1, 4, 4, 6), generator=torch.Generator().manual_seed(5))
    seen = []

    def oracle(zt, t, encoder_hidden_states, added_cond_kwargs, return_dict=False):
        seen.append(zt)
        return (eps.expand(zt.shape[0], -1, -1, -1),)

    monkeypatch.setattr(image, "unet", oracle)
    out = image.denoise(x, 249, torch.Generator().manual_seed(5))
    frames = x[0].permute(1, 0, 2, 3)
    with torch.inference_mode():
        expected = image.vae.decode(image.vae.encode(frames).latent_dist.mean).sample.clamp(-1, 1)
    assert torch.allclose(out[0].permute(1, 0, 2, 3), expected, atol=1e-5)
    # same frames in, same noisy latents out: the noise is shared
    seen.clear()
    still = x[:, :, :1].expand(-1, -1, 4, -1, -1).contiguous()
    image.denoise(still, 249, torch.Generator().manual_seed(7))
    zt = torch.cat(seen)
    assert torch.allclose(zt, zt[:1].expand_as(zt))


def test_image_sweep_batches_frames(tiny, monkeypatch):
    image = tiny.image
    calls = []
    forward = image.unet.forward
    monkeypatch.setattr(image.unet, "forward", lambda *a, **k: calls.append(a[0].shape[0]) or forward(*a, **k))
    monkeypatch.setattr(image, "batch_size", 3)
    before = image.calls
    image.denoise(clip(7, 16, 16), 124, torch.Generator().manual_seed(0))
    assert calls == [3, 3, 1] and image.calls == before + 1  # one sweep, one NFE


def test_an_image_sweep_places_each_network_once(tiny, monkeypatch):
    """--offload model moves a network to the GPU and back once per sweep (the VAE for encoding and decoding),
    not once per batch of frames (here 4 batches of at most 2 frames)."""
    image = tiny.image
    placed = []
    running = image.placement.running

    def counting(module):
        placed.append(type(module).__name__)
        return running(module)

    monkeypatch.setattr(image.placement, "running", counting)
    monkeypatch.setattr(image, "batch_size", 2)
    image.denoise(clip(7, 16, 16), 124, torch.Generator().manual_seed(0))
    assert placed == ["AutoencoderKL", "UNet2DConditionModel", "AutoencoderKL"]


def test_networks_never_require_grad(tiny):
    for model in (tiny.video.transformer, tiny.video.vae, tiny.image.unet, tiny.image.vae):
        assert not any(p.requires_grad for p in model.parameters())
    with torch.enable_grad():
        x = clip(5, 16, 16).requires_grad_(True)
        out = tiny.video.denoise(x, 757, torch.Generator().manual_seed(0))
    assert not out.requires_grad


def test_causvid_checkpoint_converts_to_identical_weights(repos):
    path, weights = repos
    spec = load_models_spec(path)
    state = causvid_to_diffusers(read_state_dict(f"{spec.video.weights.repo}/{spec.video.weights.filename}"))
    assert set(state) == {k for k in weights if not k.startswith("rope.")}
    assert all(torch.equal(state[k], weights[k]) for k in state)


def test_loading_local_folders_runs_the_real_loader(repos):
    path, weights = repos
    models = load_models(str(path), ["video", "image"], CPU, StageTimer())
    got = models.video.transformer.state_dict()
    assert all(torch.equal(got[k], weights[k]) for k in weights)
    assert models.video.prompt_embeds.shape[1] == 16  # max_sequence_length from the file
    x = clip(5, 16, 16)
    assert models.image.denoise(x, 374, torch.Generator().manual_seed(0)).shape == x.shape


def test_cached_prompt_embeddings_mean_no_text_encoder(repos, tmp_path, monkeypatch):
    """The first load encodes the prompts and keeps them; the next builds no text encoder and gets the same
    embeddings; another prompt is encoded anew."""
    import transformers

    from lvtino.models.prompts import prompt_cache

    monkeypatch.setenv("LVTINO_CACHE", str(tmp_path / "cache"))
    built = []
    for cls in ("UMT5EncoderModel", "CLIPTextModel", "CLIPTextModelWithProjection"):
        original = getattr(transformers, cls).from_pretrained.__func__

        def counted(klass, *args, _name=cls, _original=original, **kwargs):
            built.append(_name)
            return _original(klass, *args, **kwargs)
        monkeypatch.setattr(getattr(transformers, cls), "from_pretrained", classmethod(counted))
    path, _ = repos
    first = load_models(str(path), ["video", "image"], CPU, StageTimer())
    assert sorted(built) == ["CLIPTextModel", "CLIPTextModelWithProjection", "UMT5EncoderModel"]
    assert len(list(prompt_cache().glob("*.safetensors"))) == 2
    built.clear()
    second = load_models(str(path), ["video", "image"], CPU, StageTimer())
    assert built == []
    assert torch.equal(first.video.prompt_embeds, second.video.prompt_embeds)
    assert torch.equal(first.image.pooled_embeds, second.image.pooled_embeds)
    other = tmp_path / "other.yaml"
    import yaml

    spec = yaml.safe_load(path.read_text())
    spec["video"]["prompt"] = "a sharp video"
    other.write_text(yaml.safe_dump(spec))
    load_models(str(other), ["video"], CPU, StageTimer())
    assert built == ["UMT5EncoderModel"]
    for f in prompt_cache().glob("*.safetensors"):  # a damaged cache file is made again, with a warning
        f.write_bytes(b"not a tensor file")
    built.clear()
    load_models(str(path), ["video"], CPU, StageTimer())
    assert built == ["UMT5EncoderModel"]


def test_checkpoints_with_code_are_refused(tmp_path):
    from fractions import Fraction  # any Python object outside the tensor allow-list stands for code

    torch.save({"generator": Fraction(1, 3)}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="evil.pt: refused"):
        read_state_dict(tmp_path / "evil.pt")
    (tmp_path / "evil.pt").rename(tmp_path / "evil.safetensors")  # a pickle under the safe format's name
    with pytest.raises(UserError, match="evil.safetensors: not a safetensors file"):
        read_state_dict(tmp_path / "evil.safetensors")


def test_a_checkpoint_that_does_not_fit_is_one_line(repos, tmp_path):
    path, _ = repos
    spec = load_models_spec(path)
    bad = read_state_dict(f"{spec.video.weights.repo}/{spec.video.weights.filename}")
    del bad["generator"]["model.head.head.weight"]
    (tmp_path / spec.video.weights.filename).parent.mkdir(parents=True)
    torch.save(bad, tmp_path / spec.video.weights.filename)
    text = path.read_text().replace(spec.video.weights.repo, str(tmp_path))
    (tmp_path / "models.yaml").write_text(text)
    with pytest.raises(UserError, match="1 weights missing, e.g. proj_out.weight"):
        load_models(str(tmp_path / "models.yaml"), ["video"], CPU, StageTimer())


def test_lora_fuses_into_the_named_layers(tiny):
    from diffusers import WanTransformer3DModel

    from lvtino.models.architectures import TINY

    torch.manual_seed(0)
    model = WanTransformer3DModel(**TINY["video_transformer"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    down, up = torch.randn(2, 24), torch.randn(24, 2)
    lora = {"diffusion_model.blocks.0.self_attn.q.lora_down.weight": down,
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": up,
            "diffusion_model.blocks.0.self_attn.q.alpha": torch.tensor(1.0),
            "diffusion_model.blocks.1.ffn.2.diff_b": torch.ones(24)}
    assert fuse_wan_lora(model, lora, scale=0.5) == 2
    after = model.state_dict()
    key = "blocks.0.attn1.to_q.weight"
    assert torch.allclose(after[key], before[key] + 0.5 * (1.0 / 2) * up @ down, atol=1e-6)
    assert torch.allclose(after["blocks.1.ffn.net.2.bias"], before["blocks.1.ffn.net.2.bias"] + 0.5)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert sorted(changed) == ["blocks.0.attn1.to_q.weight", "blocks.1.ffn.net.2.bias"]


def test_missing_weights_stop_at_once_with_one_line(tmp_path, monkeypatch):
    """Before anything is built or read: no network, no file of weights opened."""
    import diffusers
    import transformers

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    built = []
    for cls in (diffusers.WanTransformer3DModel, diffusers.AutoencoderKLWan, diffusers.UNet2DConditionModel,
                diffusers.AutoencoderKL, transformers.UMT5EncoderModel, transformers.CLIPTextModel):
        monkeypatch.setattr(cls, "from_pretrained", classmethod(lambda c, *a, **k: built.append(c)))
        monkeypatch.setattr(cls, "from_config", classmethod(lambda c, *a, **k: built.append(c)), raising=False)
    with pytest.raises(UserError) as err:
        load_models(None, ["video", "image"], CPU, StageTimer())
    assert built == []
    message = str(err.value)
    assert "\n" not in message
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in message
    assert "lvtino download" in message and "prior='tv'" in message  # a Python caller's words


def test_models_file_mistakes_are_named(tmp_path):
    bad = tmp_path / "m.yaml"
    bad.write_text("video: {weights: {format: gguf}}\n")
    with pytest.raises(UserError, match="video.weights.format='gguf'"):
        load_models_spec(bad)
    bad.write_text("video: {wieghts: {}}\n")
    with pytest.raises(UserError, match="models.video.wieghts"):
        load_models_spec(bad)
    with pytest.raises(UserError, match="no such file"):
        load_models_spec(tmp_path / "absent.yaml")


def test_offloading_needs_a_gpu():
    with pytest.raises(UserError, match="offload='model': offloading moves networks to a CUDA device"):
        Placement(torch.device("cpu"), torch.float32, "model")


def test_packaged_models_file_names_the_papers_weights():
    spec = load_models_spec(None)
    assert spec.video.base.repo == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert (spec.video.weights.repo, spec.video.weights.filename) == ("tianweiy/CausVid",
                                                                      "bidirectional_checkpoint2/model.pt")
    assert spec.video.shift == 8.0 and spec.video.prompt == "a high resolution video"
    assert spec.image.base.repo == "stabilityai/stable-diffusion-xl-base-1.0"
    assert spec.image.weights.filename == "dmd2_sdxl_4step_unet_fp16.bin"
    assert spec.image.vae.repo == "madebyollin/sdxl-vae-fp16-fix"
    assert "non-commercial" in spec.video.weights.license and "non-commercial" in spec.image.weights.license


class _FakeVAE:
    use_tiling = False

    def enable_tiling(self):
        self.use_tiling = True

    def disable_tiling(self):
        self.use_tiling = False


def test_vae_tiling_is_off_by_default_as_published(tiny):
    assert Placement(torch.device("cpu"), torch.float32).vae_tiling == "off"
    assert not getattr(tiny.video.vae, "use_tiling", False) and not getattr(tiny.image.vae, "use_tiling", False)
    vae = _FakeVAE()
    for mode, want in (("on", True), ("off", False), ("auto", False)):  # auto on a CPU: never tiles
        assert Placement(torch.device("cpu"), torch.float32, vae_tiling=mode).tile(vae, "video", 10**9) is want
        assert vae.use_tiling is want
    with pytest.raises(UserError, match="vae_tiling='sometimes': unknown"):
        Placement(torch.device("cpu"), torch.float32, vae_tiling="sometimes")


def test_sdxl_runs_in_float16_where_the_published_code_does():
    from lvtino.config import load_problem
    from lvtino.pipeline.catalog import PRIORS
    from lvtino.pipeline.priors import GenerativePrior, ModelOptions

    from lvtino.pipeline.priors import network_dtypes

    # the published mapping on a GPU: Wan in bfloat16, SDXL in float16 (with the fp16-fix VAE); float32 on a CPU
    assert network_dtypes("auto", torch.device("cuda")) == (torch.bfloat16, torch.float16)
    assert network_dtypes("auto", torch.device("cpu")) == (torch.float32, torch.float32)
    assert network_dtypes("bfloat16", torch.device("cuda")) == (torch.bfloat16, torch.bfloat16)
    prior = GenerativePrior(PRIORS["lvtino"], load_problem("B"), ModelOptions(models="tiny"), torch.device("cpu"))
    assert (prior.dtype, prior.image_dtype) == (torch.float32, torch.float32)  # a CPU: float32 for both
    assert prior.facts()["image_dtype"] == "float32" and prior.facts()["vae_tiled_calls"] == 0
    with pytest.raises(UserError):
        GenerativePrior(PRIORS["lvtino"], load_problem("B"), ModelOptions(models="tiny", dtype="int8"),
                        torch.device("cpu"))


def test_text_encoders_run_at_their_own_width_from_the_fp16_files(repos, tmp_path, monkeypatch):
    """SDXL's CLIPs load from model.fp16.safetensors in fp16 (the published code's) and UMT5 in bf16, whatever
    the networks' dtype; the cache key holds the encoders' dtype and files, so a changed encoder is encoded anew."""
    import shutil

    import transformers

    from lvtino.models import prompts

    monkeypatch.setenv("LVTINO_CACHE", str(tmp_path / "cache"))
    path, _ = repos
    copy = tmp_path / "repos"
    shutil.copytree(path.parent, copy)
    spec_file = copy / "models.yaml"
    spec_file.write_text(path.read_text().replace(str(path.parent), str(copy)))
    sdxl = Path(load_models_spec(spec_file).image.base.repo)
    for sub in ("text_encoder", "text_encoder_2"):
        (sdxl / sub / "model.safetensors").unlink()  # what `lvtino download` fetches: the fp16 files alone
    seen = []
    for cls in ("UMT5EncoderModel", "CLIPTextModel", "CLIPTextModelWithProjection"):
        original = getattr(transformers, cls).from_pretrained.__func__

        def spying(klass, *args, _name=cls, _original=original, **kwargs):
            model = _original(klass, *args, **kwargs)
            seen.append((_name, kwargs.get("variant"), next(model.parameters()).dtype))
            return model
        monkeypatch.setattr(getattr(transformers, cls), "from_pretrained", classmethod(spying))
    spec = load_models_spec(spec_file)
    video_path, image_path = prompts.video_prompt_path(spec.video), prompts.image_prompt_path(spec.image)
    load_models(str(spec_file), ["video", "image"], CPU, StageTimer())
    assert sorted(seen) == [("CLIPTextModel", "fp16", torch.float16),
                            ("CLIPTextModelWithProjection", "fp16", torch.float16),
                            ("UMT5EncoderModel", None, torch.bfloat16)]
    assert video_path.is_file() and image_path.is_file()
    monkeypatch.setitem(prompts.ENCODER_DTYPES, "image", torch.float32)  # another width: another key
    assert prompts.image_prompt_path(spec.image) != image_path
    monkeypatch.setitem(prompts.ENCODER_DTYPES, "image", torch.float16)
    weights = sdxl / "text_encoder" / "model.fp16.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")  # other weights (a new revision of the folder): another key
    assert prompts.image_prompt_path(spec.image) != image_path
    assert prompts.video_prompt_path(spec.video) == video_path


def test_a_hub_base_is_keyed_by_its_snapshot(tmp_path, monkeypatch):
    from lvtino.models import prompts

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = tmp_path / "hub" / "models--org--sdxl" / "snapshots" / "abc123" / "text_encoder"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setattr(prompts, "locate", lambda repo, name, what="": snapshot.parent / name)
    assert prompts._encoder_identity("org/sdxl", ("text_encoder",)) == "org/sdxl@abc123"


def test_making_the_umt5_embeddings_without_room_is_one_line(monkeypatch):
    from lvtino.models import prompts

    monkeypatch.setattr(prompts, "available_memory", lambda: 4_000_000 * 1024)
    with pytest.raises(UserError, match=r"builds UMT5-XXL \(~12 GB in bf16\) where 4.1 GB is free: run `lvtino "
                                        r"download` on a machine with the memory"):
        prompts._check_room_for_umt5(torch.device("cpu"))
    prompts._check_room_for_umt5(torch.device("cuda"))  # a GPU's memory is the plan's to say


def test_download_makes_the_prompt_embeddings(repos, tmp_path, monkeypatch):
    from lvtino.models.prompts import prompt_cache, prompts_cached
    from lvtino.models.weights import download

    monkeypatch.setenv("LVTINO_CACHE", str(tmp_path / "cache"))
    path, _ = repos
    spec = load_models_spec(path)
    assert not prompts_cached(spec, "video") and not prompts_cached(spec, "image")
    said = []
    download(spec, ["video", "image"], echo=said.append)
    assert prompts_cached(spec, "video") and prompts_cached(spec, "image")
    assert sum(f"-> {prompt_cache()}" in line for line in said) == 2


@pytest.mark.parametrize("error,said", [
    (OSError("Error no file named diffusion_pytorch_model.safetensors found in directory /m"), "model weights missing"),
    (FileNotFoundError(2, "No such file or directory", "/m/shard-2.safetensors"), "model weights missing"),
    (PermissionError(13, "Permission denied", "/m/shard-1.safetensors"), "model weights could not be read"),
    (OSError(5, "Input/output error", "/m/shard-1.safetensors"), "model weights could not be read"),
])
def test_missing_weights_are_told_apart_from_weights_that_cannot_be_read(monkeypatch, error, said):
    """'missing' only for a file that is not there (diffusers' own OSError for an absent file has no errno); a file
    the system refuses (permissions, a failing disk) is said as such, with the system's reason."""
    from lvtino.models import loader

    monkeypatch.setattr(loader, "check_available", lambda spec, kinds: None)

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(loader, "_video_model", refuse)
    with pytest.raises(UserError, match=said):
        loader.load_models(None, ["video"], CPU, StageTimer())
