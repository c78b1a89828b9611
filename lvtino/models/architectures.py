"""Architectures of the four networks, as diffusers/transformers constructor arguments.

``TINY`` holds the small configurations that diffusers' own tests use (every code
path runs on a CPU in milliseconds); ``FULL`` the published sizes of
Wan2.1-T2V-1.3B and SDXL, for measuring speed and memory with random weights
(``scripts/gpu_timing.py``) without downloading anything. Real runs read the
architectures from the model repositories' config files instead.
"""

from __future__ import annotations

TINY = {
    "video_transformer": dict(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=1024),  # 1024 (not 32): HD frames fit the position table
    "video_vae": dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                      temperal_downsample=[False, True, True]),
    "video_text_encoder": dict(vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                               relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                               decoder_start_token_id=0),
    "image_unet": dict(
        block_out_channels=(2, 4), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=1),
    "image_vae": dict(block_out_channels=(8, 8, 8, 8), in_channels=3, out_channels=3,
                      down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                      latent_channels=4, norm_num_groups=2, layers_per_block=1, scaling_factor=0.13025),
    # two CLIP text encoders whose hidden sizes add up to the UNet's cross-attention width (32 + 32 = 64)
    # and whose pooled projection (32) plus 6 time ids x 8 fills projection_class_embeddings_input_dim (80)
    "image_text_encoder": dict(vocab_size=128, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                               num_attention_heads=4, max_position_embeddings=77, pad_token_id=0,
                               bos_token_id=2, eos_token_id=1),
    "image_text_encoder_2": dict(vocab_size=128, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                 num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
                                 pad_token_id=0, bos_token_id=2, eos_token_id=1),
    "video_prompt_tokens": 16,
}

FULL = {
    # Wan-AI/Wan2.1-T2V-1.3B-Diffusers, transformer/config.json
    "video_transformer": dict(
        patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
        text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024),
    # vae/config.json (the class defaults)
    "video_vae": dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                      temperal_downsample=[False, True, True]),
    # stabilityai/stable-diffusion-xl-base-1.0, unet/config.json
    "image_unet": dict(
        block_out_channels=(320, 640, 1280), layers_per_block=2, sample_size=128, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(5, 10, 20), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=256, transformer_layers_per_block=(1, 2, 10),
        projection_class_embeddings_input_dim=2816, cross_attention_dim=2048, norm_num_groups=32),
    # madebyollin/sdxl-vae-fp16-fix, config.json
    "image_vae": dict(block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3,
                      down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                      latent_channels=4, norm_num_groups=32, layers_per_block=2, scaling_factor=0.13025,
                      sample_size=1024, force_upcast=False),
    # prompt embeddings of the real text encoders: UMT5-XXL (512 x 4096), SDXL's two CLIPs (77 x 2048, pooled 1280)
    "video_prompt_shape": (512, 4096),
    "image_prompt_shape": (77, 2048),
    "image_pooled_dim": 1280,
}
