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
import pickle
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
import yaml
from torch import Tensor

from lvtino.config import from_dict
from lvtino.errors import NetworkError, UserError, arg, said
from lvtino.files import atomic_file
from lvtino.models.architectures import TINY
from lvtino.models.base import Placement
from lvtino.models.image import ImageConsistencyModel
from lvtino.models.text import char_tokenizer, encode_sdxl, encode_umt5
from lvtino.models.video import VideoConsistencyModel
from lvtino.runtime import StageTimer, available_memory
from lvtino.validation import Number, parse_yaml, read_text_file, setting, whole


log = logging.getLogger("lvtino")
TINY_NOTE = "tiny random models: a code-path check, the output is meaningless for quality"
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

def _needs(spec: ModelsSpec, kind: str) -> list[tuple[str, Source, list[str], list[str]]]:
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


class MissingWeights(UserError):
    def __init__(self, what: str, repo: str, filename: str):
        super().__init__(f"model weights missing: {what}: {repo}/{filename} is neither a local file nor in the "
                         "Hugging Face cache; run `lvtino download` on a machine with network access, "
                         f"or restore with {said('prior', 'tv')}")


def locate(repo: str, filename: str, what: str = "model file") -> Path:
    """The local path of ``filename`` in a folder or a cached hub repository, never downloading."""
    if os.path.isdir(repo):
        path = Path(repo) / filename
        if path.is_file():
            return path
        raise MissingWeights(what, repo, filename)
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:  # not cached, bad repo id, offline: all mean "not available here"
        raise MissingWeights(what, repo, filename) from None


def check_available(spec: ModelsSpec, kinds: list[str]) -> None:
    """Stop at once, before loading anything, when a needed file is not on this machine."""
    for kind in kinds:
        for what, source, files, _ in _needs(spec, kind):
            for name in files:
                locate(source.repo, name, what)


def _download_failed(repo: str, err: Exception) -> Exception:
    """A repository that does not exist or is closed to this account is the user's to fix (UserError); anything
    else (no network, a timeout, a server error) is the machine's (exit 1), with the way round it."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError)):
        return UserError(f"download of {repo} failed: {first} (check the repository in --models, and that your "
                         "account may read it: huggingface-cli login)")
    return NetworkError(f"download of {repo} failed: {first}; without a network, copy the model folders to this "
                        "machine and name them in a --models file (see configs/models.yaml), or run "
                        "`lvtino download` where the hub is reachable and copy the Hugging Face cache")


def download(spec: ModelsSpec, kinds: list[str] = ("video", "image"), echo=print) -> None:
    """Fetch every file the models need into the Hugging Face cache, printing each licence."""
    from huggingface_hub import snapshot_download

    for kind in kinds:
        for what, source, _, patterns in _needs(spec, kind):
            echo(f"{what}: {source.repo}  [licence: {source.license}]")
            if os.path.isdir(source.repo):
                echo("  a local folder: nothing to fetch")
                continue
            try:
                path = snapshot_download(source.repo, allow_patterns=patterns)
            except Exception as err:  # network, authentication, unknown repository
                raise _download_failed(source.repo, err) from None
            echo(f"  -> {path}")
    # the prompts' embeddings, so that restore never loads a text encoder (UMT5-XXL is ~11 GB in bf16)
    cpu = Placement(torch.device("cpu"), torch.float32)  # the encoders run in ENCODER_DTYPES whatever this says
    for kind in kinds:
        try:
            check_available(spec, [kind])
        except UserError as missing:  # a local folder not filled yet: the first restore that has them makes them
            echo(f"prompt embeddings of the {kind} model: not made now ({missing})")
            continue
        echo(f"prompt embeddings of the {kind} model -> {prompt_cache()}")
        _video_prompt(spec.video, cpu) if kind == "video" else _image_prompt(spec.image, cpu)


# -- checkpoints ----------------------------------------------------------------------

def read_state_dict(path: str | Path, dtype: torch.dtype | None = None) -> dict:
    """Tensors of a safetensors file or a torch file (read with weights_only=True: no pickled code).

    ``dtype``: floating tensors of another width are converted as they are read, one at a time, each file copy
    freed before the next, so a checkpoint never sits in memory at both widths (DMD2's fp16 UNet read for a bf16
    or float32 run: 5.1 GB, not 10.3 GB, at the peak). Without it, or when the widths match, a torch file is
    memory-mapped and read lazily.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            if dtype is None:
                return load_file(str(path))
            with safe_open(str(path), "pt") as f:
                return {k: _as(f.get_tensor(k), dtype) for k in f.keys()}
        except SafetensorError as err:
            raise UserError(f"{path}: not a safetensors file ({err}); give the weights as they were published") \
                from None
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # files written without the zip container cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
        if dtype is None or all(_as(v, dtype) is v for v in _tensors(state)):
            return state
        state = torch.load(path, map_location="cpu", weights_only=True)  # in memory: each copy can be freed
        _convert(state, dtype)
        return state
    except pickle.UnpicklingError:
        raise UserError(f"{path}: refused: it holds Python objects besides tensors, which are never loaded "
                        "(convert it to safetensors)") from None


def _as(tensor, dtype: torch.dtype):
    return tensor.to(dtype) if isinstance(tensor, Tensor) and tensor.is_floating_point() else tensor


def _tensors(state):
    for value in state.values():
        yield from (_tensors(value) if isinstance(value, dict) else [value])


def _convert(state: dict, dtype: torch.dtype) -> None:
    """Convert the floating tensors of a (nested) state dict in place, dropping each original as it goes."""
    for key in list(state):
        if isinstance(state[key], dict):
            _convert(state[key], dtype)
        else:
            state[key] = _as(state[key], dtype)


def causvid_to_diffusers(checkpoint: dict) -> dict:
    """A CausVid checkpoint ("generator" entry, original Wan names under ``model.``) in diffusers' names."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    state = checkpoint.get("generator", checkpoint)
    state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}
    return convert_wan_transformer_to_diffusers(state)


def fuse_wan_lora(transformer, lora: dict, scale: float = 1.0) -> int:
    """Add a Wan LoRA (original or ComfyUI names) into the transformer's weights; returns layers changed.

    Each layer W gains scale * (alpha / rank) * up @ down; ``.diff`` and ``.diff_b``
    entries are full weight and bias differences.
    """
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    def strip(key):
        for prefix in ("diffusion_model.", "model.", "transformer."):
            if key.startswith(prefix):
                return key[len(prefix):]
        return key

    lora = {strip(k): v for k, v in lora.items()}
    deltas = {}
    for key, down in lora.items():
        for d_suffix, u_suffix in ((".lora_down.weight", ".lora_up.weight"), (".lora_A.weight", ".lora_B.weight")):
            if key.endswith(d_suffix):
                name = key[: -len(d_suffix)]
                up = lora[name + u_suffix]
                rank = down.shape[0]
                alpha = float(lora[name + ".alpha"]) if name + ".alpha" in lora else rank
                deltas[name + ".weight"] = (up.float() @ down.float()) * (scale * alpha / rank)
        if key.endswith(".diff"):
            deltas[key[: -len(".diff")] + ".weight"] = down.float() * scale
        elif key.endswith(".diff_b"):
            deltas[key[: -len(".diff_b")] + ".bias"] = down.float() * scale
    params = dict(transformer.named_parameters())
    converted = convert_wan_transformer_to_diffusers(deltas)
    for name, delta in converted.items():
        if name not in params:
            raise UserError(f"LoRA entry {name}: the video transformer has no such weight")
        target = params[name]
        with torch.no_grad():
            target.add_(delta.reshape(target.shape).to(target.dtype))
    return len(converted)


# -- building the adapters ------------------------------------------------------------

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
    _load_exact(model, state, f"{w.repo}/{w.filename}")
    return model


def _load_exact(model, state: dict, source: str) -> None:
    """All and only the model's weights, or one line naming what does not fit."""
    result = model.load_state_dict(state, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        missing = result.missing_keys[:1] or ["-"]
        extra = result.unexpected_keys[:1] or ["-"]
        raise UserError(f"{source}: does not fit the network ({len(result.missing_keys)} weights missing, e.g. "
                        f"{missing[0]}; {len(result.unexpected_keys)} unexpected, e.g. {extra[0]})")


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


def _fp16_variant(base: str, subfolder: str) -> str | None:
    """"fp16" where the base has the text encoder's fp16 file (what ``lvtino download`` fetches), else None."""
    try:
        locate(base, f"{subfolder}/model.fp16.safetensors")
        return "fp16"
    except UserError:
        return None


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


def _video_prompt_path(spec: VideoSpec) -> Path:
    return _prompt_path("video", spec.base.repo, VIDEO_ENCODERS, spec.prompt, spec.max_sequence_length)


def _image_prompt_path(spec: ImageSpec) -> Path:
    return _prompt_path("image", spec.base.repo, IMAGE_ENCODERS, spec.prompt, CLIP_TOKENS)


def prompts_cached(spec: "ModelsSpec", kind: str) -> bool:
    """Whether the ``kind`` model's prompt embeddings are in the cache (its text encoder will not be loaded)."""
    return (_video_prompt_path(spec.video) if kind == "video" else _image_prompt_path(spec.image)).is_file()


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


def _video_prompt(spec: VideoSpec, placement: Placement) -> Tensor:
    def encode():
        from transformers import AutoTokenizer, UMT5EncoderModel

        base = spec.base.repo
        _check_room_for_umt5(placement.device)
        tokenizer = AutoTokenizer.from_pretrained(base, subfolder="tokenizer", local_files_only=True)
        encoder = UMT5EncoderModel.from_pretrained(base, subfolder="text_encoder", local_files_only=True,
                                                   dtype=ENCODER_DTYPES["video"]).to(placement.device)
        return {"embeds": encode_umt5(tokenizer, encoder, spec.prompt, spec.max_sequence_length)}

    return cached_prompt(_video_prompt_path(spec), encode)["embeds"]


def _image_prompt(spec: ImageSpec, placement: Placement) -> tuple[Tensor, Tensor]:
    def encode():
        from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

        base = spec.base.repo
        tokenizers = [AutoTokenizer.from_pretrained(base, subfolder=s, local_files_only=True)
                      for s in ("tokenizer", "tokenizer_2")]
        half = ENCODER_DTYPES["image"]
        encoders = [cls.from_pretrained(base, subfolder=sub, local_files_only=True, dtype=half,
                                        variant=_fp16_variant(base, sub)).to(placement.device)
                    for cls, sub in ((CLIPTextModel, "text_encoder"), (CLIPTextModelWithProjection, "text_encoder_2"))]
        embeds, pooled = encode_sdxl(tokenizers, encoders, spec.prompt)
        return {"embeds": embeds, "pooled": pooled}

    found = cached_prompt(_image_prompt_path(spec), encode)
    return found["embeds"], found["pooled"]


def _video_model(spec: VideoSpec, placement: Placement, timer: StageTimer) -> VideoConsistencyModel:
    from diffusers import AutoencoderKLWan

    embeds = _video_prompt(spec, placement)
    vae = AutoencoderKLWan.from_pretrained(spec.base.repo, subfolder="vae", local_files_only=True)
    return VideoConsistencyModel(_load_wan_transformer(spec), vae, embeds, spec.shift, placement, timer)


def _image_model(spec: ImageSpec, placement: Placement, timer: StageTimer) -> ImageConsistencyModel:
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    base = spec.base.repo
    embeds, pooled = _image_prompt(spec, placement)
    scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler", local_files_only=True)
    w = spec.weights
    if w.format == "diffusers":
        unet = UNet2DConditionModel.from_pretrained(w.repo, subfolder=w.subfolder or "unet", local_files_only=True)
    else:
        config = UNet2DConditionModel.load_config(base, subfolder="unet", local_files_only=True)
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(config)
        # read at the width it runs in: the file's fp16 copy is not kept beside the converted one
        _load_exact(unet, read_state_dict(locate(w.repo, w.filename), placement.dtype), f"{w.repo}/{w.filename}")
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
