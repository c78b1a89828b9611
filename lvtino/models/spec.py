"""What ``configs/models.yaml`` (or a user's models YAML over it) names: each network's repository or folder,
its file and format, and the settings of the two consistency models; read and checked like a preset."""


from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from lvtino.config import from_dict
from lvtino.errors import UserError, arg
from lvtino.validation import Number, parse_yaml, read_text_file, setting, whole


VIDEO_FORMATS = ("causvid", "diffusers", "lora")
IMAGE_FORMATS = ("unet", "diffusers")


@dataclass
class Source:
    """A hub repository or local folder, and optionally one file in it."""

    repo: str = ""
    filename: str = ""
    format: str = ""
    subfolder: str = ""
    license: str = "see the model card"
    lora_scale: float = setting(1.0, Number(ge=-100, le=100))


@dataclass
class VideoSpec:
    base: Source = field(default_factory=Source)
    weights: Source = field(default_factory=Source)
    shift: float = setting(8.0, Number(gt=0, le=100))
    prompt: str = "a high resolution video"
    max_sequence_length: int = setting(512, whole(1, 4096))


@dataclass
class ImageSpec:
    base: Source = field(default_factory=Source)
    weights: Source = field(default_factory=Source)
    vae: Source = field(default_factory=Source)
    prompt: str = "a high resolution photo"
    batch_size: int = setting(8, whole(1, 1024))


@dataclass
class ModelsSpec:
    video: VideoSpec = field(default_factory=VideoSpec)
    image: ImageSpec = field(default_factory=ImageSpec)


def load_models_spec(path: str | Path | None = None) -> ModelsSpec:
    """The packaged ``models.yaml``, with the entries of ``--models FILE`` laid over it (if given)."""
    raw = yaml.safe_load((resources.files("lvtino.configs") / "models.yaml").read_text())
    source = "models.yaml"
    if path is not None:
        source = str(path)
        user = parse_yaml(read_text_file(path, arg("models")), source) or {}
        if not isinstance(user, dict):
            raise UserError(f"{source}: expected a mapping with 'video' and/or 'image' sections")
        raw = _overlay(raw, user)
    spec = from_dict(ModelsSpec, raw, "models")
    if spec.video.weights.format not in VIDEO_FORMATS:
        raise UserError(f"{source}: video.weights.format={spec.video.weights.format!r} is not one of "
                        f"{', '.join(VIDEO_FORMATS)}")
    if spec.image.weights.format not in IMAGE_FORMATS:
        raise UserError(f"{source}: image.weights.format={spec.image.weights.format!r} is not one of "
                        f"{', '.join(IMAGE_FORMATS)}")
    return spec


def _overlay(base: dict, user: dict) -> dict:
    """``base`` with ``user``'s entries in place; a source given by the user replaces the packaged one whole."""
    out = dict(base)
    for key, value in user.items():
        replace_whole = key in ("base", "weights", "vae")  # a new repo must not inherit the old filename
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not replace_whole:
            out[key] = _overlay(out[key], value)
        else:
            out[key] = value
    return out


# -- what each model needs, for checking and for downloading --------------------------

def needed_files(spec: ModelsSpec, kind: str) -> list[tuple[str, Source, list[str], list[str]]]:
    """(what, source, files that must exist, patterns to download) for the video or image model."""
    if kind == "video":
        v = spec.video
        base_files = ["transformer/config.json", "vae/config.json", "text_encoder/config.json",
                      "tokenizer/tokenizer_config.json"]
        base_patterns = ["transformer/config.json", "vae/*", "text_encoder/*", "tokenizer/*", "scheduler/*"]
        if v.weights.format == "lora":
            base_patterns.append("transformer/*")
        needs = [("Wan2.1 base (VAE, text encoder, transformer config)", v.base, base_files, base_patterns)]
        if v.weights.format == "diffusers":
            sub = v.weights.subfolder or "transformer"
            needs.append(("video transformer weights", v.weights, [f"{sub}/config.json"], [f"{sub}/*"]))
        else:
            needs.append((f"video transformer weights ({v.weights.format})", v.weights, [v.weights.filename],
                          [v.weights.filename]))
        return needs
    i = spec.image
    base_files = ["unet/config.json", "text_encoder/config.json", "text_encoder_2/config.json",
                  "tokenizer/tokenizer_config.json", "tokenizer_2/tokenizer_config.json",
                  "scheduler/scheduler_config.json"]
    # the text encoders' fp16 files (the published code runs them in fp16; half the float32 files' 1.6 GB)
    base_patterns = ["unet/config.json", "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
                     "text_encoder_2/config.json", "text_encoder_2/model.fp16.safetensors", "tokenizer/*",
                     "tokenizer_2/*", "scheduler/*"]
    needs = [("SDXL base (UNet config, text encoders, scheduler)", i.base, base_files, base_patterns)]
    if i.weights.format == "diffusers":
        sub = i.weights.subfolder or "unet"
        needs.append(("image UNet weights", i.weights, [f"{sub}/config.json"], [f"{sub}/*"]))
    else:
        needs.append(("image UNet weights", i.weights, [i.weights.filename], [i.weights.filename]))
    needs.append(("SDXL VAE", i.vae, ["config.json"], ["config.json", "diffusion_pytorch_model.safetensors"]))
    return needs
