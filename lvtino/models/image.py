"""The image consistency model: SDXL's UNet (distilled by DMD2) as a per-frame one-call denoiser.

Variance preserving: z_t = sqrt(a_t) z_0 + sqrt(1 - a_t) eps, the UNet predicts
eps, so z_0 = (z_t - sqrt(1 - a_t) eps_hat) / sqrt(a_t). One sweep over a clip
denoises every frame with the same noise draw (one NFE in the paper's count).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from lvtino.models.base import ConsistencyModel, Placement, pad_frames
from lvtino.runtime import StageTimer


VAE_FRAMES = 1  # frames per VAE call: an HD decode needs ~2.4 KB per pixel (16-bit), 2.4 GB a 768x1280 frame


class ImageConsistencyModel(ConsistencyModel):
    """SDXL VAE + UNet applied frame by frame, ``batch_size`` frames per network call."""

    kind = "image"

    def __init__(self, unet, vae, prompt_embeds: Tensor, pooled_embeds: Tensor, alphas_cumprod: Tensor,
                 placement: Placement, batch_size: int = 8, timer: StageTimer | None = None):
        super().__init__(placement, timer)
        self.unet = placement.adopt(unet)
        self.vae = placement.adopt(vae)
        self.tiled = 0  # batches whose VAE ran tile by tile
        self.prompt_embeds, self.pooled_embeds = prompt_embeds, pooled_embeds
        self.alphas_cumprod = alphas_cumprod.double()
        self.batch_size = max(1, batch_size)
        self.scaling = vae.config.scaling_factor
        self.shift = getattr(vae.config, "shift_factor", None) or 0.0
        vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)
        self.vae_scale = vae_scale
        self.latent_channels = unet.config.in_channels
        self.spatial_multiple = vae_scale * 2 ** (len(unet.config.block_out_channels) - 1)

    @torch.inference_mode()
    def denoise(self, x: Tensor, timestep: float, generator: torch.Generator, clamp: bool = True) -> Tensor:
        """x0 of the clip in pixel space, kept in [-1, 1] unless ``clamp`` is false (the published code leaves the
        SDXL decodes as they come)."""
        b, _, t, h, w = x.shape
        p = self.placement
        frames = pad_frames(rearrange(x, "b c t h w -> (b t) c h w"), self.spatial_multiple)
        hp, wp = frames.shape[-2:]
        step = int(round(timestep))
        a = float(self.alphas_cumprod[step])
        # one draw for the whole sweep: every frame sees the same noise
        noise = self.noise((1, self.latent_channels, hp // self.vae_scale, wp // self.vae_scale), generator)
        time_ids = torch.tensor([[hp, wp, 0, 0, hp, wp]], dtype=torch.float32, device=p.device)
        out = []
        for chunk in frames.split(self.batch_size):
            n = chunk.shape[0]
            self.tiled += p.tile(self.vae, "image", min(n, VAE_FRAMES) * hp * wp)
            with self.timer("image_vae_encode"), p.running(self.vae) as vae:  # a frame at a time: same numbers,
                z0 = torch.cat([vae.encode(f.to(p.device, p.dtype)).latent_dist.mean.float()  # 1/n the memory
                                for f in chunk.split(VAE_FRAMES)])
                z0 = (z0 - self.shift) * self.scaling
            zt = a ** 0.5 * z0 + (1 - a) ** 0.5 * noise.expand(n, -1, -1, -1)
            with self.timer("image_model"), p.running(self.unet) as net:
                eps = net(zt.to(p.dtype), torch.full((n,), step, device=p.device),
                          encoder_hidden_states=self.prompt_embeds.to(p.device, p.dtype).expand(n, -1, -1),
                          added_cond_kwargs={"text_embeds": self.pooled_embeds.to(p.device, p.dtype).expand(n, -1),
                                             "time_ids": time_ids.to(p.dtype).expand(n, -1)},
                          return_dict=False)[0].float()
            z0_hat = (zt - (1 - a) ** 0.5 * eps) / a ** 0.5
            with self.timer("image_vae_decode"), p.running(self.vae) as vae:
                for z in (z0_hat / self.scaling + self.shift).split(VAE_FRAMES):
                    out.append(vae.decode(z.to(p.dtype), return_dict=False)[0].float())
        self.calls += 1
        restored = rearrange(torch.cat(out), "(b t) c h w -> b c t h w", b=b)[..., :h, :w]
        return (restored.clamp(-1, 1) if clamp else restored).to(x.device)
