"""Video instances as video/mp4 and as single RGB frames, with PyAV (FFmpeg bundled in its wheel).

What the Pixel Data of a video transfer syntax holds (all in one fragment, or split across
fragments for the Fragmentable syntaxes: the caller joins them):

* MPEG-2 MP@ML / MP@HL (PS3.5 §8.2.5, §8.2.6): the MPEG-2 video bit stream (ISO/IEC 13818-2);
  in practice an elementary stream (``00 00 01 B3``) or a system stream carrying it with audio
  (Program Stream ``00 00 01 BA`` or Transport Stream).
* MPEG-4 AVC/H.264 (PS3.5 §8.2.7-§8.2.9) and HEVC/H.265 (§8.2.10, §8.2.11): the bit stream in
  an MPEG-2 Transport Stream or an MP4 container, whose PTS/DTS give the timing; some
  modalities store a bare Annex B elementary stream, which FFmpeg also reads.

FFmpeg probes which of these it is, so one reader serves every syntax. H.264 in a container
with timestamps is remuxed into MP4 unchanged; anything else is transcoded to H.264 (libx264).
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from typing import Any

import av
import numpy as np

from dicomweb_origin.errors import BadRequest, DecodeError, NotImplementedFeature
from dicomweb_origin.model.media import TRANSFER_SYNTAXES

# Transfer Syntax UID -> codec of the stream it carries (PS3.5 Annex A, Table A-1): by the media type of each video
# syntax of the table, and the same codec for the Fragmentable variant (".1") of each MPEG-2 and H.264 syntax.
_CODEC_OF_MEDIA_TYPE = {"video/mpeg": "mpeg2video", "video/mp4": "h264", "video/H265": "hevc"}
_VIDEO_SYNTAXES = {ts.uid: _CODEC_OF_MEDIA_TYPE[ts.media_type] for ts in TRANSFER_SYNTAXES.values() if ts.video}
VIDEO_CODECS: dict[str, str] = _VIDEO_SYNTAXES | {
    f"{uid}.1": codec for uid, codec in _VIDEO_SYNTAXES.items() if codec != "hevc"}

# The encoder of every video/mp4 we make: libx264 ships in the PyAV wheel; yuv420p and even
# dimensions are what browsers' H.264 decoders accept.
ENCODER = "libx264"
PIXEL_FORMAT = "yuv420p"
DEFAULT_FRAME_TIME_MS = 1000 / 30
# quality (PS3.18 §8.3.5.1.2, 1..100, 100 best) -> x264 constant rate factor (0 best .. 51 worst)
CRF_AT_QUALITY_1 = 45.0
CRF_AT_QUALITY_100 = 16.0
DEFAULT_CRF = 23


def is_video_transfer_syntax(transfer_syntax_uid: str) -> bool:
    """Say whether the Pixel Data of this syntax is a video stream rather than frames."""
    return transfer_syntax_uid in VIDEO_CODECS


def to_mp4(stream: bytes, transfer_syntax_uid: str, frame_time_ms: float | None = None) -> bytes:
    """Return the video as an MP4 file: H.264 remuxed as it is, other codecs transcoded to H.264.

    ``frame_time_ms`` (Frame Time (0018,1063)) times a stream that carries no timestamps.
    """
    codec = _codec_of(transfer_syntax_uid)
    with _open(stream) as container:
        source = container.streams.video[0]
        if codec == "h264" and source.codec_context.name == "h264":
            packets = [p for p in container.demux(source) if p.size]
            if packets and all(p.pts is not None and p.dts is not None for p in packets):
                return _remux(source, packets)
    return frames_to_mp4(video_frames(stream, transfer_syntax_uid), frame_time_ms or _frame_time_ms(stream), None)


def frames_to_mp4(frames: Iterable[np.ndarray], frame_time_ms: float, quality: int | None = None) -> bytes:
    """Encode frames (uint8, HxW grey or HxWx3 RGB) as H.264 yuv420p in MP4, one per Frame Time."""
    return b"".join(mp4_chunks(frames, frame_time_ms, quality))


def mp4_chunks(frames: Iterable[np.ndarray], frame_time_ms: float, quality: int | None = None) -> Iterator[bytes]:
    """``frames_to_mp4`` taking one frame at a time and yielding the file in chunks: memory holds a frame."""
    if not frame_time_ms > 0:
        raise BadRequest(f"frame time must be positive, not {frame_time_ms}")
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise BadRequest("no frames to encode as video")
    height, width = first.shape[:2]
    even_height, even_width = height + height % 2, width + width % 2
    rate = Fraction(1000 / frame_time_ms).limit_denominator(1001)
    crf = _crf(quality)

    def fill(container: Any) -> None:
        target = container.add_stream(ENCODER, rate=rate)
        target.width, target.height, target.pix_fmt = even_width, even_height, PIXEL_FORMAT
        target.options = {"crf": str(crf), "preset": "veryfast"}
        for pixels in itertools.chain([first], iterator):
            rgb = _even_rgb(pixels, (height, width))
            container.mux(target.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(target.encode(None))

    yield from _mp4_chunks(fill)


def video_frames(stream: bytes, transfer_syntax_uid: str) -> Iterator[np.ndarray]:
    """Yield every decoded frame of the video as an HxWx3 uint8 RGB array, in display order."""
    _codec_of(transfer_syntax_uid)
    with _open(stream) as container:
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as error:
            raise DecodeError(f"video stream cannot be decoded: {error}") from error


def video_frame(stream: bytes, transfer_syntax_uid: str, index: int | None = None) -> np.ndarray:
    """Return one decoded RGB frame (0-based ``index``), the middle one by default (thumbnails)."""
    if index is None:
        index = frame_count(stream, transfer_syntax_uid) // 2
    if index < 0:
        raise BadRequest(f"frame index {index} is negative")
    for position, pixels in enumerate(video_frames(stream, transfer_syntax_uid)):
        if position == index:
            return pixels
    raise BadRequest(f"frame index {index} is past the end of the video")


def frame_count(stream: bytes, transfer_syntax_uid: str) -> int:
    """Count the frames of the video by demuxing its packets, without decoding them."""
    _codec_of(transfer_syntax_uid)
    with _open(stream) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def _codec_of(transfer_syntax_uid: str) -> str:
    """Return the codec that the transfer syntax carries, or refuse a non-video syntax."""
    try:
        return VIDEO_CODECS[transfer_syntax_uid]
    except KeyError:
        raise NotImplementedFeature(f"transfer syntax {transfer_syntax_uid} is not a video syntax") from None


def _open(stream: bytes) -> Any:
    """Open the stream as an FFmpeg input whose format FFmpeg probes (elementary, PS, TS or MP4)."""
    try:
        container = av.open(io.BytesIO(stream), "r")
    except av.FFmpegError as error:
        raise DecodeError(f"video stream cannot be read: {error}") from error
    if not container.streams.video:
        container.close()
        raise DecodeError("the stream holds no video")
    return container


def _remux(source: Any, packets: list[Any]) -> bytes:
    """Copy the H.264 packets, timestamps and all, into a new MP4 container."""
    first_dts = packets[0].dts

    def fill(container: Any) -> None:
        target = container.add_stream_from_template(source)
        for packet in packets:
            # MP4 timestamps start at zero; a Transport Stream's start wherever its clock was
            packet.pts -= first_dts
            packet.dts -= first_dts
            packet.stream = target
            container.mux(packet)

    return _write_mp4(fill)


def _write_mp4(fill: Callable[[Any], None]) -> bytes:
    """Return the MP4 that ``fill`` muxes, with its index (moov) first so players start at once."""
    return b"".join(_mp4_chunks(fill))


def _mp4_chunks(fill: Callable[[Any], None]) -> Iterator[bytes]:
    """Yield the MP4 that ``fill`` muxes in 1 MiB chunks, with its index (moov) first so players start at once.

    FFmpeg's faststart pass reopens the output by name, hence a private temporary file rather than memory.
    """
    with tempfile.TemporaryDirectory(prefix="dicomweb-mp4-") as folder:
        path = os.path.join(folder, "video.mp4")
        with av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as container:
            fill(container)
        with open(path, "rb") as file:
            while chunk := file.read(1 << 20):
                yield chunk


def _frame_time_ms(stream: bytes) -> float:
    """Return the stream's own frame duration in ms, or 30 frames/s when it declares none."""
    with _open(stream) as container:
        rate = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
    return 1000 / float(rate) if rate else DEFAULT_FRAME_TIME_MS


def _crf(quality: int | None) -> int:
    """Map the rendered quality 1..100 onto x264's CRF linearly (PS3.18 §8.3.5.1.2: server-defined)."""
    if quality is None:
        return DEFAULT_CRF
    if not 1 <= quality <= 100:
        raise BadRequest(f"quality {quality} is not in 1..100")
    step = (CRF_AT_QUALITY_1 - CRF_AT_QUALITY_100) / 99
    return round(CRF_AT_QUALITY_1 - (quality - 1) * step)


def _even_rgb(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Return the frame as contiguous uint8 RGB, edge-padded to even height and width (yuv420p)."""
    if pixels.shape[:2] != size:
        raise BadRequest("all frames of a video must have the same size")
    if pixels.dtype != np.uint8:
        raise BadRequest(f"video frames must be uint8, not {pixels.dtype}")
    rgb = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BadRequest(f"video frames must be HxW or HxWx3, not {pixels.shape}")
    pad = ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0))
    return np.ascontiguousarray(np.pad(rgb, pad, mode="edge") if any(p[1] for p in pad) else rgb)
