"""The text encoders' outputs for the fixed prompts, computed once and cached on disk: a restoration never needs
the text encoders again for the same prompt and encoder."""


from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import Tensor

from lvtino.errors import UserError
from lvtino.files import atomic_file
from lvtino.models.base import Placement
from lvtino.models.text import encode_sdxl, encode_umt5
from lvtino.runtime import available_memory
from lvtino.models.spec import ImageSpec, ModelsSpec, VideoSpec
from lvtino.models.weights import fp16_variant, locate

log = logging.getLogger("lvtino")


def prompt_cache() -> Path:
    """Where prompt embeddings are kept: $LVTINO_CACHE, else $XDG_CACHE_HOME/lvtino, else ~/.cache/lvtino."""
    root = os.environ.get("LVTINO_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lvtino"
    return Path(root) / "prompts"


# The text encoders' own widths, whatever the networks' dtype: UMT5-XXL in bf16 (11 GB; 23 GB in float32), SDXL's
# CLIPs in fp16 from their fp16 files, as the published code runs them. The prompt cache is keyed by these.
ENCODER_DTYPES = {"video": torch.bfloat16, "image": torch.float16}
UMT5_XXL_GB = 5.68e9 * 2 / 1e9  # its encoder's parameters in bf16


def _encoder_identity(base: str, subfolders: tuple[str, ...]) -> str:
    """The text encoders a base names, at their revision: a hub id and the cached snapshot's commit, or a local
    folder with its encoders' config files and the names and sizes of their weight files."""
    if not os.path.isdir(base):
        try:
            config = locate(base, f"{subfolders[0]}/config.json")
        except UserError:
            return f"{base}@not-cached"
        parts = config.parts
        return f"{base}@{parts[parts.index('snapshots') + 1]}" if "snapshots" in parts else f"{base}@{config}"
    parts = [str(Path(base).resolve())]
    for sub in subfolders:
        folder = Path(base) / sub
        config = folder / "config.json"
        parts.append(config.read_text() if config.exists() else "")
        parts += sorted(f"{f.name} {f.stat().st_size}" for f in folder.glob("*.safetensors")) if folder.is_dir() \
            else []
    return "\n".join(parts)


def _prompt_path(kind: str, base: str, subfolders: tuple[str, ...], prompt: str, length: int) -> Path:
    import hashlib
    import json

    identity = [kind, _encoder_identity(base, subfolders), prompt, length, str(ENCODER_DTYPES[kind])]
    key = hashlib.sha256(json.dumps(identity).encode())
    return prompt_cache() / f"{kind}-{key.hexdigest()[:24]}.safetensors"


def _check_room_for_umt5(device: torch.device) -> None:
    """Building UMT5-XXL on the CPU takes ~11 GB: refuse in one line, before loading, where that is not free."""
    if device.type != "cpu":
        return
    free = available_memory()
    if free is None:
        return  # not Linux: no figure to check against
    available = free / 1e9
    need = UMT5_XXL_GB * 1.1
    if available < need:
        raise UserError(f"the video model's prompt embeddings are not cached, and making them builds UMT5-XXL "
                        f"(~{need:.0f} GB in bf16) where {available:.1f} GB is free: run `lvtino download` on a "
                        f"machine with the memory and copy {prompt_cache()} here (or set LVTINO_CACHE to a copy)")


VIDEO_ENCODERS, IMAGE_ENCODERS = ("text_encoder",), ("text_encoder", "text_encoder_2")
CLIP_TOKENS = 77  # SDXL's tokenizers pad every prompt to this length


def video_prompt_path(spec: VideoSpec) -> Path:
    return _prompt_path("video", spec.base.repo, VIDEO_ENCODERS, spec.prompt, spec.max_sequence_length)


def image_prompt_path(spec: ImageSpec) -> Path:
    return _prompt_path("image", spec.base.repo, IMAGE_ENCODERS, spec.prompt, CLIP_TOKENS)


def prompts_cached(spec: "ModelsSpec", kind: str) -> bool:
    """Whether the ``kind`` model's prompt embeddings are in the cache (its text encoder will not be loaded)."""
    return (video_prompt_path(spec.video) if kind == "video" else image_prompt_path(spec.image)).is_file()


def cached_prompt(path: Path, encode) -> dict:
    """The prompt's embeddings, from the disk cache ``path`` when they were made before (keyed by model, encoders
    and prompt text; read from safetensors, no pickled code), else ``encode()`` (which loads the text encoders) and
    kept.

    A restore that finds them never builds a text encoder: UMT5-XXL alone is ~11 GB in bf16."""
    from safetensors.torch import load_file, save_file

    if path.is_file():
        try:
            return load_file(str(path))
        except Exception as err:  # a damaged file: made again below
            log.warning("prompt cache %s unreadable (%s): encoding the prompt again", path, err)
    tensors = {k: v.contiguous() for k, v in encode().items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            save_file(tensors, str(tmp))
    except OSError as err:  # a read-only cache: the run goes on, the next one encodes again
        log.warning("prompt embeddings not cached in %s: %s", path.parent, err.strerror or err)
    return tensors


def video_prompt(spec: VideoSpec, placement: Placement) -> Tensor:
    def encode():
        from transformers import AutoTokenizer, UMT5EncoderModel

        base = spec.base.repo
        _check_room_for_umt5(placement.device)
        tokenizer = AutoTokenizer.from_pretrained(base, subfolder="tokenizer", local_files_only=True)
        encoder = UMT5EncoderModel.from_pretrained(base, subfolder="text_encoder", local_files_only=True,
                                                   dtype=ENCODER_DTYPES["video"]).to(placement.device)
        return {"embeds": encode_umt5(tokenizer, encoder, spec.prompt, spec.max_sequence_length)}

    return cached_prompt(video_prompt_path(spec), encode)["embeds"]


def image_prompt(spec: ImageSpec, placement: Placement) -> tuple[Tensor, Tensor]:
    def encode():
        from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

        base = spec.base.repo
        tokenizers = [AutoTokenizer.from_pretrained(base, subfolder=s, local_files_only=True)
                      for s in ("tokenizer", "tokenizer_2")]
        half = ENCODER_DTYPES["image"]
        encoders = [cls.from_pretrained(base, subfolder=sub, local_files_only=True, dtype=half,
                                        variant=fp16_variant(base, sub)).to(placement.device)
                    for cls, sub in ((CLIPTextModel, "text_encoder"), (CLIPTextModelWithProjection, "text_encoder_2"))]
        embeds, pooled = encode_sdxl(tokenizers, encoders, spec.prompt)
        return {"embeds": embeds, "pooled": pooled}

    found = cached_prompt(image_prompt_path(spec), encode)
    return found["embeds"], found["pooled"]
