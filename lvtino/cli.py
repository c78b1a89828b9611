"""The ``lvtino`` command: degrade, restore, batch, evaluate, benchmark, download, demo.

A user mistake ends in one line on stderr (``lvtino: error: ...``) and exit code 2;
a failure of the system (a full disk, a file the system refuses to read or write) in
one line and exit code 1, as does a batch in which an item failed; an interruption
(Ctrl-C, SIGTERM) in one line and 128 + the signal's number. A notice that needs no
action is one line too (``lvtino: notice: ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from fractions import Fraction

from lvtino.config import known_problems
from lvtino.errors import DiskFull, NetworkError, NotWritten, UserError, is_disk_full, naming
from lvtino.files import NotPlaced, output_claims
from lvtino.models.options import DTYPE_NAMES, OFFLOAD_MODES, TILING_MODES, ModelOptions
from lvtino.pipeline.catalog import PRIORS, prior_help
from lvtino.runtime import Interrupted, starting, stop_on_signals, tune_cpu_allocator

EXIT_USER_ERROR = 2
log = logging.getLogger("lvtino")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line, like every other mistake."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"lvtino: error: {message} (see '{self.prog} --help')\n")



def _crf(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        from lvtino.video.formats import crf_help

        raise argparse.ArgumentTypeError(f"{text!r}: the CRF is a whole number, in the codec's range: "
                                         f"{crf_help()}") from None


MIN_FPS, MAX_FPS = Fraction(1, 1000), 100_000  # a time-lapse's frame every quarter of an hour; a high-speed camera


def _fraction(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a frame rate (e.g. 30, 29.97 or 30000/1001)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the frame rate must be positive")
    if not MIN_FPS <= value <= MAX_FPS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a frame rate from {float(MIN_FPS):g} (a frame every "
                                         f"{float(1 / MIN_FPS):g} s) to {MAX_FPS} fps")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r}: a seed is a whole number from 0 to 2^63 - 1")
    return value


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-fps", dest="input_fps", type=_fraction, default=None, metavar="FPS",
                   help="frame rate of a folder of frames (default: recorded by lvtino, else 30)")
    p.add_argument("--accept-truncated", action="store_true",
                   help="use the frames a truncated or damaged input holds, instead of refusing it")


def _add_overwrite_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-y", "--overwrite", dest="overwrite", action="store_const", const="yes", default="ask",
                       help="replace outputs that exist (without -y or -n an existing output is refused)")
    group.add_argument("-n", "--no-overwrite", dest="overwrite", action="store_const", const="no",
                       help="never replace an output that exists")


def _add_words_options(p: argparse.ArgumentParser, restoring: bool) -> None:
    from lvtino.physics.resamplers import RESAMPLERS
    from lvtino.pipeline.words import FPS_MODES

    larger = "larger" if restoring else "smaller"
    p.add_argument("--scale", type=int, default=None, metavar="N",
                   help=("the video is to be N times larger" if restoring else "the video is shrunk N times")
                   + " in width and height (instead of --problem)")
    p.add_argument("--fps-factor", dest="fps_factor", type=int, default=None, metavar="K",
                   help="the frame rate " + ("times K: K frames for every input frame" if restoring else
                                             "divided by K: one frame kept (or averaged) in K"))
    p.add_argument("--size", default=None, metavar="WxH",
                   help=f"the {larger} video's size, instead of --scale (" + (
                       "a whole multiple of the input's size" if restoring else
                       "the clean size divided by a whole number") + ")")
    p.add_argument("--fps", type=_fraction, default=None,
                   help=f"the {'restored' if restoring else 'measured'} frame rate, instead of --fps-factor (" + (
                       "a whole multiple of the input's" if restoring else "the clean rate divided by a whole number")
                   + ")")
    p.add_argument("--resampler", default="ffmpeg", choices=list(RESAMPLERS), metavar="NAME",
                   help="the tool that shrank the video: " + ", ".join(RESAMPLERS) + " (default ffmpeg: its default "
                        "bicubic scaler)")
    p.add_argument("--fps-mode", dest="fps_mode", default="ffmpeg", choices=list(FPS_MODES),
                   help="the rule of the tool that lowered the frame rate: ffmpeg (default; also called drop): its "
                        "fps filter, which keeps frames 1, 5, 9, ... for 30 -> 7.5 fps; select: every K-th frame from "
                        "the first (select='not(mod(n,K))', framestep, most scripts); average: the K frames "
                        "averaged (a long exposure)")
    p.add_argument("--fps-phase", dest="fps_phase", type=int, default=None, metavar="N",
                   help="the first frame kept (0 to K-1), for a tool whose rule is none of the modes")


def _words(args):
    from lvtino.pipeline.words import Words

    return Words(args.scale, args.fps_factor, args.size, args.fps, args.resampler, args.fps_mode, args.fps_phase)


def _model_options(args) -> ModelOptions:
    return ModelOptions(args.models, args.dtype, args.offload, args.vae_tiling)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """What restore and batch share: device, networks, seed, windows and the output's encoding."""
    from lvtino.video.formats import DEFAULTS, FORMATS, crf_help, preset_help

    p.add_argument("--device", default="auto", help="torch device: auto (default: cuda when present, else cpu), cpu, "
                                                    "cuda, cuda:1")
    _add_model_options(p)
    p.add_argument("--seed", type=_seed, default=0,
                   help="seed of the sampler's noise (default 0): same seed, same output")
    p.add_argument("--window", type=int, default=None, metavar="N",
                   help="output frames per window (default: the preset's, 25; 81 for C; rounded down to a multiple "
                        "of the temporal factor)")
    p.add_argument("--overlap", type=int, default=None, metavar="N",
                   help="frames shared by neighbouring windows, cross-faded and made measurement-consistent "
                        "(default: the preset's; rounded up to the temporal factor)")
    defaults = ", ".join(f"{s or 'a folder'} {name}" for s, name in DEFAULTS.items())
    p.add_argument("--codec", default=None, choices=list(FORMATS), metavar="CODEC",
                   help="what the output is written as: " + "; ".join(
                       f"{f.name}: {f.title}, {', '.join(s or 'a folder' for s in f.suffixes)}"
                       for f in FORMATS.values()) + f" (default by the output's name: {defaults})")
    p.add_argument("--crf", type=_crf, default=None, help="quality of a lossy codec, lower is better: " + crf_help())
    p.add_argument("--preset", default=None, metavar="PRESET",
                   help="encoder speed, slowest to fastest: " + preset_help())
    p.add_argument("--pix-fmt", dest="pix_fmt", default=None, metavar="PIX_FMT",
                   help="pixel format of a YUV codec (default: 4:2:0 at the input's bit depth where the codec has "
                        "it; ProRes 4:2:2 10-bit): yuv420p plays everywhere (an odd size is padded by one pixel), "
                        "yuv444p keeps exact colour and size; 10-bit yuv420p10le, yuv444p10le; "
                        "12-bit (hevc) yuv420p12le")
    p.add_argument("--no-audio", action="store_true", help="do not copy the audio track")


def _add_problem_options(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--problem", required=required, metavar="NAME",
                   help=f"degradation preset: {', '.join(known_problems())}")
    p.add_argument("--config", metavar="FILE", help="a YAML preset of your own instead of a named problem")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset entry by its dotted path, e.g. --set tv.lam_space=0.01 (repeatable)")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", metavar="FILE|tiny", default=None,
                   help="networks of the lvtino priors: a models YAML file (default: the packaged "
                        "configs/models.yaml), or 'tiny' for small random networks (a code-path check: the output "
                        "is meaningless for quality)")
    p.add_argument("--dtype", default="auto", choices=["auto", *DTYPE_NAMES],
                   help="dtype of the networks (default auto: on CUDA bfloat16 for Wan and float16 for SDXL, as the "
                        "published code; float32 on the CPU); "
                        "data-consistency steps always run in float32")
    p.add_argument("--vae-tiling", dest="vae_tiling", default="off", choices=TILING_MODES,
                   help="decode (and encode) with the VAEs tile by tile: off (default, as the published code: tiles "
                        "can shift tones and leave seams), on, or auto: only when a frame would not fit the GPU's "
                        "free memory")
    p.add_argument("--offload", default="none", choices=OFFLOAD_MODES,
                   help="none (default); model: each network on the GPU only for its call; group: diffusers' "
                        "block-by-block group offloading (least GPU memory, slowest)")


def _common() -> argparse.ArgumentParser:
    """-v and -q, accepted before or after the command."""
    common = argparse.ArgumentParser(add_help=False)
    loud = common.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                      help="debug messages too")
    loud.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                      help="nothing on success (no results, progress bars or notices: use --stats, --json or the "
                           "batch summary for results); errors and warnings only")
    return common


def build_parser() -> argparse.ArgumentParser:
    from lvtino import __version__

    parser = _Parser(prog="lvtino", parents=[_common()], description=(
        "Zero-shot video restoration: simulate a degradation, restore a degraded video, measure the result."))
    parser.add_argument("--version", action="version", version=f"lvtino {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("degrade", parents=[_common()],
                       help="simulate y = A(x) + n from a clean video (written losslessly)",
                       description="Simulate a measurement of a clean video. The output is lossless (.mkv: FFV1, "
                                   ".mp4: H.264 RGB at qp 0, a folder: PNG frames) and records the problem, its "
                                   "parameters and the original frame count and size for `lvtino restore`.")
    p.add_argument("input", help="clean video file, folder of numbered frames, or - to read a pipe")
    p.add_argument("-o", "--output", required=True, help="measurement: .mkv, .mp4 or a folder")
    _add_problem_options(p, required=False)
    _add_words_options(p, restoring=False)
    p.add_argument("--noise-std", type=float, default=None,
                   help="Gaussian noise std in [0, 1] units (default: the preset's, 0.001 as the paper; 0: none)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the noise (default 0)")
    p.add_argument("--protocol", choices=["lvtino", "published"], default="lvtino",
                   help="lvtino (default): y = A(x) + n in float64, rounded to 8 bits; published: the measurement "
                        "the published code makes for the paper's problems A, B, C and jpeg (bfloat16 ground truth "
                        "and y, no noise in C, JPEG of [0, 1] frames by an operator written for [-1, 1]), kept at "
                        "16 bits in a .mkv")
    p.add_argument("--no-audio", action="store_true", help="do not copy the audio track")
    _add_overwrite_options(p)
    _add_input_options(p)

    p = sub.add_parser("restore", parents=[_common()], help="restore a degraded video",
                       description="Restore a degraded video of any length, streamed in overlapping windows "
                                   "whose seams are cross-faded and made measurement-consistent. The output has the "
                                   "measurement's size times the spatial factor, its frame rate times the temporal "
                                   "factor and the original frame count when the input records it (else --frames, "
                                   "else factor x frames). Under torchrun or accelerate launch the windows are "
                                   "shared between the processes.")
    p.add_argument("input", help="degraded video file, folder of frames, or - to read a pipe (ffmpeg ... -f matroska -)")
    p.add_argument("-o", "--output", required=True,
                   help="restored video: .mp4 (H.264), .mkv (lossless FFV1) or a folder (PNG frames)")
    _add_problem_options(p, required=False)
    _add_words_options(p, restoring=True)
    p.add_argument("--guide", default=None, metavar="VIDEO",
                   help="a restoration of the same input made by another tool (Real-ESRGAN, RIFE, video2x, Topaz, "
                        "a player...) at the output's size, frame rate and frame count: the output is the video "
                        "closest to it that explains the input (instead of --prior)")
    p.add_argument("--upscaler", default=None, metavar="FILE",
                   help="a single-image upscaler model file (.pth/.safetensors that spandrel loads: Real-ESRGAN, "
                        "SwinIR, HAT, ...; pip install 'lvtino[upscaler]') at the input's scale: its frames, "
                        "carried in time by the motion start and made consistent with the input, are the output "
                        "(instead of a classical --prior), or the start of a generative one (--prior lvtino); "
                        "scripts/upscaler_weights.py writes Real-ESRGAN's animevideov3")
    p.add_argument("--prior", default=None, choices=list(PRIORS), metavar="PRIOR", help=prior_help())
    p.add_argument("--start", default=None, metavar="FRAME|TIME",
                   help="first output frame to restore: a frame number, seconds (12.5 or 12.5s) or a time "
                        "[HH:]MM:SS[.fff] (default 0)")
    p.add_argument("--end", default=None, metavar="FRAME|TIME",
                   help="output frame (or seconds, or time) to stop before, as in Python slices: --start 30 --end 90 "
                        "gives 60 frames; only the windows these frames need are restored; past the end: up to the "
                        "end, with a notice")
    p.add_argument("--frames", type=int, default=None,
                   help="frame count of the restored video when the input does not record it")
    p.add_argument("--resume", action="store_true",
                   help="reuse the finished windows of an interrupted run (kept in .OUTPUT.lvtino-state next to "
                        "the output); refused if the input or settings differ")
    p.add_argument("--keep-state", action="store_true", help="keep the state folder after success")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="check everything and print the plan (range, windows; for --prior lvtino which network sits "
                        "where at each stage and the expected peak memory, and that the weights are here), write "
                        "nothing")
    p.add_argument("--stats", metavar="FILE.json", help="write timings, peak memory and solver facts here")
    _add_run_options(p)
    _add_overwrite_options(p)
    _add_input_options(p)

    p = sub.add_parser("batch", parents=[_common()],
                       help="restore many videos: a CSV/YAML manifest, or a folder of inputs",
                       description="Restore every item of a manifest (.csv with columns input, output and "
                                   "optionally problem, prior, start, end, set (KEY=VALUE;KEY=VALUE); or .yaml: a "
                                   "list of such mappings, or 'defaults' and 'items'; paths relative to the "
                                   "manifest), or every video and frame folder of a folder (-o names the output "
                                   "folder). An output made by the same input and settings is skipped as done; "
                                   "one made otherwise fails its item unless -y (redo) or -n (keep). A failing "
                                   "item is reported and the batch goes on; a summary table is printed and "
                                   "written as CSV. Exit code 1 if any item failed.")
    p.add_argument("manifest", help="a .csv or .yaml manifest, or a folder of inputs")
    p.add_argument("-o", "--output", default=None, help="output folder (for a folder of inputs)")
    from lvtino.video.formats import DEFAULTS

    p.add_argument("--suffix", default=".mp4", choices=[s for s in DEFAULTS if s],
                   help="the outputs' suffix for a folder of inputs (default .mp4; --codec chooses within it)")
    p.add_argument("--summary", default=None, metavar="FILE.csv",
                   help="where the summary table goes (default: lvtino-batch-summary.csv in the output folder, "
                        "or MANIFEST-summary.csv beside a manifest); a summary an earlier batch wrote there is "
                        "replaced, any other file only with -y, and never an input or the manifest")
    _add_problem_options(p, required=False)
    p.add_argument("--prior", default=None, choices=list(PRIORS), metavar="PRIOR",
                   help="prior of items that name none (default tv, or the upscaler's)")
    p.add_argument("--upscaler", default=None, metavar="FILE",
                   help="a single-image upscaler model file for every item (as restore's --upscaler)")
    _add_words_options(p, restoring=True)
    _add_run_options(p)
    p.add_argument("--resume", action="store_true",
                   help="go on with items an interrupted batch left half done (their finished windows are reused)")
    _add_overwrite_options(p)
    p.add_argument("--accept-truncated", action="store_true",
                   help="use the frames a truncated or damaged input holds, instead of failing the item")

    p = sub.add_parser("benchmark", parents=[_common()],
                       help="the paper's protocol: degrade, restore with each prior, evaluate, tabulate",
                       description="For every clean clip, problem and prior: degrade (noise 0.001, or as the "
                                   "published code with --protocol published), restore, "
                                   "evaluate; write benchmark.csv, .md and .html (means over clips) beside the "
                                   "paper's published numbers, labelled as such. Finished cells are reused when "
                                   "the benchmark is run again.")
    p.add_argument("clips", nargs="+", help="clean clips: video files or folders of frames")
    p.add_argument("--problems", nargs="+", default=["A", "B"], metavar="NAME", help="default: A B")
    p.add_argument("--priors", nargs="+", default=["pinv", "tv"], choices=list(PRIORS), metavar="PRIOR",
                   help="default: pinv tv (add lvtino when its weights are here, or with --models tiny)")
    p.add_argument("-o", "--output", default="lvtino-benchmark", help="output folder (default ./lvtino-benchmark)")
    p.add_argument("--frames", type=int, default=None, help="frames of each clip to use (default all)")
    p.add_argument("--start", type=int, default=0, help="first frame of each clip (default 0)")
    p.add_argument("--size", default=None, metavar="WxH", help="resize the clips (bicubic), e.g. 1280x768 as the "
                                                                 "paper")
    p.add_argument("--device", default="auto", help="torch device (default auto: cuda when present, else cpu)")
    _add_model_options(p)
    p.add_argument("--seed", type=_seed, default=0, help="seed of the noise and the sampler (default 0)")
    p.add_argument("--protocol", choices=["lvtino", "published"], default="lvtino",
                   help="how the measurements are made (see degrade --protocol; default lvtino)")

    p = sub.add_parser("download", parents=[_common()],
                       help="fetch the networks' weights into the Hugging Face cache (needs network)",
                       description="Fetch every file that --prior lvtino needs into the Hugging Face cache, "
                                   "printing each model's licence (the CausVid and DMD2 weights are "
                                   "non-commercial). Restoring never downloads.")
    p.add_argument("--models", metavar="FILE", default=None,
                   help="a models YAML file (default: the packaged configs/models.yaml)")
    p.add_argument("--only", choices=["video", "image"], default=None, help="fetch one model only")

    p = sub.add_parser("evaluate", parents=[_common()],
                       help="fidelity and temporal metrics of a restored video, and an HTML report",
                       description="PSNR and SSIM (RGB in [0, 1] and the Y channel), LPIPS (VGG) when its weights "
                                   "are on this machine, warping error, flicker and tOF (optical flow of the "
                                   "reference, occlusions masked), per frame and over the clip.")
    p.add_argument("restored", help="restored video or folder of frames")
    p.add_argument("--reference", required=True, help="the clean video")
    p.add_argument("--degraded", default=None, help="the measurement, shown (upsampled) in the report")
    p.add_argument("--guide", default=None, metavar="VIDEO",
                   help="the guide of a `restore --guide` run (another tool's restoration): scored beside the "
                        "restoration, a row of its own in the report")
    p.add_argument("--json", metavar="FILE", help="write the per-frame and clip values here")
    p.add_argument("--report", metavar="DIR", help="write an HTML report (index.html and its images) into DIR")
    p.add_argument("--stats", metavar="FILE.json", help="the restoration's --stats JSON, for the report's run facts")
    p.add_argument("--resize", action="store_true",
                   help="compare a restoration of another size at the reference's size (bicubic), and only the "
                        "frames both have, instead of refusing")
    p.add_argument("--reference-start", default=None, metavar="FRAME|TIME",
                   help="the reference frame (or seconds, or time) the restored video starts at: a restored range "
                        "(restore --start) is scored against those frames; needed when the reference is longer "
                        "than the restored video (0 when both start together)")
    _add_overwrite_options(p)
    _add_input_options(p)

    p = sub.add_parser("demo", parents=[_common()], help="degrade and restore a clip end to end, offline, on the CPU",
                       description="Make a procedural clip (or take --input), degrade it with a problem, restore "
                                   "it with the TV prior, and write reference, degraded, naive and restored videos "
                                   "with a JSON of PSNR/SSIM.")
    p.add_argument("--input", default=None, help="your own clip instead of the procedural one")
    p.add_argument("-o", "--output", default="lvtino-demo", help="output folder (default ./lvtino-demo)")
    p.add_argument("--problem", default="A", metavar="NAME", help="degradation preset (default A)")
    p.add_argument("--frames", type=int, default=25, help="frames of the clip (default 25)")
    p.add_argument("--start", type=int, default=0, help="first frame of --input to use (default 0)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the scene and the noise (default 0)")
    _add_input_options(p)
    return parser


def _print_fit(fit: dict) -> None:
    """One line on how the result explains its input (re-degraded, against a player's picture), one warning when
    even the player's picture does not fit: the operator is then likely not how the video was made."""
    rms, noise = fit.get("rms_grey") or {}, fit.get("compression")
    if "restored" not in rms:
        return
    line = f"fit to the input, re-degraded: {rms['restored']:.2f} grey levels RMS"
    others = [f"the guide: {rms['guide']:.2f}"] if "guide" in rms else []
    others += [f"a player's upscale: {rms['naive']:.2f}"] if "naive" in rms else []
    if others:
        line += f" ({'; '.join(others)})"
    if noise:
        line += f"; its compression noise: ~{noise['noise_grey']:.1f} (mean QP {noise['mean_qp']:.0f})"
    if fit.get("unmeasured_frames"):
        line += (f"; {fit['unmeasured_frames']} of the {fit['frames']} frames are in no input frame (dropped): "
                 "the input cannot check them")
    print(line)
    if fit.get("suspect_guide"):
        print(f"warning: the guide fits the input far worse than a player's upscale of it ({rms['guide']:.2f} against "
              f"{rms['naive']:.2f} grey levels): is it a restoration of this file, with its frames at the output's "
              "(the same first frame and rate)?", file=sys.stderr)
    if fit.get("suspect_operator"):
        print("warning: even a player's upscale fits the input poorly through this operator: was the video made "
              "another way? (try another --resampler, or --scale instead of a paper's problem)", file=sys.stderr)


def _run(args: argparse.Namespace) -> int | None:
    if args.command == "degrade":
        from lvtino.pipeline.degrade import DegradeRequest, degrade
        r = degrade(DegradeRequest(args.input, args.output, problem=args.problem, config=args.config,
                                   overrides=tuple(args.overrides or ()), words=_words(args), noise_std=args.noise_std,
                                   seed=args.seed, fps=args.input_fps, no_audio=args.no_audio, overwrite=args.overwrite,
                                   accept_truncated=args.accept_truncated, protocol=args.protocol))
        print(f"wrote {r['output']}: {r['frames']} frames of {r['width']}x{r['height']} at {r['fps']} fps "
              f"(problem {r['problem']}, noise std {r['noise_std']}"
              + (f", {r['protocol']} protocol)" if r["protocol"] != "lvtino" else ")"))
    elif args.command == "restore":
        from lvtino.pipeline.request import Request
        from lvtino.pipeline.restore import restore
        r = restore(Request(args.input, args.output, problem=args.problem, prior=args.prior, config=args.config,
                            overrides=tuple(args.overrides or ()), words=_words(args), start=args.start,
                            end=args.end, frames=args.frames, fps=args.input_fps, window=args.window,
                            overlap=args.overlap, guide=args.guide, upscaler=args.upscaler, seed=args.seed,
                            models=_model_options(args),
                            device=args.device, codec=args.codec, crf=args.crf, preset=args.preset,
                            pix_fmt=args.pix_fmt, no_audio=args.no_audio, stats=args.stats, resume=args.resume,
                            keep_state=args.keep_state, overwrite=args.overwrite,
                            accept_truncated=args.accept_truncated, dry_run=args.dry_run))
        if r is None:  # another process of a multi-process launch: the main process reports
            return
        if r.get("dry_run"):
            print(f"plan: {r['frames']} frames of {r['width']}x{r['height']} at {r['fps']} fps into {r['output']} "
                  f"(problem {r['problem']}, prior {r['prior']}, device {r['device']}): {r['windows']} window(s) of "
                  f"{r['window_frames']} frames; nothing written")
            plan = r["memory_plan"]
            if plan and "lines" in plan:
                print(f"memory per window on the device (--offload {plan['offload']}):")
                print("\n".join(plan["lines"]))
            elif plan:
                print(plan["note"])
            if r.get("weights_missing"):  # the plan stands; the run would stop at once
                print(f"lvtino: error: {r['weights_missing']}", file=sys.stderr)
                return EXIT_USER_ERROR
            return
        print(f"wrote {r['output']}: {r['frames']} frames of {r['width']}x{r['height']} at {r['fps']} fps "
              f"(problem {r['problem']}, prior {r['prior']}, NFE {r['nfe']['total']}, {r['seconds']:.1f} s)")
        _print_fit(r["fit"])
        if "models_note" in r:
            print(f"note: {r['models_note']}")
    elif args.command == "batch":
        from pathlib import Path

        from lvtino.pipeline.batch import read_manifest, run_batch
        if args.config is not None:
            raise UserError("--config: not available for batch; name a problem per item or with --problem")
        items = read_manifest(args.manifest, args.output, args.suffix)
        source = Path(args.manifest)
        summary = args.summary or (Path(args.output) / "lvtino-batch-summary.csv" if source.is_dir()
                                   else source.with_name(source.stem + "-summary.csv"))
        rows = run_batch(items, problem=args.problem, prior=args.prior, overrides=args.overrides,
                         device=args.device, summary=summary, overwrite=args.overwrite, resume=args.resume,
                         manifest=source, models=_model_options(args),
                         seed=args.seed, window=args.window, overlap=args.overlap, codec=args.codec, crf=args.crf,
                         preset=args.preset, pix_fmt=args.pix_fmt, no_audio=args.no_audio, words=_words(args),
                         accept_truncated=args.accept_truncated, upscaler=args.upscaler)
        failed = [r for r in rows if r["status"] == "failed"]
        if failed:
            print(f"lvtino: error: {len(failed)} of {len(rows)} batch item(s) failed (first: {failed[0]['item']}: "
                  f"{failed[0]['message']}); every item's outcome is in {summary}", file=sys.stderr)
            return 1
    elif args.command == "benchmark":
        from lvtino.config import load_problem
        from lvtino.report.benchmark import run_benchmark
        for name in args.problems:
            load_problem(name)  # an unknown problem stops here, before any work
        size = _size(args.size) if args.size else None
        rows, tables = run_benchmark(args.clips, args.problems, args.priors, args.output, frames=args.frames,
                                     size=size, start=args.start, device=args.device, seed=args.seed,
                                     models=_model_options(args), protocol=args.protocol)
        print(open(tables["md"]).read().split("\n\nThe paper")[0])
        print(f"tables: {tables['csv']}, {tables['md']}, {tables['html']}")
    elif args.command == "download":
        from lvtino.models.spec import load_models_spec
        from lvtino.models.weights import download
        download(load_models_spec(args.models), [args.only] if args.only else ["video", "image"])
    elif args.command == "evaluate":
        from pathlib import Path

        from lvtino.files import write_json
        from lvtino.metrics.evaluate import evaluate
        from lvtino.pipeline.outputs import Output, check_outputs
        check_outputs([*([Output("--json", Path(args.json))] if args.json else []),
                       *([Output("--report", Path(args.report), "folder")] if args.report else [])],
                      [("the restored video", args.restored), ("--reference", args.reference),
                       ("--degraded", args.degraded), ("--stats", args.stats), ("--guide", args.guide)],
                      args.overwrite)
        if args.degraded is not None:
            if not args.report:
                raise UserError(f"--degraded {args.degraded}: the measurement is shown in the report; give "
                                "--report FOLDER too")
            from lvtino.video.reader import probe
            probe(args.degraded, args.input_fps, accept_truncated=args.accept_truncated)  # before the metrics
        run_stats = _read_stats(args.stats)
        r = evaluate(args.restored, args.reference, fps=args.input_fps, resize=args.resize,
                     reference_start=args.reference_start,
                     accept_truncated=args.accept_truncated)
        if args.guide:
            r["guide"] = evaluate(args.guide, args.reference, fps=args.input_fps, resize=args.resize,
                                  reference_start=args.reference_start,
                                  accept_truncated=args.accept_truncated, temporal=False)
        if args.json:
            write_json(args.json, r)
        lpips = f"{r['lpips']:.4f}" if r["lpips"] is not None else "not computed"
        print(f"PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.4f}  (Y: {r['psnr_y']:.2f} dB, {r['ssim_y']:.4f})  "
              f"over {r['frames']} frames (PSNR of the whole clip {r['psnr_global']:.2f} dB)")
        if args.guide:
            g = r["guide"]
            print(f"the guide: PSNR {g['psnr']:.2f} dB  SSIM {g['ssim']:.4f}  (Y: {g['psnr_y']:.2f} dB, "
                  f"{g['ssim_y']:.4f}); restoring it gained {r['psnr'] - g['psnr']:+.2f} dB")
        if r["warping_error"] is not None:
            print(f"LPIPS {lpips}  warping error {r['warping_error']:.5f}  flicker {r['flicker']:.5f}  "
                  f"tOF {r['tof']:.3f} px")
        if args.report:
            from lvtino.report.html import write_report
            page = write_report(args.report, r, degraded=args.degraded, stats=run_stats)
            print(f"report: {page}")
    elif args.command == "demo":
        from lvtino.demo import run_demo
        run_demo(args.output, problem=args.problem, input=args.input, frames=args.frames, start=args.start,
                 seed=args.seed, fps=args.input_fps, accept_truncated=args.accept_truncated)


def _size(text: str) -> tuple[int, int]:
    from lvtino.video.reader import MAX_SIDE

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {text}: expected WIDTHxHEIGHT, e.g. 1280x768") from None
    if h < 8 or w < 8:
        raise UserError(f"--size {text}: too small")
    if max(h, w) > MAX_SIDE:
        raise UserError(f"--size {text}: larger than the {MAX_SIDE}x{MAX_SIDE} lvtino reads and writes")
    return h, w


def _read_stats(path) -> dict | None:
    """A --stats JSON written by restore, for a report; one line if it is not one."""
    if path is None:
        return None
    from lvtino.validation import parse_json, read_text_file
    data = parse_json(read_text_file(path, "--stats"), f"--stats {path}")
    if not isinstance(data, dict):
        raise UserError(f"--stats {path}: not the JSON that restore --stats writes")
    return data


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"lvtino: notice: {record.getMessage()}"


def main(argv: list[str] | None = None) -> int:
    tune_cpu_allocator()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage mistake already reported in one line
        log.removeHandler(handler)
        return done.code if isinstance(done.code, int) else EXIT_USER_ERROR
    if getattr(args, "quiet", False):
        log.setLevel(logging.WARNING)
    elif getattr(args, "verbose", False):
        log.setLevel(logging.DEBUG)
    with starting():  # torch loads here, where Ctrl-C is one line at once (see runtime.starting)
        import torch  # noqa: F401
    try:
        with stop_on_signals(), _results_shown(not getattr(args, "quiet", False)), naming(flag), output_claims():
            code = _run(args)
    except UserError as err:
        print(f"lvtino: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (DiskFull, NotWritten, NotPlaced, NetworkError) as err:
        print(f"lvtino: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the system refused a read or write: permissions, a full disk
        if is_disk_full(err):
            print(f"lvtino: error: {DiskFull(err.filename)}", file=sys.stderr)
        elif err.filename is None and getattr(args, "output", None):
            print(f"lvtino: error: {err.strerror or err} (writing {args.output}; was a folder on its way moved or "
                  "removed during the run?)", file=sys.stderr)
        else:
            print(f"lvtino: error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        how = stop.name if isinstance(stop, Interrupted) else "SIGINT"
        print(f"lvtino: interrupted ({how}); {_after_interruption(args)}", file=sys.stderr)
        raise  # to the caller: the process's entry point (``run``) exits with 128 + the signal; a program that
        # called main() in-process (a test runner) stops as it would without lvtino
    finally:
        log.removeHandler(handler)
    return code or 0


FLAGS = {"output": "-o", "overrides": "--set"}  # the library's parameters whose flag is not --their-name


def flag(name: str) -> str:
    """The command line's flag for the library's parameter ``name``: the one place where a Python keyword becomes
    what the user typed (``fps_factor`` -> ``--fps-factor``), for every error and notice below the command line."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


@contextlib.contextmanager
def _results_shown(shown: bool):
    """With -q nothing is printed on success (results go to --stats, --json, the summary): the standard output is
    dropped; errors, warnings and notices go to the standard error as ever (warnings even with -q)."""
    if shown:
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def run(argv: list[str] | None = None) -> int:
    """The ``lvtino`` program: ``main``, with an interruption ending the process as 128 + the signal's number
    (130 for Ctrl-C, 143 for SIGTERM) after its one line."""
    try:
        return main(argv)
    except KeyboardInterrupt as stop:
        return 128 + (stop.signum if isinstance(stop, Interrupted) else 2)


def _after_interruption(args) -> str:
    command = args.command
    if command == "restore":
        from pathlib import Path

        from lvtino.files import state_folder  # light: torch may be half imported when the signal came

        if getattr(args, "input", None) == "-":
            return "no output was written, and nothing was kept (a piped input cannot be read again): run it again"
        if getattr(args, "output", None) and state_folder(Path(args.output)).is_dir():
            return ("no output was written; the finished windows are kept: run the same command with --resume to "
                    "go on")
        return "no output was written, and no window had finished: run the same command to start again"
    if command == "batch":
        return "finished items are kept: run the same batch with --resume to go on with the interrupted item"
    if command == "benchmark":
        return "finished cells are kept and reused when the benchmark runs again"
    return "no output was written"


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


if __name__ == "__main__":
    sys.exit(run())
