"""The video consistency model: Wan2.1 (distilled by CausVid) as a one-call denoiser of whole clips.

Flow matching: z_t = (1 - sigma) z_0 + sigma eps, the transformer predicts
v = eps - z_0, so z_0 = z_t - sigma v. The sigma table is Wan's: 1000 training
steps, shifted by ``shift``. The noise of a timestep is the nearest table entry's sigma; the network is given
the schedule's own integer timestep (as the published sampler does), not the table's.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lvtino.models.base import ConsistencyModel, Placement, pad_frames, pad_time
from lvtino.runtime import StageTimer


def flow_sigmas(shift: float, steps: int = 1000) -> Tensor:
    """sigma' = shift s / (1 + (shift - 1) s) for s = 1, 1 - 1/steps, ..., 1/steps (float64)."""
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)[:-1]
    return shift * s / (1 + (shift - 1) * s)


class VideoConsistencyModel(ConsistencyModel):
    """Wan VAE + transformer. Clips are padded to H, W multiples of 16 and 1 + 4k frames, then cropped back."""

    kind = "video"

    def __init__(self, transformer, vae, prompt_embeds: Tensor, shift: float, placement: Placement,
                 timer: StageTimer | None = None):
        super().__init__(placement, timer)
        self.transformer = placement.adopt(transformer)
        self.vae = placement.adopt(vae)
        self.prompt_embeds = prompt_embeds
        self.sigmas = flow_sigmas(shift)
        cfg = vae.config
        self.latents_mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self.latents_std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self.spatial_multiple = cfg.scale_factor_spatial * transformer.config.patch_size[1]
        self.temporal_stride = cfg.scale_factor_temporal
        self.tiled = 0  # calls whose VAE ran tile by tile

    def sigma_at(self, timestep: float) -> tuple[float, float]:
        """(sigma of the table entry nearest to ``timestep``, the timestep the network is given: ``timestep``)."""
        table = 1000.0 * self.sigmas
        i = int(torch.argmin((table - timestep).abs()))
        return float(self.sigmas[i]), float(timestep)

    @torch.inference_mode()
    def denoise(self, x: Tensor, timestep: float, generator: torch.Generator) -> Tensor:
        b, _, t, h, w = x.shape
        p = self.placement
        clip = pad_time(pad_frames(x, self.spatial_multiple), self.temporal_stride)
        mean, std = self.latents_mean.to(p.device), self.latents_std.to(p.device)
        self.tiled += p.tile(self.vae, "video", clip.shape[-1] * clip.shape[-2])
        with self.timer("video_vae_encode"), p.running(self.vae) as vae:
            z0 = (vae.encode(clip.to(p.device, p.dtype)).latent_dist.mean.float() - mean) / std
        sigma, tstep = self.sigma_at(timestep)
        zt = (1 - sigma) * z0 + sigma * self.noise(z0.shape, generator)
        with self.timer("video_model"), p.running(self.transformer) as net:
            v = net(zt.to(p.dtype), timestep=torch.full((b,), tstep, device=p.device),
                    encoder_hidden_states=self.prompt_embeds.to(p.device, p.dtype).expand(b, -1, -1),
                    return_dict=False)[0].float()
        z0_hat = zt - sigma * v
        with self.timer("video_vae_decode"), p.running(self.vae) as vae:
            out = vae.decode((z0_hat * std + mean).to(p.dtype), return_dict=False)[0].float()
        self.calls += 1
        return out[:, :, :t, :h, :w].clamp(-1, 1).to(x.device)
