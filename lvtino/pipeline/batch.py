"""``lvtino batch``: many restorations in one run, from a manifest or a folder of inputs.

Every output is written under a temporary name and renamed when complete, and
records a digest of the settings that made it. An existing output made by the
same settings is skipped as done; one made otherwise is refused unless ``-y``
(``-n`` keeps every existing output). A failing item is reported and the batch
goes on; ``--resume`` goes on with items an interrupted batch left half done.
Items whose output is their input, or that share an output, are refused before
anything runs, and one batch at a time writes a summary (a lock beside it).
Under ``accelerate launch``/``torchrun`` the items are shared between the
processes, each restoring its items on its own; the main process writes the
summary.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from lvtino.distributed import Processes
from lvtino.errors import UserError, arg
from lvtino.files import NotPlaced, claiming, write_text_atomic
from lvtino.pipeline.common import check_device
from lvtino.pipeline.outputs import Output, check_outputs, claim_outputs, resolved
from lvtino.pipeline.priors import Networks
from lvtino.pipeline.request import Request
from lvtino.pipeline.restore import restore
from lvtino.validation import parse_yaml, read_text_file
from lvtino.video.reader import probe

log = logging.getLogger("lvtino")

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm"}
ITEM_KEYS = ("input", "output", "problem", "prior", "start", "end", "set")
SUMMARY_FIELDS = ("item", "output", "status", "frames", "seconds", "message")
SUMMARY_HEADER = ",".join(SUMMARY_FIELDS)


@dataclass
class Item:
    input: str
    output: str
    problem: str | None = None
    prior: str | None = None
    start: str | None = None
    end: str | None = None
    overrides: list[str] = field(default_factory=list)


def _item(entry, base: Path, where: str) -> Item:
    if not isinstance(entry, dict):
        kind = type(entry).__name__ if isinstance(entry, (list, dict)) else repr(str(entry)[:60])
        raise UserError(f"{where}: expected a mapping with 'input' and 'output', got {kind}")
    unknown = sorted(str(k)[:40] for k in entry if entry[k] is not None and entry[k] != "" and k not in ITEM_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown column {unknown[0]!r} (known: {', '.join(ITEM_KEYS)})")
    for key in ("input", "output"):
        if not entry.get(key):
            raise UserError(f"{where}: '{key}' is missing")
    sets = entry.get("set") or []
    if isinstance(sets, str):
        sets = [s.strip() for s in sets.split(";") if s.strip()]
    if not isinstance(sets, list) or not all(isinstance(v, str) for v in sets):
        raise UserError(f"{where}: 'set' is KEY=VALUE;KEY=VALUE text, or a list of KEY=VALUE texts")

    def text(key: str) -> str | None:
        value = entry.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise UserError(f"{where}: '{key}' is {type(value).__name__}; expected text or a number")
        return str(value)
    return Item(str(base / text("input")), str(base / text("output")), text("problem"), text("prior"),
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
    if not source.exists():
        raise UserError(f"{source}: no such manifest or folder")
    if not source.is_file():
        raise UserError(f"{source}: not a regular file (a pipe, socket or device); give a manifest file")
    base = source.parent
    if source.suffix.lower() == ".csv":
        text = read_text_file(source, "manifest")
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as err:
            raise UserError(f"{source}: not a valid CSV file ({err})") from None
        if not rows:
            raise UserError(f"{source}: holds no items (a header line input,output then one line per item)")
        items = [_item(row, base, f"{source} row {i + 2}") for i, row in enumerate(rows)]
    elif source.suffix.lower() in (".yaml", ".yml"):
        raw = parse_yaml(read_text_file(source, "manifest"), str(source))
        defaults = {}
        if isinstance(raw, dict):
            defaults, raw = raw.get("defaults") or {}, raw.get("items")
        if not isinstance(raw, list) or not isinstance(defaults, dict):
            raise UserError(f"{source}: expected a list of items, or 'defaults' and 'items'")
        if not raw:
            raise UserError(f"{source}: holds no items")
        items = [_item({**defaults, **entry} if isinstance(entry, dict) else entry, base, f"{source} item {i + 1}")
                 for i, entry in enumerate(raw)]
    else:
        raise UserError(f"{source}: a manifest is a .csv or .yaml file, or a folder of inputs")
    check_items(items)
    return items


def check_items(items: list[Item], summary: Path | None = None, overwrite: str = "ask",
                manifest: Path | None = None, claim: bool = True) -> None:
    """Refuse, before anything runs, an item whose output is its input or another item's input or output, and a
    summary path that would replace an input, the manifest, an item's output or a file lvtino did not write
    there (a summary an earlier batch wrote is replaced; anything else needs -y, and -n never replaces)."""
    outputs: dict[Path, Item] = {}
    inputs = {resolved(i.input): i for i in items}
    for item in items:
        out = resolved(item.output)
        if out == resolved(item.input):
            raise UserError(f"batch item {item.input}: its output is its input; give another output path")
        if out in outputs:
            raise UserError(f"batch items {outputs[out].input} and {item.input} share the output {item.output}; "
                            "give each its own")
        if out in inputs:
            raise UserError(f"batch item {item.input}: its output {item.output} is the input of item "
                            f"{inputs[out].input}")
        for folder, owner in inputs.items():  # a frame folder given as an input would gain a file
            if folder in out.parents and folder.is_dir():
                whose = "its own input" if owner is item else f"the input of item {owner.input}"
                raise UserError(f"batch item {item.input}: its output {item.output} lies inside {whose}, the "
                                f"folder {owner.input}; give an output outside it")
        outputs[out] = item
    if summary is not None:
        summary = Path(summary)
        files = [("the manifest", manifest if manifest is not None and not Path(manifest).is_dir() else None),
                 *(("a batch item's input", i.input) for i in items),
                 *(("a batch item's output", i.output) for i in items)]
        check_outputs([Output(arg("summary"), summary, create_parent=True)], files,
                      "yes" if is_summary(summary) else overwrite, claim)


def is_summary(path: Path) -> bool:
    """``path`` is a summary lvtino wrote: a regular file whose first line is the summary's header."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        with open(path, encoding="utf-8") as fh:
            return fh.readline(len(SUMMARY_HEADER) + 2).rstrip("\r\n") == SUMMARY_HEADER
    except (OSError, UnicodeDecodeError):
        return False


@claiming
def run_batch(items: list[Item], problem: str | None = None, prior: str | None = None,
              overrides: list[str] | None = None,
              device: str = "cpu", summary: str | Path | None = None, echo=print, overwrite: str = "ask",
              resume: bool = False, manifest: str | Path | None = None, networks: Networks | None = None,
              **options) -> list[dict]:
    """Restore every item not already done; return one row per item (on the main process). ``options``: the
    settings of ``pipeline.request.Request`` every item shares (crf, seed, models, window, words, ...)."""
    procs = Processes(check_device(device))
    check_items(items, Path(summary) if summary is not None else None, overwrite,
                Path(manifest) if manifest is not None else None, claim=False)
    if summary is not None and procs.is_main:  # locked for the whole batch, in the folder made for it
        summary = Path(summary)
        summary.parent.mkdir(parents=True, exist_ok=True)
        claim_outputs([Output(arg("summary"), summary)], "yes" if is_summary(summary) else overwrite)
    rows = []
    networks = networks or Networks()  # the networks load once per batch
    try:
        with procs.split(list(enumerate(items))) as mine:
            for index, item in mine:
                if procs.is_main:
                    echo(f"item {index + 1}/{len(items)}: {item.input} -> {item.output}")
                request = Request(item.input, item.output, problem=item.problem or problem,
                                  prior=item.prior or prior, overrides=(*(overrides or ()), *item.overrides),
                                  start=item.start, end=item.end, device=str(procs.device), overwrite="yes",
                                  resume=resume, **options)
                rows.append(_run_item(index, item, request, procs, overwrite, networks))
    except KeyboardInterrupt:
        if procs.is_main and summary is not None:
            done = {r["index"] for r in rows}
            rows += [{"index": i, "item": it.input, "output": it.output, "status": "not run", "frames": None,
                      "seconds": 0.0, "message": "the batch was interrupted"}
                     for i, it in enumerate(items) if i not in done]
            _write_summary(summary, sorted(rows, key=lambda r: r["index"]))
        raise
    rows = sorted(procs.gather(rows), key=lambda r: r["index"])
    if not procs.is_main:
        return []
    width = max([len("item")] + [len(r["item"]) for r in rows])
    echo(f"{'item':<{width}}  {'status':<7}  {'frames':>6}  {'seconds':>8}  message")
    for r in rows:
        echo(f"{r['item']:<{width}}  {r['status']:<7}  {r['frames'] if r['frames'] is not None else '-':>6}  "
             f"{r['seconds']:>8.1f}  {r['message']}")
    if summary is not None:
        _write_summary(summary, rows)
    return rows


def _write_summary(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def _already_done(item: Item, request: Request) -> bool | None:
    """True: the output was made by these very settings; False: made otherwise (or not by lvtino); None: no
    output."""
    out = Path(item.output)
    if not out.exists():
        return None
    try:
        recorded = probe(out).metadata.get("restored_by", {}).get("settings")
    except UserError:
        return False  # an empty or unreadable file: not a finished output
    if recorded is None:
        return False
    try:
        wanted = request.check_inputs().digest()  # what restore would record: the one digest
    except UserError:
        return False
    return recorded == wanted


def _run_item(index: int, item: Item, request: Request, procs: Processes, overwrite: str,
              networks: Networks) -> dict:
    row = {"index": index, "item": item.input, "output": item.output, "frames": None, "seconds": 0.0,
           "message": ""}
    done = _already_done(item, request)
    if done:
        return {**row, "status": "skipped", "message": "done: made by the same settings"}
    if done is False and overwrite == "no":
        return {**row, "status": "skipped", "message": "output exists (-n keeps it)"}
    if done is False and overwrite == "ask":
        return {**row, "status": "failed", "message": "output exists, made by other settings or not by lvtino: "
                                                     "-y replaces it, -n keeps it"}
    t0 = time.perf_counter()
    try:
        Path(item.output).parent.mkdir(parents=True, exist_ok=True)
        result = restore(request, processes=Processes.alone(procs.device), networks=networks)
    except (UserError, OSError, NotPlaced) as err:
        return {**row, "status": "failed", "seconds": round(time.perf_counter() - t0, 2),
                "message": " ".join(str(err).split())}
    return {**row, "status": "done", "frames": result["frames"], "seconds": round(time.perf_counter() - t0, 2)}
