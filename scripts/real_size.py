"""The generative prior at real size, end to end through the real loader, on this machine (`make real-size`).

Writes local folders laid out like the hub repositories of ``configs/models.yaml``
(the published configurations, random weights: the CausVid checkpoint in its
original layout under ``generator``, DMD2's UNet state dict as a torch file, the
VAEs as diffusers folders; ``scripts/model_repos.py``), fills lvtino's prompt cache
with embeddings of the real text encoders' shapes (no text encoder is built: their
folders hold configs only, so a run that tried would stop), then runs
``lvtino restore --prior lvtino --models local.yaml`` on small clips of Problems A,
B and C, each in a process of its own. It checks that the real classes were built
from those folders (parameter counts), that every file fits its network exactly (the
keys of each file against the network its config builds; the loader itself refuses a
checkpoint that does not fit), the NFE (9 for A and B, 5 for C), the output's frames
and size, and prints each run's measured peak memory beside the memory plan restore
makes for the same job. Its last line is one JSON object.

The folders are written (and checked) by a process of its own, so that this
script holds nothing large while each restore runs: the run's peak is the
largest restore's, which is printed beside this script's own.

    python scripts/real_size.py [--folder DIR] [--dtype bfloat16] [--problems A B C]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from model_repos import NAMES, fill_prompt_cache, save_repos  # noqa: E402

# a clip per problem whose latents are small and whose frames fill one UNet batch: (frames, height, width); C needs
# 8x in time and space (and Wan 1 + 4k frames)
CLIPS = {"A": (5, 64, 96), "B": (5, 64, 96), "C": (9, 64, 96)}
NFE = {"A": 9, "B": 9, "C": 5}


def file_keys(path: Path) -> set[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return set(f.keys())
    return set(torch.load(path, map_location="meta", weights_only=True, mmap=True))


def strict_layout(repos: Path) -> dict[str, bool]:
    """Each weights file holds exactly the weights of the network its folder's config builds."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, AutoencoderKLWan, UNet2DConditionModel, WanTransformer3DModel

    from lvtino.models.weights import causvid_to_diffusers, read_state_dict

    wan, sdxl = repos / NAMES["wan"], repos / NAMES["sdxl"]
    with init_empty_weights():
        transformer = WanTransformer3DModel.from_config(WanTransformer3DModel.load_config(wan / "transformer"))
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(sdxl / "unet"))
        video_vae = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(wan / "vae"))
        image_vae = AutoencoderKL.from_config(AutoencoderKL.load_config(repos / NAMES["vae"]))
    checkpoint = causvid_to_diffusers(read_state_dict(repos / NAMES["causvid"] / NAMES["causvid_file"]))
    wanted = lambda net: {k for k in net.state_dict() if not k.startswith("rope.")}  # noqa: E731 (rope: computed)
    return {
        "video transformer (CausVid checkpoint)": set(checkpoint) == wanted(transformer),
        "image UNet (DMD2 state dict)": file_keys(repos / NAMES["dmd2"] / NAMES["dmd2_file"]) == wanted(unet),
        "video VAE": file_keys(wan / "vae" / "diffusion_pytorch_model.safetensors") == wanted(video_vae),
        "image VAE": file_keys(repos / NAMES["vae"] / "diffusion_pytorch_model.safetensors") == wanted(image_vae),
    }


def clip_of(problem: str, folder: Path, env: dict) -> Path:
    from lvtino.video.synthetic import synthetic_clip
    from lvtino.video.writer import VideoWriter

    frames, h, w = CLIPS[problem]
    clean, measured = folder / f"clean-{problem}.mkv", folder / f"y-{problem}.mkv"
    with VideoWriter(clean, Fraction(30)) as writer:
        for frame in synthetic_clip(frames, h, w):
            writer.write(frame)
    subprocess.run([sys.executable, "-m", "lvtino", "-q", "degrade", str(clean), "-o", str(measured), "--problem",
                    problem, "-y"], check=True, env=env)
    return measured


def prepare(repos: Path) -> dict:
    """Write the folders (unless there), fill the prompt cache and check every file's keys: what ``--prepare`` does
    in a process of its own."""
    t0 = time.perf_counter()
    if not (repos / "models.yaml").is_file():
        shutil.rmtree(repos, ignore_errors=True)
        save_repos(repos, "full")
    built = time.perf_counter() - t0
    cached = fill_prompt_cache(repos / "models.yaml")
    size = sum(p.stat().st_size for p in repos.rglob("*") if p.is_file())
    return {"built_s": round(built, 1), "bytes": size, "cached": [p.name for p in cached],
            "strict": strict_layout(repos), "peak_memory_mb": round(peak_mb(resource.RUSAGE_SELF))}


def peak_mb(who) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def failed(what: str, proc: subprocess.CompletedProcess) -> str:
    """What a failed child said: its exit code (a kill by a signal named) and its last lines."""
    code = proc.returncode
    how = f"exit code {code}" if code >= 0 else f"killed by signal {-code}" + (" (out of memory?)" if code == -9
                                                                                 else "")
    lines = (proc.stderr or "").strip().splitlines()[-15:]
    return f"{what} failed: {how}; its last lines:\n" + ("\n".join(lines) if lines else "(it printed nothing)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=None, help="where the folders go (default: a temporary one, removed)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"],
                        help="the networks' dtype on the CPU (default bfloat16: the published checkpoints' width)")
    parser.add_argument("--problems", nargs="+", default=["A", "B", "C"], choices=list(CLIPS))
    parser.add_argument("--prepare", default=None, help=argparse.SUPPRESS)  # the child that writes the folders
    args = parser.parse_args()
    if args.prepare:
        print(json.dumps(prepare(Path(args.prepare))))
        return
    folder = Path(args.folder or tempfile.mkdtemp(prefix="lvtino-real-size-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LVTINO_CACHE": str(folder / "cache"), "HF_HUB_OFFLINE": "1"}
    os.environ["LVTINO_CACHE"] = env["LVTINO_CACHE"]
    repos = folder / "repos"
    try:
        proc = subprocess.run([sys.executable, __file__, "--prepare", str(repos)], env=env, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            sys.exit(failed("writing the folders", proc))
        made = json.loads(proc.stdout.strip().splitlines()[-1])
        built, size, strict, models = made["built_s"], made["bytes"], made["strict"], repos / "models.yaml"
        print(f"folders: {repos} ({size / 2**30:.1f} GB, written in {built:.0f} s by a process of its own, peak "
              f"{made['peak_memory_mb']:.0f} MiB); prompt cache: {', '.join(made['cached'])}")
        for name, ok in strict.items():
            print(f"  {name}: {'every weight, nothing else' if ok else 'DOES NOT FIT its network'}")
        runs = {}
        for problem in args.problems:
            measured = clip_of(problem, folder, env)
            out, stats = folder / f"restored-{problem}.mkv", folder / f"stats-{problem}.json"
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "lvtino", "restore", str(measured), "-o", str(out),
                                   "--prior", "lvtino", "--models", str(models), "--dtype", args.dtype,
                                   "--device", "cpu", "--stats", str(stats), "-y"], env=env, capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                sys.exit(failed(f"restore of problem {problem}", proc))
            facts = json.loads(stats.read_text())
            plan_mb = facts["memory_plan"]["expected_peak_gb"] * 1e9 / 2**20  # the plan's GB are 1e9 bytes
            runs[problem] = {"nfe": facts["nfe"]["total"], "frames": facts["frames"],
                             "size": [facts["width"], facts["height"]], "seconds": round(time.perf_counter() - t0, 1),
                             "peak_memory_mb": facts["peak_memory_mb"], "plan_peak_mb": round(plan_mb),
                             "parameters": facts["parameters"], "seconds_per_stage": facts["seconds_per_stage"]}
            want = CLIPS[problem]
            ok = (facts["nfe"]["total"] == NFE[problem] and facts["frames"] == want[0]
                  and (facts["height"], facts["width"]) == want[1:])
            print(f"problem {problem}: NFE {facts['nfe']['total']} (want {NFE[problem]}), {facts['frames']} frames of "
                  f"{facts['width']}x{facts['height']}, {runs[problem]['seconds']} s; peak memory "
                  f"{facts['peak_memory_mb']:.0f} MiB, the plan's {plan_mb:.0f} MiB "
                  f"({facts['peak_memory_mb'] / plan_mb - 1:+.0%}){'' if ok else '  <- NOT AS WANTED'}")
        parameters = next(iter(runs.values()))["parameters"] if runs else {}
        largest = max((r["peak_memory_mb"] for r in runs.values()), default=0)
        own = peak_mb(resource.RUSAGE_SELF)
        whole = max(largest, made["peak_memory_mb"]) + own  # the writer ends before the first restore starts
        print(f"whole run: at most {whole:.0f} MiB at once: the larger of the folders' writer "
              f"({made['peak_memory_mb']:.0f} MiB) and a restore ({largest:.0f} MiB), one at a time, with this "
              f"script ({own:.0f} MiB)")
        print(json.dumps({
            "transformer_parameters": parameters.get("video_transformer"),
            "unet_parameters": parameters.get("image_unet"),
            "video_vae_parameters": parameters.get("video_vae"), "image_vae_parameters": parameters.get("image_vae"),
            "strict_loads": all(strict.values()), "nfe": {p: r["nfe"] for p, r in runs.items()},
            "frames": {p: r["frames"] for p, r in runs.items()}, "size": {p: r["size"] for p, r in runs.items()},
            "peak_memory_mb": {p: r["peak_memory_mb"] for p, r in runs.items()},
            "plan_peak_mb": {p: r["plan_peak_mb"] for p, r in runs.items()},
            "seconds": {p: r["seconds"] for p, r in runs.items()}, "dtype": args.dtype,
            "folders_gb": round(size / 2**30, 2), "written_s": round(built, 1),
            "script_peak_mb": round(own), "writer_peak_mb": made["peak_memory_mb"],
            "whole_run_peak_mb": round(whole)}))
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
