"""The tools a video may have been shrunk with, by name: each one's kernel, its parameter and its edge rule.

Data only (no torch), so that the command line can list them when it starts;
``physics.resample`` builds the matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

KERNELS = ("box", "area", "triangle", "cubic", "lanczos3")


@dataclass(frozen=True)
class Resampler:
    kernel: str
    a: float = -0.5  # the cubic's parameter (Keys): -0.5 PIL, -0.6 ffmpeg's default, -0.75 OpenCV
    edge: str = "renormalize"  # or "clamp" (the edge sample repeats)
    tool: str = ""
    # the tool's own call, which tests/test_resample.py compares this entry with: (library, its filter's name), the
    # library one of "pil", "torch", "ffmpeg", "opencv"; an entry naming no checkable tool fails there
    reference: tuple[str, str] = ("", "")


RESAMPLERS: dict[str, Resampler] = {
    "ffmpeg": Resampler("cubic", -0.6, "clamp", "ffmpeg's default scaler (swscale bicubic, B=0 C=0.6)",
                        ("ffmpeg", "BICUBIC")),
    "ffmpeg-bilinear": Resampler("triangle", edge="clamp", tool="ffmpeg -vf scale=...:flags=bilinear",
                                 reference=("ffmpeg", "BILINEAR")),
    "ffmpeg-lanczos": Resampler("lanczos3", edge="clamp", tool="ffmpeg -vf scale=...:flags=lanczos",
                                reference=("ffmpeg", "LANCZOS")),
    "ffmpeg-area": Resampler("area", edge="clamp", tool="ffmpeg -vf scale=...:flags=area",
                             reference=("ffmpeg", "AREA")),
    "pil-bicubic": Resampler("cubic", -0.5, "renormalize", "PIL Image.resize(BICUBIC), the default",
                             ("pil", "BICUBIC")),
    "pil-bilinear": Resampler("triangle", edge="renormalize", tool="PIL Image.resize(BILINEAR)",
                              reference=("pil", "BILINEAR")),
    "pil-lanczos": Resampler("lanczos3", edge="renormalize", tool="PIL Image.resize(LANCZOS)",
                             reference=("pil", "LANCZOS")),
    "pil-box": Resampler("box", edge="renormalize", tool="PIL Image.resize(BOX)", reference=("pil", "BOX")),
    "torch-bicubic": Resampler("cubic", -0.5, "renormalize",
                               "torch interpolate(mode='bicubic', antialias=True); torchvision Resize",
                               ("torch", "bicubic")),
    "torch-bilinear": Resampler("triangle", edge="renormalize",
                                tool="torch interpolate(mode='bilinear', antialias=True)",
                                reference=("torch", "bilinear")),
    "opencv-area": Resampler("area", edge="clamp", tool="OpenCV resize(INTER_AREA)",
                             reference=("opencv", "INTER_AREA")),
}
