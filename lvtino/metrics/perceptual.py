"""LPIPS (VGG), as the paper reports it, when its weights are already on this machine.

Needs the ``lpips`` package (``pip install lvtino[lpips]``, with torchvision) and
the ImageNet VGG16 weights in the torch hub cache
(``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``). Nothing is downloaded: when
either is missing the metric is null and the reason says which.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

VGG_FILE = "vgg16-397923af.pth"


def vgg_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG_FILE


class LPIPS:
    """lpips.LPIPS(net="vgg") on RGB (N, 3, H, W) in [0, 1]; ``unavailable`` holds the reason it cannot run."""

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.model, self.unavailable, self.device = None, None, device
        try:
            import lpips  # noqa: F401
        except ImportError:
            self.unavailable = "the lpips package is not installed (pip install 'lvtino[lpips]')"
            return
        if not vgg_weights_path().is_file():
            self.unavailable = f"VGG16 weights not in the torch cache ({vgg_weights_path()}); nothing is downloaded"
            return
        import lpips

        with warnings.catch_warnings():  # lpips asks torchvision with the older 'pretrained' argument
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net="vgg", verbose=False).eval().to(device)
        self.model.requires_grad_(False)

    @torch.inference_mode()
    def __call__(self, x: Tensor, ref: Tensor) -> Tensor:
        """Per-image distances (N,)."""
        return self.model(x.float().to(self.device) * 2 - 1, ref.float().to(self.device) * 2 - 1).flatten().cpu()
