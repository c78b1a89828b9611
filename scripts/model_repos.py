"""Random models saved in the layouts of the real hub repositories, for the loader's real paths.

The Wan base folder holds the transformer's config, a diffusers VAE, the UMT5 text
encoder and its tokenizer; the CausVid checkpoint holds the transformer's weights in
the original Wan names under ``model.`` in a "generator" entry (a torch file read
with weights_only); the SDXL base holds the UNet config, two CLIP text encoders,
their tokenizers and the scheduler; the DMD2 file is a UNet state dict written by
torch.save; the SDXL VAE a diffusers folder. ``configs/models.yaml``'s file names
are kept.

``tiny``: the small architectures the tests use, every file written (text encoders
with weights, character tokenizers). ``full``: the published sizes (Wan2.1-1.3B,
SDXL), weights drawn as PyTorch's default initialisation would draw them but
straight into bf16/fp16 (the published checkpoints' dtypes); the text encoders are
written as configs only (UMT5-XXL alone is 11 GB) and the tokenizers as stand-ins:
a run with their prompt embeddings in lvtino's cache never builds them
(``fill_prompt_cache`` puts embeddings of the real shapes there).

    from model_repos import save_repos
    models_yaml, _ = save_repos(folder, "full")
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from lvtino.models.architectures import FULL, TINY
from lvtino.models.text import char_tokenizer

# diffusers name -> original Wan name (the inverse of diffusers' converter)
_TO_WAN = [
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("attn2", "cross_attn"), ("attn1", "self_attn"),
    (".to_out.0.", ".o."), (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
    ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"), ("proj_out", "head.head"),
]
# the published text encoders' configurations (only their configs are written at full size)
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu")
CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
              num_attention_heads=20, max_position_embeddings=77, projection_dim=1280, hidden_act="gelu")
NAMES = {  # the hub repositories' own names and files (configs/models.yaml)
    "wan": "Wan2.1-T2V-1.3B-Diffusers", "causvid": "CausVid", "causvid_file": "bidirectional_checkpoint2/model.pt",
    "sdxl": "stable-diffusion-xl-base-1.0", "dmd2": "DMD2", "dmd2_file": "dmd2_sdxl_4step_unet_fp16.bin",
    "vae": "sdxl-vae-fp16-fix",
}


def to_wan_name(name: str) -> str:
    if name == "scale_shift_table":
        return "head.modulation"
    name = name.replace(".scale_shift_table", ".modulation")
    for new, old in _TO_WAN:
        name = name.replace(new, old)
    # diffusers' norm2 is Wan's norm3 and the other way round
    return name.replace("norm2", "norm__swap").replace("norm3", "norm2").replace("norm__swap", "norm3")


def causvid_checkpoint(state: dict) -> dict:
    """A diffusers Wan transformer's state dict in CausVid's layout."""
    return {"generator": {"model." + to_wan_name(k): v for k, v in state.items() if not k.startswith("rope.")}}


def random_state(model, dtype: torch.dtype, seed: int) -> dict:
    """Weights for every parameter and buffer of ``model`` (built on the meta device: no memory), drawn in ``dtype``
    as PyTorch's default initialisation draws them: matrices and kernels uniform in +-1/sqrt(fan_in), vectors
    named weight (norm scales) one, the rest zero."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, p in model.state_dict().items():
        if p.dim() >= 2:
            bound = p[0].numel() ** -0.5
            out[name] = (torch.rand(p.shape, generator=g, dtype=torch.float32).to(dtype) * 2 - 1) * bound
        elif name.endswith("weight"):
            out[name] = torch.ones(p.shape, dtype=dtype)
        else:
            out[name] = torch.zeros(p.shape, dtype=dtype)
    return out


def save_repos(root: Path, size: str = "tiny", seed: int = 0) -> tuple[Path, dict | None]:
    """Write the five folders under ``root`` and a models.yaml naming them; return its path and the transformer's
    weights (diffusers names; None at full size, where they are let go once written)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, AutoencoderKLWan, DDPMScheduler, UNet2DConditionModel, WanTransformer3DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, UMT5Config, UMT5EncoderModel

    arch = TINY if size == "tiny" else FULL
    full = size == "full"
    root = Path(root)
    torch.manual_seed(seed)
    wan = root / NAMES["wan"]
    with init_empty_weights():
        transformer = WanTransformer3DModel(**arch["video_transformer"])
        unet = UNet2DConditionModel(**arch["image_unet"])
    transformer.save_config(wan / "transformer")
    unet.save_config(root / NAMES["sdxl"] / "unet")
    video_state = random_state(transformer, torch.bfloat16 if full else torch.float32, seed)
    AutoencoderKLWan(**arch["video_vae"]).save_pretrained(wan / "vae")
    if full:
        UMT5Config(**UMT5_XXL).save_pretrained(wan / "text_encoder")
        char_tokenizer(512).save_pretrained(wan / "tokenizer")  # a stand-in: never loaded (the cache serves)
    else:
        UMT5EncoderModel(UMT5Config(**arch["video_text_encoder"])).save_pretrained(wan / "text_encoder")
        char_tokenizer(arch["video_prompt_tokens"]).save_pretrained(wan / "tokenizer")
    checkpoint = root / NAMES["causvid"] / NAMES["causvid_file"]
    checkpoint.parent.mkdir(parents=True)
    torch.save(causvid_checkpoint(video_state), checkpoint)
    if full:
        video_state = None  # 2.8 GB not held while the 5.1 GB UNet is drawn

    sdxl = root / NAMES["sdxl"]
    if full:
        CLIPTextConfig(**CLIP_L).save_pretrained(sdxl / "text_encoder")
        CLIPTextConfig(**CLIP_G).save_pretrained(sdxl / "text_encoder_2")
    else:
        # each in float32 and as its fp16 variant (model.fp16.safetensors), as the hub repository holds them
        for cls, key, sub in ((CLIPTextModel, "image_text_encoder", "text_encoder"),
                              (CLIPTextModelWithProjection, "image_text_encoder_2", "text_encoder_2")):
            encoder = cls(CLIPTextConfig(**arch[key]))
            encoder.save_pretrained(sdxl / sub)
            encoder.half().save_pretrained(sdxl / sub, variant="fp16")
    for sub in ("tokenizer", "tokenizer_2"):
        char_tokenizer(77).save_pretrained(sdxl / sub)
    DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").save_pretrained(sdxl / "scheduler")
    weights = root / NAMES["dmd2"] / NAMES["dmd2_file"]
    weights.parent.mkdir(parents=True)
    torch.save(random_state(unet, torch.float16 if full else torch.float32, seed + 1), weights)
    AutoencoderKL(**arch["image_vae"]).save_pretrained(root / NAMES["vae"])

    spec = {
        "video": {"base": {"repo": str(wan)},
                  "weights": {"format": "causvid", "repo": str(root / NAMES["causvid"]),
                              "filename": NAMES["causvid_file"]}},
        "image": {"base": {"repo": str(sdxl)},
                  "weights": {"format": "unet", "repo": str(root / NAMES["dmd2"]), "filename": NAMES["dmd2_file"]},
                  "vae": {"repo": str(root / NAMES["vae"])}},
    }
    if not full:
        spec["video"]["max_sequence_length"] = arch["video_prompt_tokens"]
    path = root / "models.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, video_state


def fill_prompt_cache(models_yaml: Path, seed: int = 0) -> list[Path]:
    """Prompt embeddings of the real text encoders' shapes (UMT5-XXL: 512 x 4096; SDXL's CLIPs: 77 x 2048, pooled
    1280), random, where a run with ``models_yaml`` looks for them ($LVTINO_CACHE): no text encoder is built."""
    from safetensors.torch import save_file

    from lvtino.models.prompts import image_prompt_path, video_prompt_path
    from lvtino.models.spec import load_models_spec

    spec = load_models_spec(models_yaml)
    g = torch.Generator().manual_seed(seed)
    video_shape, image_shape = FULL["video_prompt_shape"], FULL["image_prompt_shape"]
    files = {video_prompt_path(spec.video): {"embeds": torch.randn((1, *video_shape), generator=g)},
             image_prompt_path(spec.image): {"embeds": torch.randn((1, *image_shape), generator=g),
                                              "pooled": torch.randn((1, FULL["image_pooled_dim"]), generator=g)}}
    for path, tensors in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path))
    return list(files)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        description="Write randomly initialised models in the hub repositories' layouts and a models.yaml naming "
                    "them, to try the loader's real paths (lvtino restore --models FOLDER/models.yaml) without a "
                    "download. Nothing they restore means anything: the weights are random.")
    parser.add_argument("folder", type=Path, help="a new (or empty) folder for the five model folders")
    parser.add_argument("--size", choices=("tiny", "full"), default="tiny",
                        help="tiny: the test architectures (~10 MB, text encoders included); full: the published "
                             "sizes (~8 GB; text encoders as configs only, with random prompt embeddings put in "
                             "$LVTINO_CACHE)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.folder.exists() and any(args.folder.iterdir()):
        print(f"error: {args.folder} is not empty; name a new folder", file=sys.stderr)
        return 2
    models_yaml, _ = save_repos(args.folder, args.size, args.seed)
    if args.size == "full":
        fill_prompt_cache(models_yaml, args.seed)
    print(models_yaml)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
