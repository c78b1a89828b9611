"""``lvtino batch``: many restorations in one run, from a manifest or a folder of inputs.

Outputs that already exist are complete (every output is written under a
temporary name and renamed at the end), so they are skipped; a failing item is
reported and the batch goes on. Under ``accelerate launch``/``torchrun`` the
items are shared between the processes, each restoring its items on its own;
the main process writes the summary.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from lvtino.distributed import Processes
from lvtino.errors import UserError
from lvtino.pipeline.common import check_device
from lvtino.pipeline.restore import restore

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm"}
ITEM_KEYS = ("input", "output", "problem", "prior", "start", "end", "set")


@dataclass
class Item:
    input: str
    output: str
    problem: str | None = None
    prior: str | None = None
    start: str | None = None
    end: str | None = None
    overrides: list[str] = field(default_factory=list)


def _item(entry: dict, base: Path, where: str) -> Item:
    unknown = sorted(set(k for k in entry if entry[k] not in (None, "")) - set(ITEM_KEYS))
    if unknown:
        raise UserError(f"{where}: unknown column {unknown[0]!r} (known: {', '.join(ITEM_KEYS)})")
    for key in ("input", "output"):
        if not entry.get(key):
            raise UserError(f"{where}: '{key}' is missing")
    sets = entry.get("set") or []
    if isinstance(sets, str):
        sets = [s.strip() for s in sets.split(";") if s.strip()]
    text = lambda k: None if entry.get(k) in (None, "") else str(entry[k])  # noqa: E731
    return Item(str(base / str(entry["input"])), str(base / str(entry["output"])), text("problem"), text("prior"),
                text("start"), text("end"), list(sets))


def read_manifest(source: str | Path, output_dir: str | Path | None = None, suffix: str = ".mp4") -> list[Item]:
    """Items from a CSV or YAML manifest (paths relative to it), or one per video/frame folder in a folder."""
    source = Path(source)
    if source.is_dir():
        if output_dir is None:
            raise UserError(f"{source} is a folder of inputs: give the output folder with -o")
        inputs = sorted(p for p in source.iterdir()
                        if p.suffix.lower() in VIDEO_SUFFIXES or (p.is_dir() and not p.name.startswith(".")))
        if not inputs:
            raise UserError(f"{source}: no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) or frame folders in it")
        return [Item(str(p), str(Path(output_dir) / (p.stem + suffix))) for p in inputs]
    if not source.is_file():
        raise UserError(f"{source}: no such manifest or folder")
    base = source.parent
    if source.suffix.lower() == ".csv":
        with open(source, newline="") as fh:
            rows = list(csv.DictReader(fh))
        return [_item(row, base, f"{source} row {i + 2}") for i, row in enumerate(rows)]
    if source.suffix.lower() in (".yaml", ".yml"):
        try:
            raw = yaml.safe_load(source.read_text())
        except yaml.YAMLError as err:
            raise UserError(f"{source}: not valid YAML ({str(err).splitlines()[0]})") from None
        defaults = {}
        if isinstance(raw, dict):
            defaults, raw = raw.get("defaults") or {}, raw.get("items")
        if not isinstance(raw, list):
            raise UserError(f"{source}: expected a list of items, or 'defaults' and 'items'")
        return [_item({**defaults, **entry}, base, f"{source} item {i + 1}") for i, entry in enumerate(raw)]
    raise UserError(f"{source}: a manifest is a .csv or .yaml file, or a folder of inputs")


def run_batch(items: list[Item], problem: str | None = None, prior: str = "tv", overrides: list[str] | None = None,
              device: str = "cpu", summary: str | Path | None = None, echo=print, **options) -> list[dict]:
    """Restore every item not already done; return one row per item (on the main process)."""
    procs = Processes(check_device(device))
    rows = []
    with procs.split(list(enumerate(items))) as mine:
        for index, item in mine:
            rows.append(_run_item(index, item, problem, prior, overrides or [], procs.device, options))
    rows = sorted(procs.gather(rows), key=lambda r: r["index"])
    if not procs.is_main:
        return []
    width = max([len("item")] + [len(r["item"]) for r in rows])
    echo(f"{'item':<{width}}  {'status':<7}  {'frames':>6}  {'seconds':>8}  message")
    for r in rows:
        echo(f"{r['item']:<{width}}  {r['status']:<7}  {r['frames'] if r['frames'] is not None else '-':>6}  "
             f"{r['seconds']:>8.1f}  {r['message']}")
    if summary is not None:
        with open(summary, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["item", "output", "status", "frames", "seconds", "message"],
                                    extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return rows


def _run_item(index: int, item: Item, problem, prior, overrides, device: torch.device, options: dict) -> dict:
    row = {"index": index, "item": item.input, "output": item.output, "frames": None, "seconds": 0.0,
           "message": ""}
    if Path(item.output).exists():
        return {**row, "status": "skipped", "message": "output exists"}
    t0 = time.perf_counter()
    try:
        Path(item.output).parent.mkdir(parents=True, exist_ok=True)
        result = restore(item.input, item.output, problem=item.problem or problem, prior=item.prior or prior,
                         overrides=[*overrides, *item.overrides], start=item.start, end=item.end,
                         device=str(device), processes=Processes.alone(device), **options)
    except (UserError, OSError) as err:
        return {**row, "status": "failed", "seconds": round(time.perf_counter() - t0, 2),
                "message": str(err).splitlines()[0]}
    return {**row, "status": "done", "frames": result["frames"], "seconds": round(time.perf_counter() - t0, 2)}
