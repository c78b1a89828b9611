"""Every ``--prior``, described without loading torch: what the command line, the progress bar, the benchmark
and the memory plan need to know of a prior.

An entry names the networks the prior runs (none for a classical one), the unit
its window progress bar counts, and its help line; ``pipeline.priors`` builds
the prior an entry names (``make_prior``). To add a prior: its entry here and
its class in ``pipeline.priors`` (``PRIOR_CLASSES``); ``tests/test_priors.py``
generates its tests (through the command line and the API, the fit to the
input within its bound) and fails for an entry without a class.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PriorEntry:
    name: str
    help: str                            # one line of --help
    networks: tuple[str, ...] = ()       # the consistency models it runs: "video", "image"; () for a classical one
    progress: str | None = None          # what its window bar counts ("iteration", "step"); None: no bar

    @property
    def generative(self) -> bool:
        return bool(self.networks)


PRIORS: dict[str, PriorEntry] = {e.name: e for e in (
    PriorEntry("pinv", "the frames nearest a motion-interpolated start that fit the input"),
    PriorEntry("tv", "spatio-temporal TV (default)", progress="iteration"),
    PriorEntry("lvtino", "the video + image consistency models (needs their weights, see `lvtino download`)",
               ("video", "image"), "step"),
    PriorEntry("lvtino-video", "the video model only (the paper's ablation)", ("video",), "step"),
    PriorEntry("lvtino-image", "the image model only (the paper's ablation)", ("image",), "step"),
)}
GUIDE = "guide"  # the prior of --guide VIDEO (another tool's restoration, made consistent)
UPSCALER = "upscaler"  # the prior of --upscaler FILE (a single-image model's frames, carried in time, made consistent)


def networks_of(name: str) -> tuple[str, ...]:
    """The networks prior ``name`` runs: () for a classical prior, the guide's, the upscaler's (not a consistency
    model) or a name not in the catalog."""
    entry = PRIORS.get(name)
    return entry.networks if entry is not None else ()


def prior_help() -> str:
    return "; ".join(f"{e.name}: {e.help}" for e in PRIORS.values())
