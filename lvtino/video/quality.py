"""How much noise a compressed video carries, read from its own bitstream.

H.264 and HEVC decoders export each frame's quantiser (QP) per block
(``export_side_data=venc_params``). The quantiser step is Qstep = 0.625 * 2^(QP / 6)
in 8-bit units; the error it leaves in the decoded pixels grows more slowly than the
step (dead zone, skipped blocks, in-loop deblocking):

    sigma_8bit ~= 1.3 * Qstep ** 0.55

fitted (within 6 %) to the measured error of the Adobe240 street frames shrunk 4x
and encoded by libx264 at crf 18 to 45 (``scripts/bench_real_footage.py
--noise``), where sigma went from 4.9 to 25 grey levels. It is a calibration on
one clip and one encoder: a level to set the data term by, not a metric. Codecs
that export no quantiser (lossless, intra-only image codecs, frame folders) give
None and the caller keeps its default.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

log = logging.getLogger("lvtino")

SCALE = 1.3
POWER = 0.55
FLOOR = 0.5  # grey levels: 8-bit rounding of a lossless encode


@dataclass(frozen=True)
class Compression:
    qp: float           # the mean quantiser over the frames read
    noise_std: float    # the estimated error, in lvtino's [-1, 1] range
    frames: int         # frames read


def noise_from_qp(qp: float) -> float:
    """The pixel error (std, [-1, 1] range) an H.264/HEVC quantiser ``qp`` leaves, by the calibration above."""
    step = 0.625 * 2.0 ** (qp / 6.0)
    grey = math.hypot(FLOOR, SCALE * step ** POWER) if qp > 0 else FLOOR
    return grey / 127.5


H264_PARAMS = 1  # FFmpeg's AV_VIDEO_ENC_PARAMS_H264: the one quantiser scale the calibration is for


def compression_noise(path: str | Path, frames: int = 32, stream: int = 0) -> Compression | None:
    """The quantiser of the first ``frames`` frames of video stream ``stream`` of a file and the noise it means;
    None where the codec exports none, or one on another scale (VP9's, with a notice)."""
    path = Path(path)
    if path.is_dir():
        return None
    qps = []
    try:
        with av.open(str(path)) as container:
            vs = container.streams.video[stream]
            vs.codec_context.options = {"export_side_data": "venc_params"}
            for frame in container.decode(vs):
                params = [d for d in frame.side_data if d.type == av.sidedata.sidedata.Type.VIDEO_ENC_PARAMS]
                if not params:
                    return None
                if int(params[0].codec_type) != H264_PARAMS:
                    log.info("%s: its quantiser is not on H.264's scale (%s): the compression noise is not "
                             "estimated", path, vs.codec_context.name)
                    return None
                qps.append(_mean_qp(params[0]))
                if len(qps) >= frames:
                    break
    except (av.error.FFmpegError, AttributeError, RuntimeError, ValueError) as err:
        log.info("%s: the compression noise cannot be estimated (%s)", path, err)
        return None
    if not qps:
        return None
    qp = float(np.mean(qps))
    return Compression(qp=qp, noise_std=noise_from_qp(qp), frames=len(qps))


def _mean_qp(params) -> float:
    qp_map = params.qp_map() if callable(params.qp_map) else params.qp_map
    values = np.asarray(qp_map, dtype=np.float64)
    return float(values.mean()) if values.size else float(params.qp)
