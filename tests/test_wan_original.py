"""The checkpoint path proven against the original Wan code (the ``wan22`` package, test-only).

The original modules are loaded from the installed package's files without
importing the package (its ``__init__`` pulls in the whole generation stack), with
``flash_attention`` replaced by torch's scaled-dot-product attention (same maths,
no CUDA-only kernel). A tiny original ``WanModel`` with random weights is saved in
CausVid's checkpoint layout and loaded by lvtino's loader; the diffusers
transformer must predict what the original does on the same latents, timestep and
text context. The same for a LoRA fused into the base weights, and for the Wan
VAE through diffusers' conversion of the original weights.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lvtino.models.architectures import TINY
from lvtino.models.loader import _load_wan_transformer
from lvtino.models.spec import Source, VideoSpec
from lvtino.models.weights import fuse_wan_lora

_SPEC = importlib.util.find_spec("wan")
pytestmark = [
    pytest.mark.skipif(_SPEC is None, reason="the original Wan code is not installed (pip install --no-deps "
                                             "wan22==2.2.11; `make test` does)"),
    pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning"),  # the original's autocast('cuda')
]

TEXT_LEN = TINY["video_prompt_tokens"]


def _flash_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0.0, softmax_scale=None, q_scale=None,
                     causal=False, window_size=(-1, -1), deterministic=False, dtype=None, version=None):
    """The original's attention ([B, L, heads, C] in and out) by torch's SDPA; full-length sequences only."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         is_causal=causal, scale=softmax_scale)
    return out.transpose(1, 2).contiguous()


@pytest.fixture(scope="module")
def original():
    folder = Path(next(iter(_SPEC.submodule_search_locations))) / "modules"
    package = types.ModuleType("wan_original")
    package.__path__ = [str(folder)]
    attention = types.ModuleType("wan_original.attention")
    attention.flash_attention = _flash_attention
    sys.modules.update({"wan_original": package, "wan_original.attention": attention})
    loaded = {}
    for name in ("model", "vae2_1"):
        spec = importlib.util.spec_from_file_location(f"wan_original.{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        loaded[name] = module
    yield loaded
    for name in ("wan_original", "wan_original.attention", "wan_original.model", "wan_original.vae2_1"):
        sys.modules.pop(name, None)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Every weight random (the original zero-initialises its output head: a comparison of zeros proves nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _original_transformer(original):
    t = TINY["video_transformer"]
    model = original["model"].WanModel(
        model_type="t2v", patch_size=t["patch_size"], text_len=TEXT_LEN, in_dim=t["in_channels"],
        dim=t["num_attention_heads"] * t["attention_head_dim"], ffn_dim=t["ffn_dim"], freq_dim=t["freq_dim"],
        text_dim=t["text_dim"], out_dim=t["out_channels"], num_heads=t["num_attention_heads"],
        num_layers=t["num_layers"], qk_norm=True, cross_attn_norm=True, eps=1e-6).eval()
    _randomise(model, 0)
    return model


def _spec(tmp_path: Path, state: dict, filename: str, fmt: str) -> VideoSpec:
    """A base folder (the diffusers transformer's config) and the weights file, as a user's local folders."""
    from diffusers import WanTransformer3DModel

    base = tmp_path / "base"
    WanTransformer3DModel(**TINY["video_transformer"]).save_config(base / "transformer")
    weights = tmp_path / "weights"
    weights.mkdir(exist_ok=True)
    if filename.endswith(".safetensors"):
        from safetensors.torch import save_file
        save_file(state, str(weights / filename))
    else:
        torch.save(state, weights / filename)
    return VideoSpec(base=Source(repo=str(base)), weights=Source(repo=str(weights), filename=filename, format=fmt))


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 16, 3, 8, 12, generator=g)  # 3 latent frames of 8 x 12
    context = torch.randn(TEXT_LEN, TINY["video_transformer"]["text_dim"], generator=g)
    return latents, context


@torch.inference_mode()
def _predict_original(model, latents, context, timestep):
    tokens = latents.shape[2] * (latents.shape[3] // 2) * (latents.shape[4] // 2)
    return model([latents[0]], t=torch.tensor([timestep]), context=[context], seq_len=tokens)[0][None]


@torch.inference_mode()
def _predict_diffusers(net, latents, context, timestep):
    return net(latents, timestep=torch.tensor([timestep]), encoder_hidden_states=context[None], return_dict=False)[0]


@pytest.mark.parametrize("timestep", [125.0, 757.0])
def test_causvid_checkpoint_predicts_as_the_original_wan_model(original, tmp_path, timestep):
    model = _original_transformer(original)
    checkpoint = {"generator": {f"model.{k}": v for k, v in model.state_dict().items()}}
    net = _load_wan_transformer(_spec(tmp_path, checkpoint, "model.pt", "causvid")).float().eval()
    latents, context = _inputs()
    want = _predict_original(model, latents, context, timestep)
    got = _predict_diffusers(net, latents, context, timestep)
    assert want.abs().mean() > 0.1  # a real prediction, not the zero-initialised head
    assert_float32_equal(got, want, timestep)


def assert_float32_equal(got, want, timestep: float):
    """The two models agree to what float32 allows at ``timestep``. The original Wan code computes the sinusoidal
    timestep embedding (and RoPE) in float64, diffusers in float32: the embedding's arguments reach t times the
    base frequency, so they carry an error of about t float32 ulps, which every block then carries. The relative
    RMS difference is held to (1 + t) ulps (measured: a tenth of that, 1.6e-6 at t = 125, 7.3e-6 at 757) and the
    largest element's to four times that (the tail moves with the CPU's summation order); a wrong weight, name or
    rotary phase differs by 1e-2 or more."""
    ulps = (1 + timestep) * torch.finfo(torch.float32).eps
    diff = (got - want).double()
    rms = float(diff.pow(2).mean().sqrt() / want.double().pow(2).mean().sqrt())
    peak = float(diff.abs().max()) / max(1.0, float(want.abs().max()))
    assert rms <= ulps and peak <= 4 * ulps, (rms, peak, ulps)


def test_a_fused_lora_predicts_as_the_original_with_the_update_added(original, tmp_path):
    model = _original_transformer(original)
    base_state = {f"model.{k}": v for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(5)
    rank, alpha, lora = 4, 2.0, {}
    targets = ["blocks.0.self_attn.q", "blocks.1.cross_attn.v", "blocks.0.ffn.0", "head.head"]
    params = dict(model.named_parameters())
    for name in targets:
        out_f, in_f = params[name + ".weight"].shape
        lora[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(rank, in_f, generator=g) * 0.3
        lora[f"diffusion_model.{name}.lora_up.weight"] = torch.randn(out_f, rank, generator=g) * 0.3
        lora[f"diffusion_model.{name}.alpha"] = torch.tensor(alpha)
    lora["diffusion_model.blocks.1.norm3.diff"] = torch.randn(params["blocks.1.norm3.weight"].shape, generator=g)
    spec = _spec(tmp_path, {"generator": base_state}, "model.pt", "causvid")
    net = _load_wan_transformer(spec).float().eval()
    assert fuse_wan_lora(net, lora, scale=0.7) == len(targets) + 1
    with torch.no_grad():  # the original with each update added by hand
        for name in targets:
            up, down = lora[f"diffusion_model.{name}.lora_up.weight"], lora[f"diffusion_model.{name}.lora_down.weight"]
            params[name + ".weight"].add_(0.7 * alpha / rank * up @ down)
        params["blocks.1.norm3.weight"].add_(0.7 * lora["diffusion_model.blocks.1.norm3.diff"])
    latents, context = _inputs(2)
    want = _predict_original(model, latents, context, 375.0)
    got = _predict_diffusers(net, latents, context, 375.0)
    assert_float32_equal(got, want, 375.0)


def test_the_wan_vae_encodes_and_decodes_as_the_original(original):
    """diffusers' AutoencoderKLWan with the original VAE's weights through diffusers' conversion: the same latent
    means (what the sampler sees) and the same decoded frames. The conversion knows the real layout only (four
    levels, two residual blocks each), so the VAE is the real one with narrow channels."""
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    cfg = dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True])
    vae = original["vae2_1"].WanVAE_(dim=cfg["base_dim"], z_dim=cfg["z_dim"], dim_mult=cfg["dim_mult"],
                                     num_res_blocks=cfg["num_res_blocks"], attn_scales=[],
                                     temperal_downsample=cfg["temperal_downsample"], dropout=0.0).eval()
    _randomise(vae, 3)
    ours = AutoencoderKLWan(**cfg).eval()
    state = convert_wan_vae_to_diffusers(vae.state_dict())
    result = ours.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    g = torch.Generator().manual_seed(4)
    clip = torch.rand(1, 3, 9, 32, 48, generator=g) * 2 - 1
    scale = [torch.zeros(cfg["z_dim"]), torch.ones(cfg["z_dim"])]
    with torch.inference_mode():
        mu = vae.encode(clip, scale)
        mean = ours.encode(clip).latent_dist.mean
        assert mu.shape == mean.shape == (1, 16, 3, 4, 6)
        assert (mean - mu).abs().max() <= 1e-5 * max(1.0, float(mu.abs().max()))
        want = vae.decode(mu, scale).clamp(-1, 1)
        got = ours.decode(mu, return_dict=False)[0].clamp(-1, 1)
    assert want.shape == got.shape == clip.shape
    assert (got - want).abs().max() <= 1e-5
