"""Bad and unusual input, one row per case, for every subcommand.

Each row runs the command line on a shared workspace and asserts the exit code,
exactly one line on stderr that starts with ``lvtino: error:`` and holds the
expected fragment (never a traceback), and that afterwards no file was added,
removed or changed anywhere in the workspace. A new option adds its rows here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from conftest import smooth_frames, write_video
from lvtino.cli import main
from lvtino.video.reader import probe, read_frames
from lvtino.video.writer import VideoWriter


@dataclass(frozen=True)
class Case:
    args: str          # the command line, with {name} for the workspace's files
    code: int          # the exit code
    fragment: str      # a piece of the one error line

    def argv(self, ws: dict[str, Path]) -> list[str]:
        return [part.format(**{k: str(v) for k, v in ws.items()}) for part in self.args.split()]


def _measurement_with(path: Path, source: Path, **changes) -> Path:
    info = probe(source)
    with VideoWriter(path, info.fps, metadata={**info.metadata, **changes}) as w:
        for frame in read_frames(info):
            w.write(frame)
    return path


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    """The workspace: clean clips, measurements (honest and tampered), and files of the wrong kind."""
    d = tmp_path_factory.mktemp("bad")
    clean = write_video(d / "clean.mp4", smooth_frames(24, 32, 48), fps=Fraction(24), audio_seconds=1.0)
    short = write_video(d / "short.mp4", smooth_frames(12, 32, 48), fps=Fraction(24))
    tiny = write_video(d / "tiny.mkv", smooth_frames(4, 12, 12), codec="ffv1")
    y = d / "y.mkv"
    assert main(["degrade", str(clean), "-o", str(y), "--problem", "A"]) == 0
    yb = d / "yb.mkv"
    assert main(["degrade", str(clean), "-o", str(yb), "--problem", "B"]) == 0
    yt = d / "yt.mkv"
    assert main(["degrade", str(clean), "-o", str(yt), "--problem", "deblur-t7"]) == 0
    lowres = write_video(d / "low.mkv", smooth_frames(6, 16, 20), codec="ffv1")  # no lvtino metadata
    full = d / "full.mkv"
    with VideoWriter(full, Fraction(24)) as w:
        for f in smooth_frames(12, 32, 48):
            w.write(f)
    cut = d / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    full.unlink()
    notes = d / "notes.mp4"
    notes.write_text("not a video")
    evil = d / "evil.pt"
    evil.write_bytes(bytes(range(256)) * 4)
    broken = d / "broken.yaml"
    broken.write_text("operator: [\n")
    following = d / "following.yaml"
    following.write_text("operator:\n  - jpeg: {quality: 10}\n  - downsample: {factor: 2}\n")
    notjson = d / "notjson.json"
    notjson.write_text("{ nope")
    existing = d / "existing.mkv"
    existing.write_bytes(b"an older output")
    mine = d / "myframes"  # a user's own numbered frames: never lvtino's to delete
    mine.mkdir()
    for i in range(5):
        (mine / f"{i}.png").write_bytes(b"mine")
    folder = d / "frames_in"  # a frame folder used as input
    folder.mkdir()
    for i, f in enumerate(smooth_frames(8, 32, 48)):
        import imageio.v3 as iio
        iio.imwrite(folder / f"{i:03d}.png", f)
    userdir = d / "userdir"
    userdir.mkdir()
    (userdir / "index.html").write_text("<p>my page</p>")
    link = d / "link.mp4"
    link.symlink_to(clean)
    busy_state = d / ".busy.mkv.lvtino-state"  # a run in progress (this very process holds the lock)
    busy_state.mkdir()
    (busy_state / "lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                                 "started": "now", "process_start": None}))
    old_state = d / ".old.mkv.lvtino-state"  # an interrupted run
    old_state.mkdir()
    (old_state / "state.json").write_text(json.dumps({"version": 1}))
    (old_state / "window-000000.npy").write_bytes(b"x")
    bad_state = d / ".badstate.mkv.lvtino-state"
    bad_state.mkdir()
    (bad_state / "state.json").write_text("{ broken")
    files = {"clean": clean, "short": short, "tiny": tiny, "y": y, "yb": yb, "yt": yt, "low": lowres, "cut": cut,
             "notes": notes, "evil": evil, "broken": broken, "following": following, "notjson": notjson,
             "existing": existing, "mine": mine, "folder": folder, "userdir": userdir, "link": link, "d": d}
    tampered = {"huge": {"frames": 10**12}, "negative": {"frames": -5}, "text": {"frames": "abc"},
                "mismatch": {"frames": 1000}, "blur": {"operator": [{"temporal_blur": {"size": 10**6}}]},
                "opstring": {"operator": "rm -rf /"}, "tall": {"height": 10**6},
                "noise": {"noise_std": float("nan")}, "unknown": {"problem": "secret"}}
    for name, change in tampered.items():
        files[f"t_{name}"] = _measurement_with(d / f"t_{name}.mkv", y, **change)
    same = d / "same.csv"
    same.write_text(f"input,output\n{y},{y}\n")
    shared = d / "shared.csv"
    shared.write_text(f"input,output\n{y},o1.mkv\n{lowres},o1.mkv\n")
    scalars = d / "scalars.yaml"
    scalars.write_text("- just a string\n- 42\n")
    columns = d / "columns.csv"
    columns.write_text("input,output,colour\na.mkv,b.mkv,red\n")
    empty_csv = d / "empty.csv"
    empty_csv.write_text("input,output\n")
    ok = d / "ok.csv"
    ok.write_text(f"input,output\n{y},out_ok.mkv\n")
    locked = d / ".ok-summary.csv.lvtino-lock"  # a batch writing ok-summary.csv (this process)
    locked.write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "started": "now",
                                  "process_start": None}))
    files.update(same=same, shared=shared, scalars=scalars, columns=columns, empty_csv=empty_csv, ok=ok)
    # side outputs aimed at inputs, a user's files where lvtino keeps its own
    ok_yaml = d / "ok.yaml"
    ok_yaml.write_text(f"- {{input: {y}, output: out_ok2.mkv}}\n")
    mynotes = d / "mynotes.txt"
    mynotes.write_text("my notes\n")
    ok3 = d / "ok3.csv"  # its default summary path holds a user's file
    ok3.write_text(f"input,output\n{y},out_ok3.mkv\n")
    (d / "ok3-summary.csv").write_text("my own table\n")
    user_state = d / ".taken.mkv.lvtino-state"  # a user's folder under the name of lvtino's state folder
    user_state.mkdir()
    (user_state / "notes.txt").write_text("mine\n")
    (d / ".taken2.mkv.lvtino-state").write_text("a file where the state folder goes\n")
    elsewhere = d / "elsewhere"  # a folder of the user's that a state folder's name links to
    (elsewhere / "segments").mkdir(parents=True)
    (elsewhere / "segments" / "precious.txt").write_text("mine\n")
    (d / ".linked.mkv.lvtino-state").symlink_to(elsewhere, target_is_directory=True)
    deep_state = d / ".deepstate.mkv.lvtino-state"  # named like lvtino's, holding a user's file two levels down
    (deep_state / "segments").mkdir(parents=True)
    (deep_state / "segments" / "precious.txt").write_text("mine\n")
    this_process = json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "started": "now",
                               "process_start": None})
    (d / ".deg_busy.mkv.lvtino-lock").write_text(this_process)  # a degrade writing deg_busy.mkv
    (d / ".ev_busy.json.lvtino-lock").write_text(this_process)  # an evaluate writing ev_busy.json
    inside = d / "inside.csv"  # the second item's output lies inside the first item's input folder
    inside.write_text(f"input,output\n{folder},in1.mkv\n{y},{folder}/in2.mkv\n")
    files.update(inside=inside)
    # oversized and endless inputs
    os.mkfifo(d / "pipe.mp4")
    os.mkfifo(d / "pipe.yaml")
    os.mkfifo(d / "pipe.json")  # an output aimed at it must be refused (never a system device: a regression would
    # replace it)
    big = d / "big.yaml"
    with open(big, "wb") as fh:
        fh.truncate(65 << 20)  # sparse: 65 MB of zeros, no disk used
    # traceback triggers
    bombs = d / "bombs"
    bombs.mkdir()
    (bombs / "000.png").write_bytes(_png_header(100_000, 100_000))
    (d / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    deep = d / "deep.mkv"
    with VideoWriter(deep, Fraction(24)) as w:
        for f in smooth_frames(4, 16, 16):
            w.write(f)
    _set_comment(deep, '{"lvtino": ' + "[" * 100_000 + "]" * 100_000 + "}")
    fast = write_video(d / "fast.mp4", smooth_frames(6, 16, 16), fps=Fraction(1000))
    unknown = d / "unknown.mp4"  # its video codec's tag changed: FFmpeg knows no decoder for it (a damaged header)
    unknown.write_bytes(clean.read_bytes().replace(b"avc1", b"zzzz"))
    badname = d / os.fsdecode(b"bad\xffname.mkv")  # a name of bytes that are not UTF-8 (an old disk's)
    badname.write_bytes(y.read_bytes())
    files.update(ok_yaml=ok_yaml, mynotes=mynotes, ok3=ok3, big=big, bombs=bombs, bomb=d / "bomb.png", deep=deep,
                 pipe=d / "pipe.mp4", pipe_yaml=d / "pipe.yaml", pipe_json=d / "pipe.json", fast=fast, badname=badname,
                 unknown=unknown)
    return files


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds almost nothing (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def _set_comment(path: Path, text: str) -> None:
    """Remux ``path`` with ``text`` as its container comment (where lvtino keeps its metadata)."""
    import av

    tmp = path.with_name("remux-" + path.name)
    with av.open(str(path)) as src, av.open(str(tmp), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        out.metadata["comment"] = text
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    tmp.replace(path)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))


CASES = {
    # degrade
    "degrade: missing input": Case("degrade {d}/missing.mp4 -o {d}/o.mkv --problem A", 2, "no such file"),
    "degrade: a text file": Case("degrade {notes} -o {d}/o.mkv --problem A", 2, "not a video"),
    "degrade: no problem": Case("degrade {clean} -o {d}/o.mkv", 2, "--problem is required"),
    "degrade: unknown problem": Case("degrade {clean} -o {d}/o.mkv --problem Z", 2, "unknown problem 'Z' (known: A"),
    "degrade: noise nan": Case("degrade {clean} -o {d}/o.mkv --problem A --noise-std nan", 2,
                               "--noise-std nan: expected a finite number from 0 to 1"),
    "degrade: noise inf": Case("degrade {clean} -o {d}/o.mkv --problem A --noise-std inf", 2, "--noise-std inf"),
    "degrade: noise negative": Case("degrade {clean} -o {d}/o.mkv --problem A --noise-std -0.1", 2,
                                    "--noise-std -0.1"),
    "degrade: noise not a number": Case("degrade {clean} -o {d}/o.mkv --problem A --noise-std abc", 2,
                                        "invalid float value: 'abc'"),
    "degrade: negative seed": Case("degrade {clean} -o {d}/o.mkv --problem A --seed -1", 2,
                                   "a seed is a whole number"),
    "degrade: output is the input": Case("degrade {clean} -o {clean} --problem A", 2, "would overwrite the input"),
    "degrade: output links to the input": Case("degrade {clean} -o {link} --problem A", 2,
                                               "would overwrite the input"),
    "degrade: output exists": Case("degrade {clean} -o {existing} --problem A", 2, "exists; add -y to replace it"),
    "degrade: output exists, -n": Case("degrade {clean} -o {existing} --problem A -n", 2, "-n never replaces"),
    "degrade: -y and -n": Case("degrade {clean} -o {d}/o.mkv --problem A -y -n", 2, "not allowed with argument"),
    "degrade: a user's frame folder": Case("degrade {clean} -o {mine} --problem A -y", 2,
                                           "holds files lvtino did not write"),
    "degrade: unsupported suffix": Case("degrade {clean} -o {d}/o.gif --problem A", 2, "unsupported output type"),
    "degrade: missing folder": Case("degrade {clean} -o {d}/nowhere/o.mkv --problem A", 2, "does not exist"),
    "degrade: frame too small": Case("degrade {tiny} -o {d}/o.mkv --problem sr8", 2, "too small for problem sr8"),
    "degrade: truncated input": Case("degrade {cut} -o {d}/o.mkv --problem A", 2,
                                     "looks truncated or damaged; pass --accept-truncated"),
    "degrade: operator factor abc": Case("degrade {clean} -o {d}/o.mkv --problem A "
                                         "--set operator.0.temporal_pool.factor=abc", 2,
                                         "operator.0.temporal_pool.factor=abc: expected a whole number from 1 to 64"),
    "degrade: iterations inf": Case("degrade {clean} -o {d}/o.mkv --problem A --set tv.iterations=.inf", 2,
                                    "tv.iterations=inf"),
    "degrade: missing config": Case("degrade {clean} -o {d}/o.mkv --config {d}/none.yaml", 2, "no such file"),
    "degrade: binary config": Case("degrade {clean} -o {d}/o.mkv --config {evil}", 2, "not a text file"),
    "degrade: broken config": Case("degrade {clean} -o {d}/o.mkv --config {broken}", 2, "not valid YAML"),
    "degrade: nothing after jpeg": Case("degrade {clean} -o {d}/o.mkv --config {following}", 2,
                                        "nothing may follow the non-linear jpeg"),
    "degrade: output inside an input folder": Case("degrade {folder} -o {folder}/o.mkv --problem sr2", 2,
                                                   "lies inside the input folder"),
    "degrade: output is the config": Case("degrade {clean} -o {broken} --problem A -y", 2,
                                          "unsupported output type"),
    "degrade: a pipe as input": Case("degrade {pipe} -o {d}/o.mkv --scale 2", 2, "not a regular file or folder"),
    "degrade: /dev/zero as config": Case("degrade {clean} -o {d}/o.mkv --config /dev/zero", 2,
                                         "not a regular file"),
    "degrade: a PNG declaring 100000x100000, in a folder": Case("degrade {bombs} -o {d}/o.mkv --scale 2", 2,
                                                                "declares an image of more than"),
    "degrade: a PNG declaring 100000x100000": Case("degrade {bomb} -o {d}/o.mkv --scale 2", 2,
                                                   "no frame size can be read"),
    "degrade: an unknown video codec": Case("degrade {unknown} -o {d}/o.mkv --scale 2", 2,
                                            "its video stream's codec cannot be read"),
    "degrade: a python tag in --set": Case("degrade {clean} -o {d}/o.mkv --problem A "
                                           "--set noise_std=!!python/name:os.system", 2, "not valid YAML"),
    # restore
    "restore: missing input": Case("restore {d}/missing.mkv -o {d}/o.mkv", 2, "no such file"),
    "restore: a text file": Case("restore {notes} -o {d}/o.mkv --problem A", 2, "not a video"),
    "restore: stats onto the input": Case("restore {y} -o {d}/o.mkv --stats {y}", 2,
                                          "--stats {y}: would overwrite the input"),
    "restore: stats onto the output": Case("restore {y} -o {d}/o.mkv --stats {d}/o.mkv", 2,
                                           "is also given as -o"),
    "restore: stats in a missing folder": Case("restore {y} -o {d}/o.mkv --stats {d}/nodir/s.json", 2,
                                               "does not exist"),
    "restore: stats exists": Case("restore {y} -o {d}/o.mkv --stats {existing}", 2, "exists; add -y"),
    "restore: stats onto the config": Case("restore {y} -o {d}/o.mkv --config {broken} --stats {broken} -y", 2,
                                           "would overwrite --config"),
    "restore: lam nan": Case("restore {y} -o {d}/o.mkv --set tv.lam_space=nan", 2,
                             "tv.lam_space=nan: expected a finite number >= 0"),
    "restore: eps nan": Case("restore {y} -o {d}/o.mkv --prior pinv --set pinv.eps=.nan", 2, "pinv.eps=nan"),
    "restore: tau negative": Case("restore {y} -o {d}/o.mkv --set tv.tau=-1", 2, "tv.tau=-1: expected a finite "
                                                                                 "number > 0"),
    "restore: tau too large": Case("restore {y} -o {d}/o.mkv --set tv.tau=4", 2, "need tau * sigma <"),
    "restore: window 0": Case("restore {y} -o {d}/o.mkv --window 0", 2, "--window 0: expected a whole number"),
    "restore: overlap negative": Case("restore {y} -o {d}/o.mkv --overlap -1", 2, "--overlap -1"),
    "restore: window too short": Case("restore {yt} -o {d}/o.mkv --window 9", 2, "--window 9 is too short"),
    "restore: circular blur in windows": Case("restore {yb} -o {d}/o.mkv --window 9", 2,
                                              "temporal boundary is circular: measured frame 0 mixes the first and "
                                              "last frames of the video, which only one window holding all 24 frames "
                                              "can restore; use --window 24"),
    "restore: empty range": Case("restore {y} -o {d}/o.mkv --start 5 --end 5", 2, "0 <= start < end"),
    "restore: bad time": Case("restore {y} -o {d}/o.mkv --start 1:xx", 2, "expected a frame number, seconds"),
    "restore: frames 0": Case("restore {y} -o {d}/o.mkv --frames 0", 2, "--frames 0: expected a whole number"),
    "restore: recorded frames huge": Case("restore {t_huge} -o {d}/o.mkv", 2,
                                          "recorded degradation is not valid (frames=1000000000000"),
    "restore: recorded frames negative": Case("restore {t_negative} -o {d}/o.mkv", 2, "frames=-5"),
    "restore: recorded frames text": Case("restore {t_text} -o {d}/o.mkv", 2, "frames=abc"),
    "restore: recorded frames disagree": Case("restore {t_mismatch} -o {d}/o.mkv", 2,
                                              "check --problem and --frames"),
    "restore: recorded blur huge": Case("restore {t_blur} -o {d}/o.mkv", 2,
                                        "operator.0.temporal_blur.size=1000000"),
    "restore: recorded operator text": Case("restore {t_opstring} -o {d}/o.mkv", 2, "operator: expected a list"),
    "restore: recorded height huge": Case("restore {t_tall} -o {d}/o.mkv", 2, "height=1000000"),
    "restore: recorded noise nan": Case("restore {t_noise} -o {d}/o.mkv", 2, "noise_std=nan"),
    "restore: recorded unknown problem": Case("restore {t_unknown} -o {d}/o.mkv", 2, "not a packaged preset"),
    "restore: no metadata, no problem": Case("restore {low} -o {d}/o.mkv", 2, "carries no lvtino metadata, so say "
                                             "how it was degraded: --scale N (N times smaller) and/or --fps-factor K"),
    "restore: binary models file": Case("restore {y} -o {d}/o.mkv --prior lvtino --models {evil}", 2,
                                        "not a text file"),
    "restore: missing models file": Case("restore {y} -o {d}/o.mkv --prior lvtino --models {d}/none.yaml", 2,
                                         "no such file"),
    "restore: no weights": Case("restore {y} -o {d}/o.mkv --prior lvtino", 2, "lvtino download"),
    "restore: device tpu": Case("restore {y} -o {d}/o.mkv --device tpu", 2, "not a torch device"),
    "restore: crf 99": Case("restore {y} -o {d}/o.mp4 --crf 99", 2, "--crf 99: expected a whole number from 0 to 51"),
    "restore: preset quick": Case("restore {y} -o {d}/o.mp4 --preset quick", 2, "--preset quick: expected one of ultrafast"),
    "restore: fps 0": Case("restore {y} -o {d}/o.mkv --fps 0", 2, "the frame rate must be positive"),
    "restore: unknown prior": Case("restore {y} -o {d}/o.mkv --prior magic", 2, "invalid choice: 'magic'"),
    "restore: no output": Case("restore {y}", 2, "the following arguments are required: -o/--output"),
    "restore: output is the input": Case("restore {y} -o {y} -y", 2, "would overwrite the input"),
    "restore: output exists": Case("restore {y} -o {existing}", 2, "exists; add -y"),
    "restore: a user's frame folder": Case("restore {y} -o {mine} -y", 2, "holds files lvtino did not write"),
    "restore: truncated input": Case("restore {cut} -o {d}/o.mkv --problem sr2", 2, "looks truncated"),
    "restore: a running job": Case("restore {y} -o {d}/busy.mkv", 2, "another lvtino run is writing it (pid"),
    "restore: interrupted, no --resume": Case("restore {y} -o {d}/old.mkv", 2,
                                              "holds 1 finished window(s) of an interrupted run: add --resume"),
    "restore: a user's folder named as the state": Case("restore {y} -o {d}/taken.mkv", 2,
                                                         "holds files lvtino did not write (notes.txt)"),
    "restore: a file named as the state": Case("restore {y} -o {d}/taken2.mkv", 2, "a file of that name exists"),
    "restore: a link named as the state": Case("restore {y} -o {d}/linked.mkv", 2,
                                               "a link of that name exists, which lvtino never follows"),
    "restore: a user's file deep in the state's name": Case("restore {y} -o {d}/deepstate.mkv", 2,
                                                             "holds files lvtino did not write "
                                                             "(segments/precious.txt)"),
    "restore: a name 240 bytes long": Case("restore {y} -o {d}/" + "n" * 236 + ".mkv --scale 2", 2,
                                           "the name is 240 bytes, and lvtino writes beside it under names up to 21 "
                                           "bytes longer (temporary and lock files), over this file system's limit "
                                           "of 255: use a name of at most 234 bytes"),
    "restore: --size 125 times larger": Case("restore {low} -o {d}/o.mkv --size 2500x2000", 2,
                                             "--size 2500x2000: 125 times the input's size; a factor goes up to 64"),
    "restore: --fps 200 times faster": Case("restore {low} -o {d}/o.mkv --fps 6000", 2,
                                            "--fps 6000: 200 times the input's 30 fps; a factor goes up to 64"),
    "degrade: another degrade writing it": Case("degrade {clean} -o {d}/deg_busy.mkv --problem A", 2,
                                                "another lvtino run is writing it (pid"),
    "evaluate: another evaluate writing the json": Case("evaluate {y} --reference {clean} --json {d}/ev_busy.json",
                                                        2, "another lvtino run is writing it (pid"),
    "batch: an output inside another item's input folder": Case("batch {inside}", 2,
                                                                "lies inside the input of item"),
    "restore: a pipe as input": Case("restore {pipe} -o {d}/o.mkv --scale 2", 2, "not a regular file or folder"),
    "restore: /dev/zero as config": Case("restore {y} -o {d}/o.mkv --config /dev/zero", 2,
                                         "--config /dev/zero: not a regular file"),
    "restore: a pipe as config": Case("restore {y} -o {d}/o.mkv --config {pipe_yaml}", 2, "not a regular file"),
    "restore: a 65 MB config": Case("restore {y} -o {d}/o.mkv --config {big}", 2, "larger than the 64 MB"),
    "restore: /dev/zero as models": Case("restore {y} -o {d}/o.mkv --prior lvtino --models /dev/zero", 2,
                                         "--models /dev/zero: not a regular file"),
    "restore: a key 2000 levels deep": Case("restore {y} -o {d}/o.mkv --set " + ".".join(["a"] * 2000) + "=1", 2,
                                            "a key of 2000 dotted parts"),
    "restore: a python tag in --set": Case("restore {y} -o {d}/o.mkv --set tv.tau=!!python/object/apply:os.system",
                                           2, "--set tv.tau: not valid YAML"),
    "restore: metadata nested 100000 deep": Case("restore {deep} -o {d}/o.mkv", 2, "carries no lvtino metadata"),
    "restore: 2000 fps into Matroska": Case("restore {fast} -o {d}/o.mkv --fps-factor 2", 2,
                                            "2000 fps is faster than Matroska can time"),
    "restore: output onto a pipe, -y": Case("restore {y} -o {pipe} -y", 2, "not a regular file (a pipe, socket or "
                                                                         "device), which lvtino never replaces"),
    "restore: stats onto a pipe, -y": Case("restore {y} -o {d}/o.mkv --stats {pipe_json} -y", 2,
                                           "pipe.json: not a regular file"),
    "restore: a name that is not UTF-8": Case("restore {badname} -o {d}/o.mkv", 2, "the name is not UTF-8 text"),
    "restore: output name not UTF-8": Case("restore {y} -o {d}/" + os.fsdecode(b"\xfe.mkv"), 2,
                                           "the name is not UTF-8 text"),
    "restore: fps 1e400": Case("restore {y} -o {d}/o.mkv --fps 1e400", 2, "expected a frame rate from 0.001"),
    "restore: pix-fmt rgb": Case("restore {y} -o {d}/o.mp4 --pix-fmt rgb", 2, "--pix-fmt rgb: expected one of yuv420p"),
    # evaluate
    "evaluate: json onto the reference": Case("evaluate {y} --reference {clean} --json {clean}", 2,
                                              "would overwrite --reference"),
    "evaluate: json onto the restored": Case("evaluate {y} --reference {clean} --json {y}", 2,
                                             "would overwrite the restored video"),
    "evaluate: report into a user's folder": Case("evaluate {clean} --reference {clean} --report {userdir} -y", 2,
                                                  "was not made by lvtino"),
    "evaluate: report around the input": Case("evaluate {clean} --reference {clean} --report {d} -y", 2,
                                              "would replace the folder holding"),
    "evaluate: json exists": Case("evaluate {clean} --reference {clean} --json {existing}", 2, "exists; add -y"),
    "evaluate: sizes differ": Case("evaluate {clean} --reference {tiny}", 2, "size differs"),
    "evaluate: counts differ": Case("evaluate {clean} --reference {short}", 2, "frame count differs"),
    "evaluate: stats missing": Case("evaluate {clean} --reference {clean} --stats {d}/none.json", 2, "no such file"),
    "evaluate: stats not json": Case("evaluate {clean} --reference {clean} --stats {notjson}", 2, "not a JSON file"),
    "evaluate: stats binary": Case("evaluate {clean} --reference {clean} --stats {evil}", 2, "not a text file"),
    "evaluate: missing reference": Case("evaluate {clean} --reference {d}/none.mp4", 2, "no such file"),
    "evaluate: json onto a pipe, -y": Case("evaluate {clean} --reference {clean} --json {pipe_json} -y", 2,
                                           "pipe.json: not a regular file"),
    "evaluate: /dev/zero as stats": Case("evaluate {clean} --reference {clean} --stats /dev/zero", 2,
                                         "not a regular file"),
    "evaluate: a pipe as reference": Case("evaluate {clean} --reference {pipe}", 2, "not a regular file"),
    # batch
    "batch: output is the input": Case("batch {same}", 2, "its output is its input"),
    "batch: two items, one output": Case("batch {shared}", 2, "share the output"),
    "batch: summary onto an input": Case("batch {ok} --summary {y}", 2, "would overwrite"),
    "batch: scalar items": Case("batch {scalars}", 2, "expected a mapping with 'input' and 'output'"),
    "batch: unknown column": Case("batch {columns}", 2, "unknown column 'colour'"),
    "batch: no items": Case("batch {empty_csv}", 2, "holds no items"),
    "batch: binary manifest": Case("batch {d}/evil.pt", 2, "a manifest is a .csv or .yaml file"),
    "batch: folder without -o": Case("batch {folder}", 2, "give the output folder with -o"),
    "batch: missing manifest": Case("batch {d}/none.csv", 2, "no such manifest"),
    "batch: --config": Case("batch {ok} --config {broken}", 2, "not available for batch"),
    "batch: another batch running": Case("batch {ok}", 2, "another lvtino run is writing it"),
    "batch: summary onto the manifest": Case("batch {ok} --summary {ok} -y", 2, "would overwrite the manifest"),
    "batch: summary onto a YAML manifest": Case("batch {ok_yaml} --summary {ok_yaml} -y", 2,
                                                "would overwrite the manifest"),
    "batch: summary onto an item's output": Case("batch {ok} --summary {d}/out_ok.mkv", 2,
                                                 "would overwrite a batch item's output"),
    "batch: summary onto a user's file, -n": Case("batch {ok} --summary {mynotes} -n", 2, "-n never replaces"),
    "batch: summary onto a user's file": Case("batch {ok} --summary {mynotes}", 2, "exists; add -y"),
    "batch: default summary is a user's file": Case("batch {ok3}", 2, "ok3-summary.csv: exists; add -y"),
    "batch: /dev/zero as manifest": Case("batch /dev/zero", 2, "/dev/zero: not a regular file"),
    "batch: a pipe as manifest": Case("batch {pipe_yaml}", 2, "not a regular file"),
    # benchmark
    "benchmark: unknown problem": Case("benchmark {clean} --problems Z -o {d}/bench", 2, "unknown problem 'Z'"),
    "benchmark: missing clip": Case("benchmark {d}/none.mp4 -o {d}/bench", 2, "no such file"),
    "benchmark: bad size": Case("benchmark {clean} --size big -o {d}/bench", 2, "--size big: expected WIDTHxHEIGHT"),
    "benchmark: a user's folder": Case("benchmark {clean} -o {userdir}", 2, "was not made by lvtino"),
    "benchmark: size 100000x100000": Case("benchmark {clean} --size 100000x100000 -o {d}/bench", 2,
                                          "larger than the 16384x16384"),
    "degrade: input fps 1e-300": Case("degrade {folder} -o {d}/o.mkv --scale 2 --input-fps 1e-300", 2,
                                      "expected a frame rate from 0.001"),
    "benchmark: frames 0": Case("benchmark {clean} --frames 0 -o {d}/bench", 2, "--frames 0"),
    "benchmark: start past the end": Case("benchmark {clean} --start 30 -o {d}/bench", 2, "has 24 frames"),
    "benchmark: truncated clip": Case("benchmark {cut} -o {d}/bench", 2, "looks truncated"),
    # download
    "download: offline": Case("download --only video", 1, "download of Wan-AI/Wan2.1-T2V-1.3B-Diffusers failed"),
    "download: missing models file": Case("download --models {d}/none.yaml", 2, "no such file"),
    "download: unknown part": Case("download --only audio", 2, "invalid choice: 'audio'"),
    # demo
    "demo: unknown problem": Case("demo --problem Z -o {d}/demo", 2, "unknown problem 'Z'"),
    "demo: frames 0": Case("demo --frames 0 -o {d}/demo", 2, "--frames 0"),
    "demo: output is a file": Case("demo -o {existing}", 2, "a folder cannot replace it"),
    "demo: a user's folder": Case("demo -o {userdir}", 2, "was not made by lvtino"),
    "demo: missing input": Case("demo --input {d}/none.mp4 -o {d}/demo", 2, "no such file"),
    "demo: truncated input": Case("demo --input {cut} -o {d}/demo", 2, "looks truncated"),
    "demo: start past the end": Case("demo --input {short} --start 40 -o {d}/demo", 2, "the input has 12 frames"),
    # the command itself
    "no command": Case("", 2, "the following arguments are required: COMMAND"),
    "unknown command": Case("repair {y}", 2, "invalid choice: 'repair'"),
    # one row at least for each option that takes a value (test_every_option_has_a_row)
    "degrade: unknown resampler": Case("degrade {clean} -o {d}/o.mkv --scale 2 --resampler magic", 2,
                                       "argument --resampler: invalid choice: 'magic'"),
    "restore: unknown fps mode": Case("restore {y} -o {d}/o.mkv --fps-mode sometimes", 2,
                                      "argument --fps-mode: invalid choice: 'sometimes'"),
    "degrade: phase past the factor": Case("degrade {clean} -o {d}/o.mkv --fps-factor 4 --fps-phase 9", 2,
                                           "--fps-phase 9: expected a whole number from 0 to 3"),
    "degrade: unknown protocol": Case("degrade {clean} -o {d}/o.mkv --problem A --protocol paper", 2,
                                      "argument --protocol: invalid choice: 'paper'"),
    "restore: missing guide": Case("restore {y} -o {d}/o.mkv --guide {d}/none.mp4", 2, "no such file"),
    "restore: unknown dtype": Case("restore {y} -o {d}/o.mkv --prior lvtino --dtype float8", 2,
                                   "argument --dtype: invalid choice: 'float8'"),
    "restore: unknown vae tiling": Case("restore {y} -o {d}/o.mkv --prior lvtino --vae-tiling maybe", 2,
                                        "argument --vae-tiling: invalid choice: 'maybe'"),
    "restore: unknown offload": Case("restore {y} -o {d}/o.mkv --prior lvtino --offload disk", 2,
                                     "argument --offload: invalid choice: 'disk'"),
    "restore: missing upscaler": Case("restore {y} -o {d}/o.mkv --upscaler {d}/none.pth", 2, "none.pth: no such file"),
    "restore: an upscaler that is text": Case("restore {y} -o {d}/o.mkv --upscaler {notes}", 2,
                                              "expected a model file"),
    "restore: unknown codec": Case("restore {y} -o {d}/o.mkv --codec mpeg2", 2,
                                   "argument --codec: invalid choice: 'mpeg2'"),
    "batch: unknown suffix": Case("batch {clean} --suffix .avi", 2, "argument --suffix: invalid choice: '.avi'"),
    "benchmark: unknown prior": Case("benchmark {clean} --priors magic", 2, "argument --priors: invalid choice"),
    "evaluate: degraded without a report": Case("evaluate {clean} --reference {clean} --degraded {y}", 2,
                                                "the measurement is shown in the report; give --report"),
    "evaluate: missing degraded": Case("evaluate {clean} --reference {clean} --degraded {d}/none.mkv --report "
                                       "{d}/rep", 2, "no such file"),
    "evaluate: reference start past its end": Case("evaluate {clean} --reference {clean} --reference-start 30", 2,
                                                   "--reference-start 30: "),
}
if not torch.cuda.is_available():
    CASES["restore: no CUDA"] = Case("restore {y} -o {d}/o.mkv --device cuda", 2, "CUDA is not available")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) and a digest of its content (of a file over 1 MB: its size,
    modification time and first and last MB)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        name = str(p.relative_to(folder))
        if p.is_symlink():
            out[name] = "link:" + os.readlink(p)
        elif p.is_file():
            st = p.stat()
            if st.st_size <= 1 << 20:
                out[name] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                with open(p, "rb") as fh:
                    head = fh.read(1 << 20)
                    fh.seek(-(1 << 20), os.SEEK_END)
                    out[name] = f"{st.st_size}:{st.st_mtime_ns}:" + hashlib.sha256(head + fh.read()).hexdigest()
        elif p.is_dir():
            out[name + "/"] = "dir"
        else:
            out[name] = "special"
    return out


def test_every_option_has_a_row():
    """Each option that takes a value, of any subcommand, is given a bad value in one row at least (an option
    shared by several subcommands is read by one parser function: one row serves them)."""
    import argparse

    from lvtino.cli import build_parser

    given = {w.split("=")[0] for c in CASES.values() for w in c.args.split()}
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = {f"{command} {action.option_strings[-1]}" for command, parser in sub.choices.items()
               for action in parser._actions
               if action.option_strings and action.nargs != 0 and not given & set(action.option_strings)}
    assert not missing, sorted(missing)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(ws, capsys, name):
    case = CASES[name]
    before = snapshot(ws["d"])
    code = main(case.argv(ws))
    out, err = capsys.readouterr()
    assert code == case.code, (name, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lvtino: error: "), (name, err)
    assert "Traceback" not in err
    fragment = case.fragment.format(**{k: str(v) for k, v in ws.items()})
    assert fragment in lines[0], (name, lines[0])
    assert snapshot(ws["d"]) == before, name  # nothing added, removed or changed
