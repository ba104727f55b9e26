"""Rendered media type encoders and the iccprofile parameter, checked by decoding their output."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from dicomweb_origin.errors import BadRequest, NotAcceptable
from dicomweb_origin.render import ENCODERS, apply_icc, encode, profile
from tests.support.render_reference import decoded_frame, read

GREY = decoded_frame(read("JPGLosslessP14SV1_1s_1f_8b.dcm"))[::8, ::8].copy()  # real 8-bit pixels
COLOUR = decoded_frame(read("US1_UNCR.dcm"))[::4, ::4].copy()


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _markers(jpeg: bytes) -> list[int]:
    found, i = [], 2
    while i < len(jpeg) and jpeg[i] == 0xFF:
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        found.append(marker)
        if marker == 0xDA:
            break
        i += 2 + length
    return found


@pytest.mark.parametrize("image", [GREY, COLOUR], ids=["grey", "colour"])
def test_jpeg_is_baseline_8_bit(image: np.ndarray) -> None:
    """PS3.18 §8.7.4: image/jpeg is baseline: SOF0 (0xFFC0), 8 bits, no progressive/arithmetic SOF."""
    data = encode([image], "image/jpeg")
    markers = _markers(data)
    assert 0xC0 in markers and not {0xC1, 0xC2, 0xC3, 0xC9, 0xCA} & set(markers)
    sof = data.index(b"\xff\xc0")
    assert data[sof + 4] == 8  # sample precision
    decoded = np.asarray(_open(data)).astype(int)
    assert decoded.shape == image.shape and np.abs(decoded - image).mean() < 3


def test_jpeg_quality_changes_the_size() -> None:
    """quality 1-100 (§8.3.5.1.2): lower quality, fewer bytes."""
    assert len(encode([COLOUR], "image/jpeg", quality=10)) < len(encode([COLOUR], "image/jpeg", quality=95))
    with pytest.raises(BadRequest, match="quality"):
        encode([COLOUR], "image/jpeg", quality=0)


@pytest.mark.parametrize("image", [GREY, COLOUR], ids=["grey", "colour"])
def test_png_is_lossless(image: np.ndarray) -> None:
    decoded = _open(encode([image], "image/png"))
    assert decoded.format == "PNG" and np.array_equal(np.asarray(decoded), image)


def test_gif_animates_several_images() -> None:
    """image/gif holds every frame, each lasting frame_time_ms, looping forever."""
    frames = [np.roll(GREY, 5 * i, axis=1) for i in range(4)]
    gif = _open(encode(frames, "image/gif", frame_time_ms=40))
    assert gif.n_frames == 4 and gif.info["loop"] == 0  # type: ignore[attr-defined]  # Pillow's stubs lack n_frames
    for i in range(4):
        gif.seek(i)
        assert gif.info["duration"] == 40
        assert np.array_equal(np.asarray(gif.convert("L")), frames[i])  # 256 greys: exact


def test_gif_colour_palette_is_close() -> None:
    decoded = np.asarray(_open(encode([COLOUR], "image/gif")).convert("RGB")).astype(int)
    assert np.abs(decoded - COLOUR).mean() < 3


def test_single_image_types_refuse_several() -> None:
    with pytest.raises(NotAcceptable):
        encode([GREY, GREY], "image/jpeg")
    with pytest.raises(NotAcceptable):
        encode([GREY], "image/tiff")


@pytest.mark.parametrize("image", [GREY, COLOUR], ids=["grey", "colour"])
def test_jp2_has_the_jp2_box_and_is_lossless_by_default(image: np.ndarray) -> None:
    data = encode([image], "image/jp2")
    assert data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n"  # JP2 signature box (ISO 15444-1 I.5.1)
    assert np.array_equal(np.asarray(_open(data)), image)
    lossy = encode([image], "image/jp2", quality=30)
    assert len(lossy) < len(data) and np.abs(np.asarray(_open(lossy)).astype(int) - image).mean() < 8


def test_webp() -> None:
    decoded = np.asarray(_open(encode([COLOUR], "image/webp")).convert("RGB")).astype(int)
    assert np.abs(decoded - COLOUR).mean() < 4


def test_the_table_says_what_each_type_carries() -> None:
    assert [t for t, e in ENCODERS.items() if e.multiframe] == ["image/gif"]
    assert {t for t, e in ENCODERS.items() if e.lossy} == {"image/jpeg", "image/jp2", "image/webp"}
    assert {t for t, e in ENCODERS.items() if not e.icc} == {"image/gif"}
    with pytest.raises(BadRequest, match="ICC"):  # §8.3.5.1.5: a type that cannot embed one
        encode([COLOUR], "image/gif", icc_profile=profile("srgb"))


def _jp2_icc(data: bytes) -> bytes | None:
    i = 0
    while i < len(data):
        length, kind = struct.unpack(">I4s", data[i:i + 8])
        if kind == b"jp2h":
            j = i + 8
            while j < i + length:
                sub, sub_kind = struct.unpack(">I4s", data[j:j + 8])
                if sub_kind == b"colr" and data[j + 8] == 2:
                    return data[j + 11:j + sub]
                j += sub
        i += length
    return None


@pytest.mark.parametrize("media_type", ["image/jpeg", "image/png", "image/jp2", "image/webp"])
def test_icc_profile_is_embedded(media_type: str) -> None:
    """JPEG APP2, PNG iCCP, JP2 colour box (method 2), WebP ICCP carry the profile byte for byte."""
    icc = profile("adobergb")
    data = encode([COLOUR], media_type, icc_profile=icc)
    embedded = _jp2_icc(data) if media_type == "image/jp2" else _open(data).info.get("icc_profile")
    assert embedded == icc
    assert np.asarray(_open(data)).shape == COLOUR.shape


# Published matrices: sRGB (IEC 61966-2-1) linear RGB -> XYZ D65; XYZ D65 -> Adobe RGB (1998) linear;
# Bradford-adapted sRGB -> XYZ D50 and XYZ D50 -> ROMM RGB (ISO 22028-2, inverse of its RGB -> XYZ).
SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
XYZ_TO_ADOBE = np.array([[2.04159, -0.56501, -0.34473], [-0.96924, 1.87597, 0.04156],
                         [0.01344, -0.11836, 1.01517]])
SRGB_TO_XYZ_D50 = np.array([[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169],
                            [0.0139322, 0.0971045, 0.7141733]])
ROMM_TO_XYZ = np.array([[0.7977, 0.1352, 0.0313], [0.2880, 0.7119, 0.0001], [0.0, 0.0, 0.8249]])


def _srgb_linear(v: np.ndarray) -> np.ndarray:
    v = v / 255
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


COLOURS = np.array([[[0, 255, 0], [255, 0, 0], [30, 90, 200], [200, 180, 60], [128, 128, 128]]], np.uint8)


def test_conversion_to_adobe_rgb() -> None:
    """iccprofile=adobergb: sRGB pixels converted with the Adobe RGB (1998) matrix and gamma 563/256."""
    out, icc = apply_icc(COLOURS, None, "adobergb")
    linear = np.clip(_srgb_linear(COLOURS[0].astype(float)) @ SRGB_TO_XYZ.T @ XYZ_TO_ADOBE.T, 0, 1)
    expected = 255 * linear ** (256 / 563)
    assert icc == profile("adobergb") and np.abs(out[0].astype(int) - expected).max() <= 2


def test_conversion_to_romm_rgb() -> None:
    """iccprofile=rommrgb: to ROMM RGB (D50 primaries, gamma 1.8)."""
    out, icc = apply_icc(COLOURS, None, "rommrgb")
    xyz = _srgb_linear(COLOURS[0].astype(float)) @ SRGB_TO_XYZ_D50.T
    expected = 255 * np.clip(xyz @ np.linalg.inv(ROMM_TO_XYZ).T, 0, 1) ** (1 / 1.8)
    assert icc == profile("rommrgb") and np.abs(out[0].astype(int) - expected).max() <= 2


def test_profiles_are_valid_icc() -> None:
    """The written profiles load in LittleCMS as RGB display profiles with the right white point."""
    for name in ("srgb", "adobergb", "rommrgb"):
        cms = ImageCms.ImageCmsProfile(io.BytesIO(profile(name)))
        assert cms.profile.xcolor_space == "RGB " and cms.profile.device_class == "mntr"
        assert cms.profile.version < 4 or name == "srgb"
    white = ImageCms.ImageCmsProfile(io.BytesIO(profile("adobergb"))).profile.media_white_point
    assert white is not None
    assert np.allclose(white[0], (0.9505, 1.0, 1.0889), atol=1e-3)


def test_no_yes_and_conversion_from_a_source_profile() -> None:
    """no: nothing embedded; yes: the source profile (sRGB without one); srgb from an Adobe RGB source."""
    assert apply_icc(COLOURS, profile("adobergb"), "no") == (COLOURS, None)
    assert apply_icc(COLOURS, profile("adobergb"), "yes")[1] == profile("adobergb")
    assert apply_icc(COLOURS, None, "yes")[1] == profile("srgb")
    adobe, _ = apply_icc(COLOURS, None, "adobergb")
    back, icc = apply_icc(adobe, profile("adobergb"), "srgb")
    assert icc == profile("srgb") and np.abs(back.astype(int) - COLOURS).max() <= 2
    grey, icc = apply_icc(GREY, None, "srgb")
    assert grey.shape == (*GREY.shape, 3) and icc == profile("srgb")
    with pytest.raises(BadRequest, match="iccprofile"):
        apply_icc(COLOURS, None, "p3")


# -- image/gif written frame by frame (render/gif.py) ----------------------------------------------------------


def test_gif_frames_read_the_same_in_pillow_and_giflib() -> None:
    """Each frame a real greyscale image, the next ones differing in a box only (written cropped to it)."""
    import imagecodecs

    from dicomweb_origin.render.gif import gif_chunks

    frames = [GREY]
    for n in range(1, 5):
        changed = frames[-1].copy()
        changed[4 * n:4 * n + 5, 3:11] = 255 - changed[4 * n:4 * n + 5, 3:11]
        frames.append(changed)
    data = b"".join(gif_chunks(iter(frames), 40))
    gif = _open(data)
    assert gif.n_frames == 5  # type: ignore[attr-defined]  # Pillow's stubs lack n_frames
    giflib = imagecodecs.gif_decode(data)  # giflib composes the frames itself: an independent reader
    for index, frame in enumerate(frames):
        gif.seek(index)
        assert np.array_equal(np.asarray(gif.convert("L")), frame)
        assert np.array_equal(giflib[index][..., 0], frame)


def test_gif_merges_identical_frames_and_keeps_the_rate() -> None:
    from dicomweb_origin.render.gif import gif_chunks

    a, b = GREY, 255 - GREY
    gif = _open(b"".join(gif_chunks([a, a, a, b, b], 33.3)))
    durations = []
    for index in range(gif.n_frames):  # type: ignore[attr-defined]  # Pillow's stubs lack n_frames
        gif.seek(index)
        durations.append(gif.info["duration"])
    assert gif.n_frames == 2 and durations == [100, 70]  # type: ignore[attr-defined]  # Pillow stubs lack n_frames; 3 x 33.3 ms, then 2 (rounded on the cumulative time)


def test_gif_colour_frames_each_have_their_palette() -> None:
    from dicomweb_origin.render.gif import gif_chunks

    frames = [COLOUR, COLOUR[::-1].copy()]
    gif = _open(b"".join(gif_chunks(frames, None)))
    for index, frame in enumerate(frames):
        gif.seek(index)
        decoded = np.asarray(gif.convert("RGB")).astype(int)
        assert np.abs(decoded - frame.astype(int)).mean() < 6


def test_gif_is_produced_one_frame_at_a_time() -> None:
    """The first bytes come before the later frames are made: nothing holds the animation."""
    from dicomweb_origin.render.gif import gif_chunks

    made = []

    def frames():
        for n in range(3):
            made.append(n)
            yield (GREY + n).astype(np.uint8)

    chunks = gif_chunks(frames(), 100)
    assert next(chunks).startswith(b"GIF89a") and made == [0]
    next(chunks)
    assert made == [0, 1]
