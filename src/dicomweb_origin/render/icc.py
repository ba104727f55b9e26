"""The ``iccprofile`` parameter (PS3.18 §8.3.5.1.5): embed or convert to a well-known colour space.

sRGB comes from LittleCMS (``ImageCms.createProfile("sRGB")``). Adobe RGB (1998) and ROMM RGB
(ISO 22028-2) are written here as ICC v2 matrix/TRC display profiles from their published
primaries, white point and gamma (Adobe RGB: 563/256, D65; ROMM RGB: 1.8, D50), colorants
Bradford-adapted to the D50 connection space as ICC.1 requires. Greyscale images asked for a
profile become RGB (three equal channels), since the profiles are RGB ones.
"""

from __future__ import annotations

import io
import struct
from functools import cache

import numpy as np
from PIL import Image, ImageCms

from ..errors import BadRequest

Array = np.ndarray

D50 = (0.9642, 1.0, 0.8249)  # the ICC profile connection space illuminant
D65 = (0.95047, 1.0, 1.08883)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])

# name -> (description, primaries xy R, G, B, white XYZ, gamma as u8Fixed8 numerator)
SPACES: dict[str, tuple[str, tuple[tuple[float, float], ...], tuple[float, float, float], int]] = {
    "adobergb": ("Adobe RGB (1998) compatible", ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), D65, 563),
    "rommrgb": ("ROMM RGB (ISO 22028-2) compatible",
                ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), D50, round(1.8 * 256)),
}
REQUESTS = ("no", "yes", "srgb", "adobergb", "rommrgb")


def rgb_to_xyz(primaries: tuple[tuple[float, float], ...], white: tuple[float, float, float]) -> Array:
    """The RGB → XYZ matrix of a space from its primaries' chromaticities and white point."""
    p = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    return p * np.linalg.solve(p, np.array(white))


def adapt(source_white: tuple[float, float, float], target_white: tuple[float, float, float]) -> Array:
    """The Bradford chromatic adaptation matrix between two white points."""
    cone_s, cone_t = _BRADFORD @ np.array(source_white), _BRADFORD @ np.array(target_white)
    return np.asarray(np.linalg.inv(_BRADFORD) @ np.diag(cone_t / cone_s) @ _BRADFORD)


def _s15(values: tuple[float, ...] | Array) -> bytes:
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in values)


def _text_description(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"  # ICC.1:2001 textDescriptionType (v2)
    return (b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text
            + b"\0" * 8 + b"\0\0\0" + b"\0" * 67)


def matrix_trc_profile(description: str, primaries: tuple[tuple[float, float], ...],
                       white: tuple[float, float, float], gamma_u8f8: int) -> bytes:
    """Write an ICC v2 RGB display profile: colorants (D50-adapted), white point, one gamma curve."""
    colorants = adapt(white, D50) @ rgb_to_xyz(primaries, white)
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, gamma_u8f8) + b"\0\0"
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _text_description(description)),
        (b"cprt", b"text\0\0\0\0No copyright, use freely\0"),
        (b"wtpt", b"XYZ \0\0\0\0" + _s15(white)),
        *((sig, b"XYZ \0\0\0\0" + _s15(colorants[:, i])) for i, sig in enumerate((b"rXYZ", b"gXYZ", b"bXYZ"))),
        *((sig, curve) for sig in (b"rTRC", b"gTRC", b"bTRC")),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = [struct.pack(">I", len(tags))], b""
    placed: dict[bytes, int] = {}
    for sig, body in tags:
        if body not in placed:  # the three TRC tags share one curve
            placed[body] = offset + len(data)
            data += body + b"\0" * (-len(body) % 4)
        table.append(sig + struct.pack(">II", placed[body], len(body)))
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + _s15(D50) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128
    return header + b"".join(table) + data


@cache
def profile(name: str) -> bytes:
    """The ICC profile of a well-known colour space (``srgb``, ``adobergb``, ``rommrgb``)."""
    if name == "srgb":
        return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    return matrix_trc_profile(*SPACES[name])


@cache
def _transform(source: bytes, target: str) -> ImageCms.ImageCmsTransform:
    try:
        source_profile = ImageCms.ImageCmsProfile(io.BytesIO(source))
    except (OSError, ImageCms.PyCMSError) as exc:
        raise BadRequest(f"the instance's ICC profile cannot be used: {exc}") from exc
    target_profile = ImageCms.ImageCmsProfile(io.BytesIO(profile(target)))
    return ImageCms.buildTransform(source_profile, target_profile, "RGB", "RGB",
                                   ImageCms.Intent.RELATIVE_COLORIMETRIC)


def apply_icc(image: Array, source_profile: bytes | None, request: str | None) -> tuple[Array, bytes | None]:
    """Return the pixels to encode and the profile to embed for an ``iccprofile`` value (or None).

    None (parameter absent) embeds the source profile when there is one; ``no`` embeds nothing;
    ``yes`` embeds the source profile or sRGB; a colour space converts from the source (sRGB when
    it has none) to that space and embeds its profile.
    """
    if request is None:
        return image, source_profile if image.ndim == 3 else None
    if request not in REQUESTS:
        raise BadRequest(f"iccprofile value {request!r} is not one of {', '.join(REQUESTS)}")
    if request == "no":
        return image, None
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if request == "yes":
        return image, source_profile or profile("srgb")
    source = source_profile or profile("srgb")
    if source == profile(request):
        return image, source
    converted = ImageCms.applyTransform(Image.fromarray(image), _transform(source, request))
    assert converted is not None
    return np.asarray(converted), profile(request)
