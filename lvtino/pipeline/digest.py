"""What an output is made of, as one digest: the input's identity, the settings that decide its bytes, its range.

``settings`` is everything that decides the output's bytes: the preset (operator
and prior settings, windows included as their spans), the prior, the seed, the
models and the dtypes this device gives a generative prior (``dtype auto`` is
bfloat16/float16 on CUDA and float32 on the CPU: different pixels), the guide's
identity, and the encoding. A resumed run must share it with the first
(``state.RunState`` records it), and ``batch`` compares the ``output_digest`` an
output records to skip an item as done. The request's settings that are not here
say why in ``request.NOT_IN_DIGEST``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lvtino.pipeline.job import Job
    from lvtino.pipeline.request import Request


def input_identity(path: Path) -> dict:
    """Name, size, modification time and a digest of the first and last MiB of the input (or of a folder's files)."""
    path = Path(path).resolve()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    size = 0
    for f in files:
        st = f.stat()
        size += st.st_size
        digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        with open(f, "rb") as fh:
            digest.update(fh.read(1 << 20))
            if st.st_size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                digest.update(fh.read())
    return {"path": str(path), "bytes": size, "digest": digest.hexdigest()}


def digest_of(facts: dict) -> str:
    """The SHA-256 of ``facts`` as canonical JSON (sorted keys; what JSON cannot say, as its text)."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def settings(request: "Request", job: "Job") -> dict:
    """Everything of ``request`` (checked) that decides the bytes of ``job``'s output: the windows' pixels and the
    encoding."""
    from lvtino.pipeline.catalog import networks_of

    models = asdict(request.models) if request.models else None
    if networks_of(request.prior) and models is not None:
        from lvtino.pipeline.common import check_device
        from lvtino.pipeline.priors import network_dtypes

        dtypes = network_dtypes(request.models.dtype, check_device(request.device))
        models["dtype"] = [str(d).removeprefix("torch.") for d in dtypes]  # video, image
    return {"config": asdict(job.cfg), "prior": request.prior, "seed": request.seed, "frames": job.shape[0],
            "models": models, "windows": [(w.start, w.end) for w in job.layout.windows],
            "encoding": request.output_encoding(job).settings(),
            "guide": input_identity(job.guide.path)["digest"] if job.guide else None,
            "upscaler": input_identity(Path(request.upscaler))["digest"] if request.upscaler is not None else None}


def output_digest(job: "Job", run_settings: dict, identity: dict) -> str:
    """The digest an output records (``restored_by.settings``): its input, settings and frame range."""
    return digest_of({**run_settings, "range": [job.start, job.end], "input": identity["digest"]})
