"""Reproduce the paper's Adobe240 table (the paper's Table 1, arXiv 2510.01339) on your own copy of the data set.

Needs a GPU and the networks' weights (``lvtino download`` on a connected machine
first). Each clean clip (a video file or a folder of frames) is cut to the
paper's portions at 1280x768: 25 frames for Problems A and B, 81 for C; degraded
as the published code degrades (``--protocol published``: the ground truth and y
in bfloat16, noise 0.001 after A and B and none in C) or as lvtino does
(``--protocol lvtino``: noise 0.001 in float64); restored with LVTINO, its
frame-by-frame ablation (lvtino-image, the closest to VISION-XL that this tool
runs) and the classical TV prior; and evaluated. The table (CSV, Markdown, HTML)
says which protocol made each number and puts the published numbers beside
yours. Finished cells are reused if the script is run again.

The generative priors behave as the published code does (``--sampler-output prior``:
the last video-model estimate, with the published code's clamps on every step);
``--sampler-output data`` gives lvtino's defaults (frames that fit the
measurement, lvtino's clamps), ``both`` runs and tables both.

    python scripts/reproduce_paper.py /data/adobe240/test/*/ -o paper-table --device cuda

``--models tiny --frames-ab 5 --frames-c 9 --size 96x64 --device cpu`` runs every
path on a CPU in a minute with tiny random networks: a check of the code, not of
quality.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lvtino.models.options import ModelOptions
from lvtino.pipeline.catalog import PRIORS
from lvtino.report.benchmark import run_benchmark, write_tables


def _size(text: str) -> tuple[int, int]:
    """'WxH' as (height, width)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 1280x768") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 16x16")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", help="Adobe240 test clips: video files or folders of frames")
    parser.add_argument("-o", "--output", default="paper-table", metavar="DIR",
                        help="the folder of cells and tables (default ./paper-table)")
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--priors", nargs="+", default=["lvtino", "lvtino-image", "tv"], choices=list(PRIORS),
                        help="default: lvtino lvtino-image tv")
    parser.add_argument("--problems", nargs="+", default=["A", "B", "C"], choices=["A", "B", "C"],
                        help="default: A B C")
    parser.add_argument("--models", default=None,
                        help="a models YAML file (default: the packaged one), or tiny (random tiny networks)")
    parser.add_argument("--protocol", default="published", choices=["published", "lvtino", "both"],
                        help="how the measurements are made: published (default: the published code's), lvtino, "
                             "or both")
    parser.add_argument("--sampler-output", default="prior", choices=["prior", "data", "both"],
                        help="the generative priors' output and clamps: prior (the published code's, default), "
                             "data (lvtino's), or both")
    parser.add_argument("--start", type=int, default=0, help="first frame of each clip (default 0)")
    parser.add_argument("--frames-ab", type=int, default=25, help="frames for Problems A and B (default 25)")
    parser.add_argument("--frames-c", type=int, default=81, help="frames for Problem C (default 81)")
    parser.add_argument("--size", type=_size, default=(768, 1280), metavar="WxH", help="default 1280x768")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and the sampler (default 0)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    out = Path(args.output)
    rows = []
    modes = ["prior", "data"] if args.sampler_output == "both" else [args.sampler_output]
    protocols = ["published", "lvtino"] if args.protocol == "both" else [args.protocol]
    groups = [(asked, frames) for names, frames in ((["A", "B"], args.frames_ab), (["C"], args.frames_c))
              if (asked := [n for n in names if n in args.problems])]
    for protocol in protocols:
        for mode in modes:
            models = ModelOptions(args.models, "auto", "none", "off", output=mode,
                                  clamp="published" if mode == "prior" else "lvtino")
            first = mode == modes[0]  # the classical prior has no output mode: run it once per protocol
            priors = [p for p in args.priors if first or PRIORS[p].generative]
            for problems, frames in groups:
                part, _ = run_benchmark(args.clips, problems, priors, out / f"{frames}-frames-{mode}-{protocol}",
                                        frames=frames, size=args.size, start=args.start, models=models,
                                        device=args.device, seed=args.seed, protocol=protocol)
                rows += part
    tables = write_tables(out, rows, args.problems, [Path(c) for c in args.clips])
    print(tables["md"].read_text())


if __name__ == "__main__":
    from lvtino.errors import UserError

    try:
        main()
    except UserError as err:
        raise SystemExit(f"reproduce_paper: error: {err}") from None
