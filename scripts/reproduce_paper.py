"""Reproduce the paper's Adobe240 table (the paper's Table 1, arXiv 2510.01339) on your own copy of the data set.

Needs a GPU and the networks' weights (``lvtino download`` on a connected machine
first). Each clean clip (a video file or a folder of frames) is cut to the
paper's portions at 1280x768: 25 frames for Problems A and B, 81 for C; degraded
with noise 0.001; restored with LVTINO, its frame-by-frame ablation
(lvtino-image, the closest to VISION-XL that this tool runs) and the classical
TV prior; and evaluated. The table (CSV, Markdown, HTML) puts the published
numbers beside yours. Finished cells are reused if the script is run again.
The generative priors behave as the published code does (``sampler.output prior``:
the last video-model estimate; ``sampler.clamp published``: its clamps, the start
and the SDXL decodes left as they come, the Adam-TV3 and JPEG iterates projected
onto [-1, 1]); ``--output data`` gives lvtino's defaults (frames that fit the
measurement, lvtino's clamps), ``--output both`` runs and tables both.

    python scripts/reproduce_paper.py /data/adobe240/test/*/ -o paper-table --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lvtino.pipeline.priors import ModelOptions
from lvtino.report.benchmark import run_benchmark, write_tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", help="Adobe240 test clips: video files or folders of frames")
    parser.add_argument("-o", "--output", default="paper-table")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--priors", nargs="+", default=["lvtino", "lvtino-image", "tv"])
    parser.add_argument("--models", default=None, help="a models YAML file (default: the packaged one)")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--output", dest="sampler_output", default="prior", choices=["prior", "data", "both"],
                        help="the generative priors' output: prior (the published code's, default), data, or both")
    args = parser.parse_args()
    out = Path(args.output)
    rows = []
    modes = ["prior", "data"] if args.sampler_output == "both" else [args.sampler_output]
    for mode in modes:
        models = ModelOptions(args.models, "auto", "none", "off", output=mode,
                              clamp="published" if mode == "prior" else "lvtino")
        priors = args.priors if mode == modes[0] else [p for p in args.priors if p.startswith("lvtino")]
        for problems, frames in ((["A", "B"], 25), (["C"], 81)):
            part, _ = run_benchmark(args.clips, problems, priors, out / f"{frames}-frames-{mode}", frames=frames,
                                    size=(768, 1280), start=args.start, models=models, device=args.device)
            rows += part
    tables = write_tables(out, rows, ["A", "B", "C"], [Path(c) for c in args.clips])
    print(tables["md"].read_text())


if __name__ == "__main__":
    main()
