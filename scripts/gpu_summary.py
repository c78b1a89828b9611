"""The GPU session's bookkeeping: each step's exit and figures into one summary.json, and the closing table.

    python scripts/gpu_summary.py record PARTS KEY NAME EXIT SECONDS   # a step ended (EXIT: a code or skipped)
    python scripts/gpu_summary.py merge PARTS SUMMARY [--info K=V ...]  # every step so far into SUMMARY
    python scripts/gpu_summary.py table SUMMARY                         # the figures that matter, a few lines

A step's figures are the JSON file ``PARTS/KEY.json`` its command wrote, if any.
The summary is rewritten whole after every step (a temporary file renamed into
place), so a session stopped at any point leaves every figure it had. Standard
library only: it runs where the install failed too.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

PAPER = (132.0, 35.2)  # LVTINO, 25 frames of 1280x768 on the paper's GPU: seconds, peak GB (arXiv 2510.01339)
TIMINGS = (("B", "Problem B"), ("A", "Problem A"), ("B-offload", "B, --offload model"), ("C", "Problem C"))


def record(parts: Path, key: str, name: str, code: str, seconds: str) -> None:
    steps = parts / "steps.jsonl"
    with steps.open("a") as f:
        f.write(json.dumps({"key": key, "name": name, "exit": int(code) if code.lstrip("-").isdigit() else code,
                            "seconds": int(seconds)}) + "\n")


def merge(parts: Path, summary: Path, info: list[str]) -> dict:
    facts = {"session": dict(item.split("=", 1) for item in info), "steps": []}
    steps = parts / "steps.jsonl"
    for line in steps.read_text().splitlines() if steps.exists() else []:
        step = json.loads(line)
        figures = parts / f"{step['key']}.json"
        if figures.exists():
            try:
                step["figures"] = json.loads(figures.read_text())
            except ValueError:
                step["figures"] = {"unreadable": figures.read_text()[-500:]}
        facts["steps"].append(step)
    for extra in ("device",):
        path = parts / f"{extra}.json"
        if path.exists():
            facts["session"][extra] = json.loads(path.read_text())
    tmp = summary.with_name(summary.name + ".part")
    tmp.write_text(json.dumps(facts, indent=1) + "\n")
    os.replace(tmp, summary)
    return facts


def _timing_row(label: str, step: dict) -> str:
    figures = step.get("figures") or {}
    runs = figures.get("runs") or []
    if not runs:
        return f"{label:20} exit {step['exit']} after {step['seconds']} s, no timed run"
    run = runs[-1]
    peak, plan = run.get("peak_gb"), (figures.get("plan") or {}).get("expected_peak_gb")
    error = f"{100 * (plan - peak) / peak:+.0f}%" if peak and plan else "-"
    stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(run["stages"].items(), key=lambda kv: -kv[1]))
    return (f"{label:20} {run['total_seconds']:8.1f} {run['nfe']:4d} {peak if peak else '-':>8} "
            f"{plan if plan else '-':>8} {error:>9}  {stages}")


def table(summary: Path) -> list[str]:
    facts = json.loads(summary.read_text())
    steps = {s["key"]: s for s in facts["steps"] if s["exit"] != "not selected"}  # GPU_SESSION_STEPS left it out
    device = facts["session"].get("device", {})
    lines = [f"device: {device.get('name', 'unknown')}, torch {device.get('torch', '?')}; "
             f"session {facts['session'].get('seconds', '?')} s; paper: {PAPER[0]:.0f} s, {PAPER[1]} GB "
             "(25 frames of 1280x768, its GPU)",
             f"{'job':20} {'total s':>8} {'NFE':>4} {'peak GB':>8} {'plan GB':>8} {'plan err':>9}  seconds per stage"]
    for key, label in TIMINGS:
        if key in steps:
            figures = steps[key].get("figures") or {}
            shape = f" {figures['frames']}x{figures['size']}" if "frames" in figures else ""
            lines.append(_timing_row(label + shape, steps[key]))
    for key, step in steps.items():
        if key in dict(TIMINGS):
            continue
        figures = step.get("figures") or {}
        said = {"cuda-vs-cpu": lambda f: f"max |diff| {f['max_diff']:.3g}, mean {f['mean_diff']:.3g} "
                                         f"(tolerance {f['tolerance']:g})",
                "torchrun": lambda f: f"{f['processes']} processes, {f['windows']} windows, {f['frames']} frames in "
                                      f"{f['seconds']} s",
                "tv": lambda f: f"device {f['cuda_seconds']} s, cpu {f['cpu_seconds']} s, max |diff| "
                                f"{f['max_diff']} levels"}.get(key)
        try:
            detail = said(figures) if said and figures else ""
        except (KeyError, TypeError, ValueError):
            detail = "figures incomplete"
        lines.append(f"{step['name'][:40]:40} exit {step['exit']}, {step['seconds']} s" + (f": {detail}" if detail
                                                                                           else ""))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("record", help="a step ended")
    for name in ("parts", "key", "name", "exit", "seconds"):
        p.add_argument(name)
    p = sub.add_parser("merge", help="every step so far into the summary")
    p.add_argument("parts", type=Path)
    p.add_argument("summary", type=Path)
    p.add_argument("--info", nargs="*", default=[], metavar="KEY=VALUE")
    p = sub.add_parser("table", help="the closing table")
    p.add_argument("summary", type=Path)
    args = parser.parse_args()
    if args.verb == "record":
        record(Path(args.parts), args.key, args.name, args.exit, args.seconds)
    elif args.verb == "merge":
        merge(args.parts, args.summary, args.info)
    else:
        print("\n".join(table(args.summary)))


if __name__ == "__main__":
    main()
