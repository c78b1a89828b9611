"""``lvtino batch``: manifests, folders, skipped and failing items, the summary."""

from __future__ import annotations

import csv
from fractions import Fraction

import av
import numpy as np
import pytest

from conftest import smooth_frames, write_video
from lvtino.cli import main
from lvtino.video.reader import probe, read_frames


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    clean = write_video(folder / "clean.mp4", smooth_frames(40, 32, 48), fps=Fraction(25))
    for problem in ("A", "sr2"):
        assert main(["degrade", str(clean), "-o", str(folder / f"y{problem}.mkv"), "--problem", problem]) == 0
    return folder


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def read_summary(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_manifest_with_a_failing_item_goes_on_and_skips_finished_outputs(measured, tmp_path, capsys):
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("input,output,prior,start,end,set\n"
                        f"{measured / 'yA.mkv'},out/a.mkv,tv,,,tv.iterations=5\n"
                        f"{measured / 'absent.mkv'},out/b.mkv,,,,\n"
                        f"{measured / 'ysr2.mkv'},out/c.mkv,pinv,10,30,\n")
    code, out, err = run(["batch", manifest], capsys)
    assert code == 1  # an item failed
    rows = read_summary(tmp_path / "jobs-summary.csv")
    assert [r["status"] for r in rows] == ["done", "failed", "done"]
    assert rows[0]["frames"] == "40" and rows[2]["frames"] == "20"
    assert "no such file" in rows[1]["message"]
    assert probe(tmp_path / "out" / "a.mkv").frames == 40 and probe(tmp_path / "out" / "c.mkv").frames == 20
    assert "failed" in out and "absent.mkv" in out
    assert err.strip().splitlines()[-1] == (f"lvtino: error: 1 of 3 batch item(s) failed (first: {measured}/absent.mkv"
                                            f": {rows[1]['message']}); every item's outcome is in "
                                            f"{tmp_path / 'jobs-summary.csv'}")
    before = (tmp_path / "out" / "a.mkv").stat().st_mtime_ns
    code, out, _ = run(["batch", manifest], capsys)
    rows = read_summary(tmp_path / "jobs-summary.csv")
    assert [r["status"] for r in rows] == ["skipped", "failed", "skipped"]
    assert (tmp_path / "out" / "a.mkv").stat().st_mtime_ns == before


def test_yaml_manifest_with_defaults(measured, tmp_path, capsys):
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(f"defaults: {{prior: pinv}}\nitems:\n"
                        f"  - {{input: {measured / 'yA.mkv'}, output: a.mkv}}\n"
                        f"  - {{input: {measured / 'yA.mkv'}, output: b.mkv, prior: tv, set: [tv.iterations=3]}}\n")
    code, _, err = run(["batch", manifest, "--summary", tmp_path / "s.csv"], capsys)
    assert code == 0, err
    a, b = (np.stack(list(read_frames(probe(tmp_path / n)))) for n in ("a.mkv", "b.mkv"))
    assert a.shape == b.shape == (40, 32, 48, 3) and not np.array_equal(a, b)  # pinv and tv differ
    assert [r["status"] for r in read_summary(tmp_path / "s.csv")] == ["done", "done"]


def test_folder_of_inputs_with_one_problem(measured, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("one", "two"):
        (inputs / f"{name}.mkv").write_bytes((measured / "ysr2.mkv").read_bytes())
    code, _, err = run(["batch", inputs, "-o", tmp_path / "out", "--prior", "pinv", "--suffix", ".mkv"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lvtino-batch-summary.csv", "one.mkv", "two.mkv"]
    assert probe(tmp_path / "out" / "one.mkv").frames == 40


def test_manifest_mistakes_are_one_line(tmp_path, capsys):
    bad = tmp_path / "jobs.csv"
    bad.write_text("input,output,colour\na.mkv,b.mkv,red\n")
    code, _, err = run(["batch", bad], capsys)
    assert code == 2 and "unknown column 'colour'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["batch", tmp_path], capsys)
    assert code == 2 and "give the output folder with -o" in err


def test_a_folder_of_users_videos_in_plain_words(tmp_path, capsys):
    """batch takes restore's words and encoding options: --scale 2 on videos lvtino did not make, yuv444p output;
    a second run skips them as done (the words are part of the recorded settings)."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b"):
        write_video(inputs / f"{name}.mkv", smooth_frames(6, 24, 32), fps=Fraction(25), codec="ffv1")
    out = tmp_path / "out"
    code, text, err = run(["batch", inputs, "-o", out, "--scale", 2, "--prior", "pinv", "--pix-fmt", "yuv444p"],
                          capsys)
    assert code == 0, err
    for name in ("a", "b"):
        info = probe(out / f"{name}.mp4")
        assert (info.frames, info.width, info.height) == (6, 64, 48)
        assert info.metadata["restored_by"]["operator"] == [{"resize": {"factor": 2, "resampler": "ffmpeg"}}]
        with av.open(str(out / f"{name}.mp4")) as c:
            assert c.streams.video[0].codec_context.pix_fmt == "yuv444p"
    code, text, err = run(["batch", inputs, "-o", out, "--scale", 2, "--prior", "pinv", "--pix-fmt", "yuv444p"],
                          capsys)
    assert code == 0 and text.count("skipped") >= 2, text


def test_an_item_encoded_otherwise_is_not_done(measured, tmp_path, capsys):
    """Every setting that changes the output's bytes is in the digest: --crf, --preset, --pix-fmt, --no-audio."""
    clip = write_video(tmp_path / "clip.mp4", smooth_frames(8, 16, 24), audio_seconds=0.4)
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("input,output\nclip.mp4,up.mp4\n")
    words = ["--scale", "2", "--prior", "pinv"]
    assert run(["batch", manifest, *words, "--crf", "20"], capsys)[0] == 0
    assert run(["batch", manifest, *words, "--crf", "20"], capsys)[0] == 0
    assert read_summary(tmp_path / "jobs-summary.csv")[0]["status"] == "skipped"
    for other in (["--crf", "30"], ["--crf", "20", "--preset", "fast"], ["--crf", "20", "--pix-fmt", "yuv444p"],
                  ["--crf", "20", "--no-audio"]):
        code, _, _ = run(["batch", manifest, *words, *other], capsys)
        rows = read_summary(tmp_path / "jobs-summary.csv")
        assert code == 1 and "made by other settings" in rows[0]["message"], (other, rows)
    assert run(["batch", manifest, *words, "--no-audio", "-y"], capsys)[0] == 0
    assert not probe(tmp_path / "up.mp4").has_audio and probe(clip).has_audio


def test_the_summary_follows_the_outputs_rules(measured, tmp_path, capsys):
    """A summary lvtino wrote is replaced by the next run; a user's file only with -y; never an input."""
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"input,output,prior\n{measured / 'ysr2.mkv'},c.mkv,pinv\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    for flags in ([], ["-n"]):
        code, _, err = run(["batch", manifest, "--summary", notes, *flags], capsys)
        assert code == 2 and notes.read_text() == "mine\n" and not (tmp_path / "c.mkv").exists(), err
    assert run(["batch", manifest, "--summary", notes, "-y"], capsys)[0] == 0
    assert read_summary(notes)[0]["status"] == "done"
    for flags in ([], ["-n"]):  # lvtino's own summary, rewritten by each run
        assert run(["batch", manifest, "--summary", notes, *flags], capsys)[0] == 0
        assert read_summary(notes)[0]["status"] == "skipped"
    text = manifest.read_text()
    code, _, err = run(["batch", manifest, "--summary", manifest, "-y"], capsys)
    assert code == 2 and "would overwrite the manifest" in err and manifest.read_text() == text
