"""Animated GIF written frame by frame: memory holds one frame, not the animation (GIF89a, W3C/CompuServe 1990).

Pillow's GIF writer keeps every frame until it writes the file (a 1,000-frame 1024² cine held 2 GB). Here Pillow
encodes each frame alone (palette and LZW: what it does well) and this module moves that frame's image into one
animation: the Logical Screen Descriptor, the NETSCAPE2.0 application extension (loop forever), then per frame a
Graphic Control Extension (its delay, disposal "do not dispose") and the Image Descriptor with the frame's colour
table as a Local Color Table. As Pillow does, a frame is cropped to the box in which it differs from the frame
before it, and identical consecutive frames become one frame of their summed delay.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator

import numpy as np
from PIL import Image

DEFAULT_FRAME_TIME_MS = 100.0
_NETSCAPE_LOOP = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop count 0: forever
_DO_NOT_DISPOSE = 1 << 2  # GCE packed field: disposal method 1, in bits 2-4


def _palettized(image: Image.Image) -> Image.Image:
    if image.mode == "L":
        return image  # GIF writes a 256-entry grey palette: exact
    return image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def _sub_blocks(data: bytes, position: int) -> int:
    """The position after a run of data sub-blocks (each a length byte, then that many bytes; 0 ends them)."""
    while (size := data[position]) != 0:
        position += 1 + size
    return position + 1


def _image_block(image: Image.Image, left: int, top: int) -> bytes:
    """The Image Descriptor, Local Color Table and LZW data of one frame, placed at (left, top)."""
    out = io.BytesIO()
    image.save(out, format="GIF", optimize=False)
    data = out.getvalue()
    screen_flags = data[10]
    position = 13
    table = b""
    if screen_flags & 0x80:  # the Global Color Table Pillow wrote becomes this frame's local one
        table_size = 3 << ((screen_flags & 0x07) + 1)
        table, position = data[13:13 + table_size], 13 + table_size
        table_bits = screen_flags & 0x07
    while data[position] == 0x21:  # extensions Pillow may add (comment, graphic control): not ours to keep
        position = _sub_blocks(data, position + 2)
    if data[position] != 0x2C:
        raise ValueError("Pillow wrote a GIF without an image descriptor")
    _, _, width, height, flags = struct.unpack_from("<HHHHB", data, position + 1)
    start = position + 10
    if flags & 0x80:  # a local table of its own
        table_bits = flags & 0x07
        table_size = 3 << (table_bits + 1)
        table, start = data[start:start + table_size], start + table_size
    end = _sub_blocks(data, start + 1)  # LZW minimum code size, then the image data
    packed = 0x80 | (flags & 0x40) | table_bits
    return struct.pack("<BHHHHB", 0x2C, left, top, width, height, packed) + table + data[start:end]


def _changed_box(previous: np.ndarray | None, current: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the pixels that differ from the frame before; None when none do."""
    if previous is None or previous.shape != current.shape:
        return 0, 0, current.shape[1], current.shape[0]
    diff = previous != current
    if diff.ndim == 3:
        diff = diff.any(axis=2)
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff[rows[0]:rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _control(delay_ms: int) -> bytes:
    """A Graphic Control Extension: the frame's delay (centiseconds) and "do not dispose"."""
    return struct.pack("<BBBBHBB", 0x21, 0xF9, 4, _DO_NOT_DISPOSE, max(1, round(delay_ms / 10)), 0, 0)


def gif_chunks(frames: Iterable[np.ndarray], frame_time_ms: float | None = None) -> Iterator[bytes]:
    """Yield an animated GIF of uint8 (rows, cols[, 3]) frames, one frame at a time, looping forever.

    Delays are rounded on the cumulative time, so 33.3 ms frames play at 30/40/30 ms and the animation keeps its
    real rate. At most two frames (the one before, to find what changed, and this one) are held.
    """
    step = frame_time_ms if frame_time_ms and frame_time_ms > 0 else DEFAULT_FRAME_TIME_MS
    previous: np.ndarray | None = None
    pending: bytes | None = None  # the last frame's image block, sent once its delay is known
    pending_since = 0  # when that frame starts, in ms (rounded to 10 ms)
    count = 0
    for count, frame in enumerate(frames, start=1):
        number = count - 1
        frame = np.ascontiguousarray(frame)
        if previous is None:
            height, width = frame.shape[:2]
            yield b"GIF89a" + struct.pack("<HHBBB", width, height, 0x70, 0, 0) + _NETSCAPE_LOOP
        box = _changed_box(previous, frame)
        if box is None:  # the same picture: the frame before lasts longer
            continue
        start = round(number * step / 10) * 10
        if pending is not None:
            yield _control(start - pending_since) + pending
        left, top, right, bottom = box
        part = frame if box == (0, 0, frame.shape[1], frame.shape[0]) else frame[top:bottom, left:right]
        pending, pending_since = _image_block(_palettized(Image.fromarray(np.ascontiguousarray(part))), left, top), start
        previous = frame
    if pending is None:
        raise ValueError("no frame to write")
    end = round(count * step / 10) * 10
    yield _control(max(10, end - pending_since)) + pending + b"\x3b"
