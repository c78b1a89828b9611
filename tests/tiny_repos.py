"""Tiny random models saved in the layouts of the real hub repositories, for the loader's real paths.

The Wan base folder holds a diffusers VAE, UMT5 text encoder, tokenizer and the
transformer's config; the CausVid checkpoint holds the transformer's weights in
the original Wan names under ``model.`` in a "generator" entry; the SDXL base
holds the UNet config, two CLIP text encoders, tokenizers and the scheduler;
the DMD2 file is a UNet state dict written by torch.save; the SDXL VAE a
diffusers folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from lvtino.models.architectures import TINY
from lvtino.models.text import char_tokenizer

# diffusers name -> original Wan name (the inverse of diffusers' converter, for the layers of the tiny model)
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


def to_wan_name(name: str) -> str:
    if name == "scale_shift_table":
        return "head.modulation"
    name = name.replace(".scale_shift_table", ".modulation")
    for new, old in _TO_WAN:
        name = name.replace(new, old)
    # diffusers' norm2 is Wan's norm3 and the other way round
    return name.replace("norm2", "norm__swap").replace("norm3", "norm2").replace("norm__swap", "norm3")


def causvid_checkpoint(transformer) -> dict:
    return {"generator": {"model." + to_wan_name(k): v.clone() for k, v in transformer.state_dict().items()
                          if not k.startswith("rope.")}}


def save_tiny_repos(root: Path, seed: int = 0) -> tuple[Path, dict]:
    """Write the five folders/files under ``root``; return a models.yaml path and the transformer's weights."""
    from diffusers import AutoencoderKL, AutoencoderKLWan, DDPMScheduler, UNet2DConditionModel, WanTransformer3DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    wan = root / "wan-base"
    transformer = WanTransformer3DModel(**TINY["video_transformer"])
    transformer.save_config(wan / "transformer")
    AutoencoderKLWan(**TINY["video_vae"]).save_pretrained(wan / "vae")
    UMT5EncoderModel(UMT5Config(**TINY["video_text_encoder"])).save_pretrained(wan / "text_encoder")
    char_tokenizer(TINY["video_prompt_tokens"]).save_pretrained(wan / "tokenizer")
    (root / "causvid").mkdir()
    torch.save(causvid_checkpoint(transformer), root / "causvid" / "model.pt")

    sdxl = root / "sdxl-base"
    unet = UNet2DConditionModel(**TINY["image_unet"])
    unet.save_config(sdxl / "unet")
    CLIPTextModel(CLIPTextConfig(**TINY["image_text_encoder"])).save_pretrained(sdxl / "text_encoder")
    CLIPTextModelWithProjection(CLIPTextConfig(**TINY["image_text_encoder_2"])).save_pretrained(sdxl / "text_encoder_2")
    for sub in ("tokenizer", "tokenizer_2"):
        char_tokenizer(77).save_pretrained(sdxl / sub)
    DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").save_pretrained(sdxl / "scheduler")
    (root / "dmd2").mkdir()
    torch.save(unet.state_dict(), root / "dmd2" / "unet.bin")
    AutoencoderKL(**TINY["image_vae"]).save_pretrained(root / "sdxl-vae")

    spec = {
        "video": {"base": {"repo": str(wan)}, "weights": {"format": "causvid", "repo": str(root / "causvid"),
                                                           "filename": "model.pt"},
                  "max_sequence_length": TINY["video_prompt_tokens"]},
        "image": {"base": {"repo": str(sdxl)}, "weights": {"format": "unet", "repo": str(root / "dmd2"),
                                                           "filename": "unet.bin"},
                  "vae": {"repo": str(root / "sdxl-vae")}},
    }
    path = root / "models.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, {k: v.clone() for k, v in transformer.state_dict().items()}
