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
        self.tiled = 0  # sweeps whose VAE ran tile by tile
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
        SDXL decodes as they come). The frames are encoded as the published code does, clipped to [-1, 1].

        Each network works through the whole clip in one go (every frame encoded, then every batch denoised, then
        every frame decoded), so that with ``--offload model`` each enters the device once per sweep."""
        b, _, t, h, w = x.shape
        p = self.placement
        frames = pad_frames(rearrange(x.clamp(-1, 1), "b c t h w -> (b t) c h w"), self.spatial_multiple)
        hp, wp = frames.shape[-2:]
        step = int(round(timestep))
        a = float(self.alphas_cumprod[step])
        # one draw for the whole sweep: every frame sees the same noise
        noise = self.noise((1, self.latent_channels, hp // self.vae_scale, wp // self.vae_scale), generator)
        time_ids = torch.tensor([[hp, wp, 0, 0, hp, wp]], dtype=torch.float32, device=p.device)
        self.tiled += p.tile(self.vae, "image", VAE_FRAMES * hp * wp)
        with self.timer("image_vae_encode"), p.running(self.vae) as vae:  # a frame at a time: 1/n the memory
            z0 = torch.cat([vae.encode(f.to(p.device, p.dtype)).latent_dist.mean.float()
                            for f in frames.split(VAE_FRAMES)])
        z0 = (z0 - self.shift) * self.scaling
        zt = a ** 0.5 * z0 + (1 - a) ** 0.5 * noise
        with self.timer("image_model"), p.running(self.unet) as net:
            eps = []
            for chunk in zt.split(self.batch_size):
                n = chunk.shape[0]
                cond = {"text_embeds": self.pooled_embeds.to(p.device, p.dtype).expand(n, -1),
                        "time_ids": time_ids.to(p.dtype).expand(n, -1)}
                eps.append(net(chunk.to(p.dtype), torch.full((n,), step, device=p.device),
                               encoder_hidden_states=self.prompt_embeds.to(p.device, p.dtype).expand(n, -1, -1),
                               added_cond_kwargs=cond, return_dict=False)[0].float())
        z0_hat = (zt - (1 - a) ** 0.5 * torch.cat(eps)) / a ** 0.5
        with self.timer("image_vae_decode"), p.running(self.vae) as vae:
            out = [vae.decode(z.to(p.dtype), return_dict=False)[0].float()
                   for z in (z0_hat / self.scaling + self.shift).split(VAE_FRAMES)]
        self.calls += 1
        restored = rearrange(torch.cat(out), "(b t) c h w -> b c t h w", b=b)[..., :h, :w]
        return (restored.clamp(-1, 1) if clamp else restored).to(x.device)
