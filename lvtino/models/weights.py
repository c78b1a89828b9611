"""The weights files: found in a local folder or the Hugging Face cache (never downloaded while restoring),
fetched by ``lvtino download``, read without running pickled code, and converted (CausVid's checkpoint to
diffusers' names, a LoRA fused) and loaded exactly."""


from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import torch
from torch import Tensor

from lvtino.errors import NetworkError, UserError, said
from lvtino.models.base import Placement
from lvtino.models.spec import ModelsSpec, needed_files

log = logging.getLogger("lvtino")


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
        for what, source, files, _ in needed_files(spec, kind):
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
        for what, source, _, patterns in needed_files(spec, kind):
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
    from lvtino.models.prompts import image_prompt, video_prompt, prompt_cache

    cpu = Placement(torch.device("cpu"), torch.float32)  # the encoders run in ENCODER_DTYPES whatever this says
    for kind in kinds:
        try:
            check_available(spec, [kind])
        except UserError as missing:  # a local folder not filled yet: the first restore that has them makes them
            echo(f"prompt embeddings of the {kind} model: not made now ({missing})")
            continue
        echo(f"prompt embeddings of the {kind} model -> {prompt_cache()}")
        video_prompt(spec.video, cpu) if kind == "video" else image_prompt(spec.image, cpu)


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

def load_exact(model, state: dict, source: str) -> None:
    """All and only the model's weights, or one line naming what does not fit."""
    result = model.load_state_dict(state, strict=False, assign=True)
    if result.missing_keys or result.unexpected_keys:
        missing = result.missing_keys[:1] or ["-"]
        extra = result.unexpected_keys[:1] or ["-"]
        raise UserError(f"{source}: does not fit the network ({len(result.missing_keys)} weights missing, e.g. "
                        f"{missing[0]}; {len(result.unexpected_keys)} unexpected, e.g. {extra[0]})")


def fp16_variant(base: str, subfolder: str) -> str | None:
    """"fp16" where the base has the text encoder's fp16 file (what ``lvtino download`` fetches), else None."""
    try:
        locate(base, f"{subfolder}/model.fp16.safetensors")
        return "fp16"
    except UserError:
        return None
