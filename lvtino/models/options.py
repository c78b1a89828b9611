"""The networks' options as the command line and the API name them, without loading torch.

``ModelOptions`` is ``--models``, ``--dtype``, ``--offload`` and ``--vae-tiling``;
the names here are what they accept (``lvtino.models.base`` maps the dtype names
to torch's dtypes). The command line reads this module to build its parser, so
``lvtino --help`` starts without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPE_NAMES = ("bfloat16", "float16", "float32")
OFFLOAD_MODES = ("none", "model", "group")
TILING_MODES = ("off", "on", "auto")


@dataclass
class ModelOptions:
    """``--models``, ``--dtype``, ``--offload`` (the generative priors only)."""

    models: str | None = None  # None: the packaged models.yaml; a YAML path; or "tiny"
    dtype: str = "auto"        # auto: on CUDA bfloat16 (video) and float16 (image, as published); float32 on the CPU
    offload: str = "none"
    vae_tiling: str = "off"    # off (as published), on, or auto: only when a decode would not fit free memory
    output: str | None = None  # the sampler's output, data or prior, over the preset's (benchmarks, reproduction)
    clamp: str | None = None   # the sampler's clamps, lvtino or published, over the preset's (reproduction)
