"""What lvtino writes: one registry of output formats, and the ``Encoding`` a run writes with.

A ``Format`` is a video codec with the containers it goes in (the output is a
file) or an image format (the output is a folder of numbered frames and a
sidecar). Each entry says everything the rest of the package needs: its
suffixes, the settings it takes (CRF and its range, speed presets, pixel
formats and their bit depths), its fixed encoder options, whether its bytes
follow the encoder's thread count, whether an odd size must be padded, and how
segments of it are joined (stream copy for a file, hard links for a folder).
A ``Container`` says which audio codecs it holds as they are and how fast a
rate its timestamps can tell.

An ``Encoding`` is a format with its settings: built and checked once from the
output path and what the caller gave (``Encoding.choose``), then settled for
the input (``for_input``: the bit depth follows the input's where the format
has it, the colour tags are carried). It is what ``VideoWriter`` and
``Segments`` are handed and what the run's digest records; nothing else looks
at an output's suffix.

To add a format: one ``Format`` entry in ``FORMATS`` (and a ``Container`` if
it brings a new one), and its case in ``tests/test_formats.py`` (a coverage
test fails for an entry without one).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

from lvtino.errors import UserError, arg, said

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
BT709 = 1  # ITU-T H.273 code for BT.709 primaries, transfer and matrix
UNSPECIFIED = 2  # H.273's "unspecified"
TV_RANGE, PC_RANGE = 1, 2  # limited (16-235) and full (0-255) range, FFmpeg's AVColorRange
# H.273 matrix codes swscale converts with, by its name for them; others are written as BT.709
MATRICES = {1: "itu709", 4: "fcc", 5: "itu601", 6: "smpte170m", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}


@dataclass(frozen=True)
class Container:
    """A file container: its suffixes, the audio codecs it holds as they are (None: any; others are re-encoded
    to ``audio_encoder``) and the fastest rate its timestamps can tell."""

    name: str
    suffixes: tuple[str, ...]
    audio: frozenset[str] | None = None
    audio_encoder: str = "aac"
    audio_rates: tuple[int, ...] = ()  # the re-encoder's sample rates, where it takes only some
    max_fps: int | None = None


MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})  # what players expect in MP4
MP4 = Container("MP4", (".mp4", ".m4v"), MP4_AUDIO)
# QuickTime holds PCM too: what cameras and editors put beside ProRes
QUICKTIME = Container("QuickTime", (".mov",), MP4_AUDIO | {"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be",
                                                           "pcm_s32le", "pcm_f32le"})
MATROSKA = Container("Matroska", (".mkv",), max_fps=1000)  # timestamps in milliseconds
WEBM = Container("WebM", (".webm",), frozenset({"opus", "vorbis"}), "libopus", (48000, 24000, 16000, 12000, 8000),
                 max_fps=1000)
CONTAINERS = (MP4, QUICKTIME, MATROSKA, WEBM)


def _x26x(params: str) -> Callable:
    def options(enc: "Encoding") -> dict:
        return {"crf": str(enc.crf), "preset": enc.preset, params.split("=")[0]: params.split("=", 1)[1]}
    return options


@dataclass(frozen=True)
class Format:
    """One output format (see the module's text). ``depths``: bits -> the pixel format written by default;
    ``pix_fmts``: what ``--pix-fmt`` may choose (none: the format takes no pixel format)."""

    name: str                          # what --codec takes
    title: str                         # how messages call it
    encoder: str                       # FFmpeg's encoder; for a folder, the image suffix
    suffixes: tuple[str, ...]          # the output suffixes it goes in; ("",) for a folder of frames
    depths: dict[int, str]
    pix_fmts: tuple[str, ...] = ()
    crf: tuple[int, int, int] | None = None  # lowest, highest, default
    presets: tuple[str, ...] = ()
    preset: str | None = None          # the default preset
    lossless: bool = False
    options: Callable[["Encoding"], dict] = field(default=lambda enc: {}, compare=False)
    threads: int = 0                   # fixed where the bytes follow the thread count (x264 1, VP9 8); 0: FFmpeg's
    # an odd side of subsampled chroma padded by one pixel: H.264 and HEVC crop only by whole chroma samples, and
    # swscale's conversion of an odd-sized frame to 4:2:0 is off at the edge (10 bits: 14 grey levels on average)
    pad_odd: bool = True
    bad_widths: tuple[int, int] | None = None  # widths the encoder cannot take (lowest, highest), refused at plan
    full_range: bool = True            # can be tagged full range (ProRes is always limited range)
    tag: str | None = None             # the codec tag in MP4 and QuickTime (hvc1: what Apple's players need)
    image_options: dict = field(default_factory=dict, compare=False)  # for a folder: the image writer's options

    @property
    def folder(self) -> bool:
        return self.suffixes == ("",)

    def takes(self, setting: str) -> bool:
        return {"crf": self.crf is not None, "preset": bool(self.presets), "pix_fmt": bool(self.pix_fmts)}[setting]

    def available(self) -> str | None:
        """Why this machine cannot write the format (its FFmpeg lacks the encoder), or None."""
        if self.folder:
            from PIL import features

            name = self.encoder.lstrip(".")
            return None if name != "webp" or features.check("webp") else "Pillow was built without WebP"
        return None if _has_encoder(self.encoder) else f"PyAV's FFmpeg has no {self.encoder} encoder"


def _prores(enc: "Encoding") -> dict:
    # profile 3 (HQ) for 4:2:2, 4 (4444) for 4:4:4; vendor apl0: what Final Cut and Resolve expect
    return {"profile": "4" if enc.pix_fmt.startswith("yuv444") else "3", "vendor": "apl0"}


def _vp9(enc: "Encoding") -> dict:
    # constant quality (crf with b 0); --preset is libvpx's cpu-used (0 slowest .. 8 fastest)
    return {"crf": str(enc.crf), "b": "0", "deadline": "good", "cpu-used": enc.preset, "row-mt": "1"}


def _av1(enc: "Encoding") -> dict:
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner on stderr at every segment otherwise
    return {"crf": str(enc.crf), "preset": enc.preset}


_YUV8 = ("yuv420p", "yuv422p", "yuv444p")
_YUV10 = ("yuv420p10le", "yuv422p10le", "yuv444p10le")
_YUV12 = ("yuv420p12le", "yuv422p12le", "yuv444p12le")

FORMATS: dict[str, Format] = {f.name: f for f in (
    # mb-tree off: with it, x264 (core 165) reads memory it never wrote when a stream ends with B-frames in its
    # lookahead, so the same frames gave other bytes from run to run (none with mbtree=0). Without it crf N is
    # about crf N-1 with it (street clip: -14 % bytes, -0.9 dB). One thread: the bytes follow the thread count
    Format("h264", "H.264 (libx264)", "libx264", (".mp4", ".mov", ".m4v", ".mkv"),
           {8: "yuv420p", 10: "yuv420p10le"}, _YUV8 + _YUV10, (0, 51, 18), X264_PRESETS, "medium",
           options=_x26x("x264-params=mbtree=0"), threads=1),
    Format("h264-rgb", "lossless H.264 RGB (libx264rgb, qp 0)", "libx264rgb", (".mp4", ".mov", ".m4v", ".mkv"),
           {8: "rgb24"}, (), None, X264_PRESETS, "medium", lossless=True,
           options=lambda enc: {"qp": "0", "preset": enc.preset}, threads=1, pad_odd=False),
    Format("hevc", "HEVC (libx265)", "libx265", (".mp4", ".mov", ".mkv"),  # .m4v's muxer (ipod) refuses HEVC
           {8: "yuv420p", 10: "yuv420p10le", 12: "yuv420p12le"}, _YUV8 + _YUV10 + _YUV12, (0, 51, 20),
           # x265's bytes follow its frame threads and its thread pool, which it sizes by the CPUs the process may
           # use (pools of 1, 2, 4 and the default: four other streams of the same frames): both fixed at one
           X264_PRESETS, "medium", options=_x26x("x265-params=log-level=error:frame-threads=1:pools=1"), tag="hvc1",
           # the libx265 of PyAV 18.1's FFmpeg writes past a buffer at these widths (glibc aborts the process at a
           # later allocation; found at 34-48, any height, 4:2:0 and 4:2:2)
           bad_widths=(33, 48)),
    Format("prores", "ProRes (prores_ks)", "prores_ks", (".mov", ".mkv"), {10: "yuv422p10le"},
           ("yuv422p10le", "yuv444p10le"), options=_prores, full_range=False),
    Format("ffv1", "lossless FFV1", "ffv1", (".mkv",), {8: "bgr0", 16: "gbrp16le"}, lossless=True, pad_odd=False),
    Format("vp9", "VP9 (libvpx-vp9)", "libvpx-vp9", (".webm", ".mkv", ".mp4"), {8: "yuv420p"}, _YUV8,
           # libvpx's bytes differ between one thread and more (the default follows the CPUs); eight, fixed
           (0, 63, 24), tuple(str(k) for k in range(9)), "4", options=_vp9, threads=8),
    Format("av1", "AV1 (SVT-AV1)", "libsvtav1", (".webm", ".mkv", ".mp4"), {8: "yuv420p", 10: "yuv420p10le"},
           ("yuv420p", "yuv420p10le"), (1, 63, 30), tuple(str(k) for k in range(14)), "8", options=_av1),
    Format("png", "a folder of PNG frames", ".png", ("",), {8: "rgb24"}, lossless=True, pad_odd=False),
    Format("webp", "a folder of lossless WebP frames", ".webp", ("",), {8: "rgb24"}, lossless=True, pad_odd=False,
           image_options={"plugin": "pillow", "lossless": True, "quality": 100, "method": 4}),
    Format("tiff", "a folder of TIFF frames", ".tiff", ("",), {8: "rgb24"}, lossless=True, pad_odd=False,
           image_options={"plugin": "pillow", "compression": "tiff_adobe_deflate"}),
)}
# the format an output suffix gets when --codec is not given
DEFAULTS = {".mp4": "h264", ".mov": "h264", ".m4v": "h264", ".mkv": "ffv1", ".webm": "vp9", "": "png"}
# the lossless format for a suffix (what degrade writes a measurement with)
LOSSLESS = {".mp4": "h264-rgb", ".mov": "h264-rgb", ".m4v": "h264-rgb", ".mkv": "ffv1", "": "png"}
FRAME_SUFFIXES = tuple(f.encoder for f in FORMATS.values() if f.folder)


@functools.cache
def _has_encoder(name: str) -> bool:
    import av

    try:
        av.codec.Codec(name, "w")
    except (av.error.FFmpegError, ValueError):  # PyAV raises UnknownCodecError, a ValueError
        return False
    return True


def container(suffix: str) -> Container | None:
    """The container of an output suffix (None for a folder)."""
    return next((c for c in CONTAINERS if suffix in c.suffixes), None)


def output_suffix(path: str | Path) -> str:
    """The output's suffix in lower case, "" for a folder of frames; one line for a suffix lvtino does not write."""
    suffix = Path(path).suffix.lower()
    if suffix not in DEFAULTS:
        files = sorted({s for f in FORMATS.values() for s in f.suffixes if s})
        raise UserError(f"{path}: unsupported output type {suffix!r} (use {', '.join(files)} or a folder name "
                        "without a suffix for a folder of frames)")
    return suffix


def pix_fmt_bits(pix_fmt: str) -> int:
    """The bits per component of a pixel format lvtino writes (rgb48 and gbrp16 are 16, yuv420p10le 10)."""
    for bits in (16, 12, 10):
        if str(bits) in pix_fmt.replace("rgb48", "16").replace("rgba64", "16"):
            return bits
    return 8


@dataclass(frozen=True)
class Encoding:
    """A format with its settings (see the module's text). ``given``: the settings the caller gave, by name, for
    the notices; ``pix_fmt`` None until ``for_input`` settles it; ``colour``: H.273 primaries, transfer, matrix
    and FFmpeg's range, the tags a YUV output carries."""

    format: Format
    suffix: str
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    colour: tuple[int, int, int, int] = (BT709, BT709, BT709, TV_RANGE)
    audio: bool = True
    given: tuple[tuple[str, object], ...] = ()

    @classmethod
    def choose(cls, output: str | Path, codec: str | None = None, crf=None, preset=None, pix_fmt=None,
               lossless: bool = False) -> "Encoding":
        """The encoding of ``output``: ``codec`` (else the suffix's default, or its lossless format with
        ``lossless``) and the settings given, each checked in the caller's words; a setting the format does not
        take is kept in ``given`` and said by ``notes``."""
        suffix = output_suffix(output)
        if codec is None:
            name = (LOSSLESS if lossless else DEFAULTS).get(suffix)
            if name is None:
                raise UserError(f"{output}: lvtino writes no lossless format in {suffix} files; use "
                                f"{', '.join(s or 'a folder' for s in LOSSLESS)}")
        else:
            name = str(codec).lower()
            if name not in FORMATS:
                raise UserError(f"{said('codec', codec)}: unknown codec (known: {', '.join(FORMATS)})")
        fmt = FORMATS[name]
        if suffix not in fmt.suffixes:
            where = "a folder name without a suffix" if fmt.folder else ", ".join(fmt.suffixes)
            what = "a folder of frames" if suffix == "" else f"a {suffix} file"
            raise UserError(f"{said('codec', name) if codec else fmt.title}: {output} names {what}; "
                            f"{fmt.title} is written as {where}")
        missing = fmt.available()
        if missing:
            raise UserError(f"{said('codec', name) if codec else output}: {fmt.title} cannot be written here "
                            f"({missing}); choose another {arg('codec')}")
        from lvtino.validation import Choice, whole

        given = tuple((k, v) for k, v in (("crf", crf), ("preset", preset), ("pix_fmt", pix_fmt)) if v is not None)
        if crf is not None and fmt.crf is not None:
            crf = whole(fmt.crf[0], fmt.crf[1]).parse(crf, arg("crf"))
        if preset is not None and fmt.presets:
            preset = Choice(fmt.presets).parse(str(preset), arg("preset"))
        if pix_fmt is not None and fmt.pix_fmts:
            pix_fmt = Choice(fmt.pix_fmts).parse(str(pix_fmt), arg("pix_fmt"))
        return cls(fmt, suffix,
                   crf=(fmt.crf[2] if crf is None else crf) if fmt.crf else None,
                   preset=(fmt.preset if preset is None else preset) if fmt.presets else None,
                   pix_fmt=pix_fmt if fmt.pix_fmts else None, given=given)

    # -- settled for an input -------------------------------------------------------
    def for_input(self, bits: int = 8, color: dict | None = None, audio: bool = True) -> "Encoding":
        """The encoding settled for an input of ``bits`` per component and colour tags ``color`` (``VideoInfo``'s):
        the pixel format given, else the format's depth nearest above the input's (its deepest where none is);
        YUV outputs carry the input's tags where it has them, BT.709 otherwise."""
        pix_fmt = self.pix_fmt or self.format.depths[self.depth_for(bits)]
        colour = (BT709, BT709, BT709, TV_RANGE)
        space = (color or {}).get("space", UNSPECIFIED)
        if color and space in MATRICES:
            rng = PC_RANGE if color.get("range") == PC_RANGE and self.format.full_range else TV_RANGE
            colour = (color.get("primaries", UNSPECIFIED), color.get("trc", UNSPECIFIED), space, rng)
        return replace(self, pix_fmt=pix_fmt, colour=colour, audio=audio and not self.format.folder)

    def depth_for(self, bits: int) -> int:
        depths = sorted(self.format.depths)
        return next((d for d in depths if d >= bits), depths[-1])

    @property
    def container(self) -> Container | None:
        return container(self.suffix)

    @property
    def bits(self) -> int:
        """Bits per component written (after ``for_input``)."""
        return pix_fmt_bits(self.pix_fmt or self.format.depths[min(self.format.depths)])

    @property
    def frame_bits(self) -> int:
        """What the frames handed to the writer hold: 8 (uint8), or 16 (uint16) for a deeper output."""
        return 8 if self.bits == 8 else 16

    @property
    def codec_tag(self) -> str | None:
        """The codec tag the output's stream is given, where its container takes one."""
        return self.format.tag if self.container in (MP4, QUICKTIME) else None

    @property
    def yuv(self) -> bool:
        return (self.pix_fmt or "").startswith("yuv")

    def matrix(self) -> str:
        return MATRICES.get(self.colour[2], "itu709")

    def pad(self, width: int, height: int) -> tuple[int, int]:
        """Pixels added on the right and at the bottom: subsampled chroma of an odd side, in formats that cannot
        code one (H.264 and HEVC crop by whole chroma samples)."""
        if not self.format.pad_odd or not self.yuv or self.pix_fmt.startswith("yuv444"):
            return (0, 0)
        return (width % 2, height % 2 if self.pix_fmt.startswith("yuv420") else 0)

    def settings(self) -> dict:
        """What the output's bytes depend on beyond its pixels (part of the run's digest)."""
        return {"format": self.format.name, "suffix": self.suffix, "crf": self.crf, "preset": self.preset,
                "pix_fmt": self.pix_fmt, "colour": list(self.colour) if self.yuv else None, "audio": self.audio}

    def encoder_options(self) -> dict:
        return self.format.options(self)

    # -- what is said once, when the run is planned -------------------------------------
    def notes(self, output: Path, width: int, height: int, input_bits: int = 8) -> list[str]:
        """The notices of this output, in the caller's words: settings it does not take, a depth lowered, an odd
        size padded."""
        fmt, out = self.format, []
        ignored = [(k, v) for k, v in self.given if not fmt.takes(k)]
        if ignored:
            words = " ".join(said(k, v) for k, v in ignored)
            ignored = [k for k, _ in ignored]
            takes = [k for k in ("crf", "preset", "pix_fmt") if fmt.takes(k)]
            out.append(f"{words}: {output} is {fmt.title}, which takes no {_names(ignored)}; "
                       f"{'it is' if len(ignored) == 1 else 'they are'} ignored"
                       + (f" (it takes {_names(takes)})" if takes else ""))
        if input_bits > self.bits:
            deeper = [f.title for f in FORMATS.values() if max(f.depths) >= input_bits and available(f)
                      and not f.folder][:3]
            out.append(f"{output}: the input has {input_bits}-bit colour and {fmt.title} is written at {self.bits} "
                       f"bits here" + (f" ({said('pix_fmt', self.pix_fmt)})" if self.pix_fmt_given else "")
                       + (f"; {', '.join(deeper)} keep{'s' if len(deeper) == 1 else ''} {input_bits}"
                          if deeper else ""))
        pad = self.pad(width, height)
        if any(pad):
            exact = _exact(self.pix_fmt)
            keeps = (f"{said('pix_fmt', exact)} keeps the exact size" if exact in fmt.pix_fmts else
                     f"{fmt.title} has no 4:4:4 here; {said('codec', 'h264')} or {said('codec', 'hevc')} with "
                     f"{said('pix_fmt', exact)} keeps the exact size")
            out.append(f"{output}: odd frame size {width}x{height} padded to {width + pad[0]}x{height + pad[1]} for "
                       f"{self.pix_fmt} (what players decode); {keeps}")
        return out

    @property
    def pix_fmt_given(self) -> bool:
        return any(k == "pix_fmt" for k, _ in self.given)

    def check_frames(self, output: Path, fps: Fraction, width: int, height: int) -> None:
        """Refuse a frame rate the output's container cannot time, or a size its encoder cannot take (one line,
        before any work)."""
        bad = self.format.bad_widths
        coded = width + self.pad(width, height)[0]
        if bad is not None and bad[0] <= coded <= bad[1]:
            raise UserError(f"{output}: frames {coded} pixels wide, which {self.format.title} cannot encode here "
                            f"(widths {bad[0]} to {bad[1]}); choose another {arg('codec')}")
        box = self.container
        if box is not None and box.max_fps is not None and fps > box.max_fps:
            raise UserError(f"{output}: {float(fps):g} fps is faster than {box.name} can time (its timestamps are "
                            f"milliseconds: at most {box.max_fps} fps); write .mp4 or a folder of frames")


def crf_help() -> str:
    """The CRF range and default of each format that takes one, for ``--help`` and a CRF that is no number."""
    return ", ".join(f"{f.name} {f.crf[0]}-{f.crf[1]} (default {f.crf[2]})" for f in FORMATS.values() if f.crf)


def preset_help() -> str:
    """The presets of each format, for ``--help``: names as ranges where they are numbers."""
    groups: dict[tuple, list[str]] = {}
    for f in FORMATS.values():
        if f.presets:
            groups.setdefault((f.presets, f.preset), []).append(f.name)
    parts = []
    for (presets, default), names in groups.items():
        span = f"{presets[0]}-{presets[-1]}" if presets[0].isdigit() else f"{presets[0]} ... {presets[-1]}"
        parts.append(f"{', '.join(names)} {span} (default {default})")
    return "; ".join(parts)


def available(fmt: Format) -> bool:
    return fmt.available() is None


def _exact(pix_fmt: str) -> str:
    return pix_fmt.replace("420", "444").replace("422", "444")


def _names(settings: list[str]) -> str:
    words = {"crf": "CRF", "preset": "preset", "pix_fmt": "pixel format"}
    return " or ".join(words[s] for s in settings)
