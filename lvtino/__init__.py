"""lvtino: zero-shot video restoration with video and image consistency models (LVTINO, arXiv 2510.01339).

``lvtino.restore``, ``lvtino.degrade`` and ``lvtino.evaluate`` work on files as the
commands do; ``lvtino.Restorer`` restores arrays and tensors (see ``lvtino.api``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lvtino")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name):  # the API loads torch and friends only when used
    if name in ("restore", "degrade", "evaluate", "Restorer"):
        from lvtino import api

        return getattr(api, name)
    raise AttributeError(f"module 'lvtino' has no attribute {name!r}")


__all__ = ["Restorer", "__version__", "degrade", "evaluate", "restore"]
