"""Finding, fetching and loading the networks named in ``configs/models.yaml``.

Restoring never downloads: every file is read from a local folder or the Hugging
Face cache (``local_files_only``), and a missing one stops the run before any
loading with one line naming it. ``lvtino download`` fills the cache on a
connected machine. Checkpoints are read with ``weights_only=True`` or from
safetensors, so no pickled code ever runs. ``--models tiny`` builds small random
networks of the same classes instead, for code-path checks on a CPU.
"""


from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass

import torch

from lvtino.errors import UserError, said
from lvtino.models.architectures import TINY
from lvtino.models.base import Placement
from lvtino.models.image import ImageConsistencyModel
from lvtino.models.text import char_tokenizer, encode_sdxl, encode_umt5
from lvtino.models.video import VideoConsistencyModel
from lvtino.runtime import StageTimer
from lvtino.models.prompts import image_prompt, video_prompt
from lvtino.models.spec import ImageSpec, ModelsSpec, VideoSpec, load_models_spec
from lvtino.models.weights import (load_exact, causvid_to_diffusers, check_available, fuse_wan_lora, locate,
                                   read_state_dict)

log = logging.getLogger("lvtino")
TINY_NOTE = "tiny random models: a code-path check, the output is meaningless for quality"


@dataclass
class Models:
    video: VideoConsistencyModel | None
    image: ImageConsistencyModel | None
    label: str
    note: str = ""


def _load_wan_transformer(spec: VideoSpec):
    from accelerate import init_empty_weights
    from diffusers import WanTransformer3DModel

    w = spec.weights
    if w.format == "diffusers":
        return WanTransformer3DModel.from_pretrained(w.repo, subfolder=w.subfolder or "transformer",
                                                     local_files_only=True)
    if w.format == "lora":
        model = WanTransformer3DModel.from_pretrained(spec.base.repo, subfolder="transformer", local_files_only=True)
        fuse_wan_lora(model, read_state_dict(locate(w.repo, w.filename)), w.lora_scale)
        return model
    config = WanTransformer3DModel.load_config(spec.base.repo, subfolder="transformer", local_files_only=True)
    with init_empty_weights():
        model = WanTransformer3DModel.from_config(config)
    state = causvid_to_diffusers(read_state_dict(locate(w.repo, w.filename)))
    load_exact(model, state, f"{w.repo}/{w.filename}")
    return model


def _video_model(spec: VideoSpec, placement: Placement, timer: StageTimer) -> VideoConsistencyModel:
    from diffusers import AutoencoderKLWan

    embeds = video_prompt(spec, placement)
    vae = AutoencoderKLWan.from_pretrained(spec.base.repo, subfolder="vae", local_files_only=True)
    return VideoConsistencyModel(_load_wan_transformer(spec), vae, embeds, spec.shift, placement, timer)


def _image_model(spec: ImageSpec, placement: Placement, timer: StageTimer) -> ImageConsistencyModel:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    base = spec.base.repo
    embeds, pooled = image_prompt(spec, placement)
    scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler", local_files_only=True)
    w = spec.weights
    if w.format == "diffusers":
        unet = UNet2DConditionModel.from_pretrained(w.repo, subfolder=w.subfolder or "unet", local_files_only=True)
    else:
        config = UNet2DConditionModel.load_config(base, subfolder="unet", local_files_only=True)
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(config)
        # read at the width it runs in: the file's fp16 copy is not kept beside the converted one
        load_exact(unet, read_state_dict(locate(w.repo, w.filename), placement.dtype), f"{w.repo}/{w.filename}")
    vae = AutoencoderKL.from_pretrained(spec.vae.repo, subfolder=spec.vae.subfolder or None, local_files_only=True)
    return ImageConsistencyModel(unet, vae, embeds, pooled, scheduler.alphas_cumprod, placement, spec.batch_size,
                                 timer)


def tiny_models(spec: ModelsSpec, kinds: list[str], placement: Placement, timer: StageTimer,
                seed: int = 0, image_placement: Placement | None = None) -> Models:
    """Small randomly initialised networks of the real classes (``architectures.TINY``: diffusers' own test
    sizes), seeded."""
    from diffusers import AutoencoderKL, AutoencoderKLWan, DDPMScheduler, UNet2DConditionModel, WanTransformer3DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, UMT5Config, UMT5EncoderModel

    video = image = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if "video" in kinds:
            encoder = UMT5EncoderModel(UMT5Config(**TINY["video_text_encoder"])).eval()
            length = TINY["video_prompt_tokens"]
            embeds = encode_umt5(char_tokenizer(length), encoder, spec.video.prompt, length)
            video = VideoConsistencyModel(WanTransformer3DModel(**TINY["video_transformer"]),
                                          AutoencoderKLWan(**TINY["video_vae"]), embeds, spec.video.shift,
                                          placement, timer)
        if "image" in kinds:
            encoders = [CLIPTextModel(CLIPTextConfig(**TINY["image_text_encoder"])).eval(),
                        CLIPTextModelWithProjection(CLIPTextConfig(**TINY["image_text_encoder_2"])).eval()]
            embeds, pooled = encode_sdxl([char_tokenizer(77), char_tokenizer(77)], encoders, spec.image.prompt)
            # SDXL's noise schedule (stable-diffusion-xl-base-1.0, scheduler_config.json)
            alphas = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   num_train_timesteps=1000).alphas_cumprod
            image = ImageConsistencyModel(UNet2DConditionModel(**TINY["image_unet"]),
                                          AutoencoderKL(**TINY["image_vae"]), embeds, pooled, alphas,
                                          image_placement or placement, spec.image.batch_size, timer)
    return Models(video, image, "tiny", TINY_NOTE)


def load_models(models: str | None, kinds: list[str], placement: Placement, timer: StageTimer,
                image_placement: Placement | None = None) -> Models:
    """The adapters for ``kinds`` ("video", "image"): ``models`` is None (packaged file), a YAML path or "tiny".
    ``image_placement``: the image model's, where it differs (SDXL in float16 as published)."""
    image_placement = image_placement or placement
    if models == "tiny":
        return tiny_models(load_models_spec(None), kinds, placement, timer, image_placement=image_placement)
    spec = load_models_spec(models)
    check_available(spec, kinds)
    video = image = None
    try:
        if "video" in kinds:
            video = _video_model(spec.video, placement, timer)
        if "image" in kinds:
            image = _image_model(spec.image, image_placement, timer)
    except OSError as err:
        first = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
        if err.errno not in (None, errno.ENOENT):  # there, but the system refused it: permissions, a failing disk
            raise UserError(f"model weights could not be read: {first} ({os.strerror(err.errno)}); check the "
                            "files' permissions and the disk") from None
        # a file the quick check does not name (a weight shard) is missing: diffusers says so with an OSError
        raise UserError(f"model weights missing: {first}; run `lvtino download` on a machine with network access, "
                        f"or restore with {said('prior', 'tv')}") from None
    return Models(video, image, models or "models.yaml")
