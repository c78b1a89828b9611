"""One restoration asked for: every setting of ``lvtino restore`` as one typed value, checked once.

The command line, the Python API and ``batch`` all build a ``Request`` and
hand it to ``pipeline.restore.restore``. ``check_inputs`` refuses what is wrong
without reading a file (in the caller's words: parameter names below the command
line, flags on it); ``plan`` reads the input and settles the ``Job``;
``settings`` is everything that decides the output's bytes, and ``digest`` its
hash as the output records it (what ``--resume`` and ``batch`` compare); both are
made in ``pipeline.digest``. A
setting added here reaches the digest through ``settings`` or is named in
``NOT_IN_DIGEST`` with the reason: ``tests/test_api.py`` holds the two lists to
the fields.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from lvtino.config import MAX_WINDOW
from lvtino.errors import UserError, arg, said
from lvtino.pipeline import digest
from lvtino.pipeline.job import MAX_FRAMES, Job, check_guide, restore_outputs
from lvtino.pipeline.outputs import check_outputs as check_outputs_of
from lvtino.models.options import ModelOptions
from lvtino.pipeline.catalog import GUIDE, PRIORS, UPSCALER, networks_of
from lvtino.pipeline.words import Words
from lvtino.validation import whole
from lvtino.video.formats import Encoding
from lvtino.video.reader import probe

OVERWRITE = ("ask", "yes", "no")
log = logging.getLogger("lvtino")
# settings that do not change the output's bytes, or change them only through fields that are in the digest
NOT_IN_DIGEST = {
    "output": "where the output goes, not what it holds",
    "stats": "a second file beside the output",
    "device": "in the digest through the dtypes it gives a generative prior (dtype auto: bfloat16/float16 on CUDA, "
              "float32 on the CPU); a classical prior computes the same numbers on any device",
    "resume": "how a run starts, not what it makes",
    "keep_state": "what is kept after the run",
    "overwrite": "whether an existing file may be replaced",
    "accept_truncated": "which frames are read is in the input's identity and the frame count",
    "dry_run": "writes nothing",
    "window": "in the digest as the windows' spans",
    "overlap": "in the digest as the windows' spans",
    "words": "in the digest as the operator they build (config)",
    "problem": "in the digest as its preset (config)",
    "config": "in the digest as the preset it gives (config)",
    "overrides": "in the digest through the preset they change (config)",
    "fps": "the input's rate: in the digest through the windows and the input's identity",
    "start": "the range is recorded beside the settings",
    "end": "the range is recorded beside the settings",
}


@dataclass(frozen=True)
class Request:
    """``lvtino restore INPUT -o OUTPUT`` and its options (see ``lvtino restore --help``)."""

    input: str | Path
    output: str | Path
    problem: str | None = None
    prior: str | None = None           # None: tv, or the guide's consistency step when ``guide`` is given
    config: str | Path | None = None
    overrides: tuple[str, ...] = ()
    words: Words | None = None         # --scale, --fps-factor, --size, --fps, ...
    start: int | str | None = None
    end: int | str | None = None
    frames: int | None = None
    fps: object = None                 # --input-fps: the rate of a frame folder
    window: int | None = None
    overlap: int | None = None
    guide: str | Path | None = None
    upscaler: str | Path | None = None  # a single-image model file (models.upscaler): its prior, or its start
    seed: int = 0
    models: ModelOptions = field(default_factory=ModelOptions)
    device: str = "cpu"
    codec: str | None = None           # None: the output suffix's default (lvtino.video.formats.DEFAULTS)
    crf: int | None = None             # None: the format's default; given to a format without it, said ignored
    preset: str | None = None
    pix_fmt: str | None = None         # None: the format's, at the input's bit depth where it has it
    no_audio: bool = False
    stats: str | Path | None = None
    resume: bool = False
    keep_state: bool = False
    overwrite: str = "ask"
    accept_truncated: bool = False
    dry_run: bool = False

    @cached_property
    def encoding(self) -> Encoding:
        """The output's format and settings, checked (in the caller's words); ``output_encoding`` settles it for
        the input."""
        return Encoding.choose(self.output, self.codec, self.crf, self.preset, self.pix_fmt)

    def output_encoding(self, job: Job) -> Encoding:
        """The encoding settled for the job's input: its bit depth and colour tags, and whether sound is copied."""
        info = job.info
        return self.encoding.for_input(info.bits, info.color, audio=info.has_audio and not self.no_audio)

    def check_inputs(self) -> "Request":
        """The settings checked without reading a file; the request with its defaults settled (the prior's name,
        whole numbers, ``--overwrite yes`` on a resume)."""
        if self.guide is not None and self.prior not in (None, GUIDE):
            raise UserError(f"{said('prior', self.prior)} and {said('guide', str(self.guide))}: the guide takes the "
                            "prior's place; give one")
        if self.upscaler is not None and (self.guide is not None or (self.prior not in (None, UPSCALER) and
                                                                     not networks_of(self.prior))):
            other = said("prior", self.prior) if self.guide is None else said("guide", str(self.guide))
            raise UserError(f"{other} and {said('upscaler', str(self.upscaler))}: the upscaler's frames, made "
                            "consistent, take a classical prior's or a guide's place (a generative prior starts "
                            "from them); give one")
        prior = GUIDE if self.guide is not None else self.prior or (UPSCALER if self.upscaler is not None else "tv")
        if (prior == GUIDE and self.guide is None) or (prior == UPSCALER and self.upscaler is None):
            raise UserError(f"{said('prior', prior)}: the prior {arg(prior)} makes, and {arg(prior)} is not given")
        if prior not in PRIORS and prior not in (GUIDE, UPSCALER):
            raise UserError(f"{said('prior', prior)}: unknown prior (known: {', '.join(PRIORS)})")
        if self.overwrite not in OVERWRITE:
            raise UserError(f"{said('overwrite', self.overwrite)}: expected one of {', '.join(OVERWRITE)}")
        self.encoding  # noqa: B018  (built and checked here: a wrong setting is refused before any file is read)
        return replace(
            self, prior=prior, overrides=tuple(self.overrides or ()), models=self.models or ModelOptions(),
            seed=whole(0, 2**63 - 1).parse(self.seed, arg("seed")),
            frames=None if self.frames is None else whole(1, MAX_FRAMES).parse(self.frames, arg("frames")),
            window=None if self.window is None else whole(1, MAX_WINDOW).parse(self.window, arg("window")),
            overlap=None if self.overlap is None else whole(0, MAX_WINDOW).parse(self.overlap, arg("overlap")),
            overwrite="yes" if self.resume else self.overwrite)

    def plan(self, check_outputs: bool = True, claim: bool = True) -> tuple[Job, Path]:
        """Read the input and settle the operator, the output's size, the range and the windows (``Job.plan``);
        with ``check_outputs``, every output path is checked too (nothing is written), and claimed with ``claim``.
        A mistake found here leaves no file behind."""
        info = probe(self.input, self.fps, accept_truncated=self.accept_truncated)
        output = Path(self.output)
        if check_outputs:
            models = self.models.models if self.models.models != "tiny" else None
            check_outputs_of(restore_outputs(output, self.stats, self.encoding),
                             [("the input", self.input), (arg("config"), self.config), (arg("guide"), self.guide),
                              (arg("models"), models), (arg("upscaler"), self.upscaler)], self.overwrite, claim)
            for note in info.notes():
                log.info("%s", note)
        job = Job.plan(self, info)
        if check_outputs:
            self.encoding.check_frames(output, job.fps, job.shape[2], job.shape[1])
        if self.guide is not None:
            job.guide, job.guide_offset = check_guide(self.guide, job, self.accept_truncated)
        return job, output

    def settings(self, job: Job) -> dict:
        """Everything that decides the output's bytes (``pipeline.digest.settings``)."""
        return digest.settings(self, job)

    def digest(self, job: Job | None = None) -> str:
        """What the output of this request records (``restored_by.settings``): its input, settings and range.
        Without ``job``, the input is read to plan one (nothing is written, no output is checked)."""
        job = job or self.plan(check_outputs=False)[0]
        return digest.output_digest(job, self.settings(job), digest.input_identity(Path(self.input)))
