"""Volume rendering (PS3.18 §8.3.5.3.3 volume_rendered): orthographic ray casting, front to back, shaded.

Rays are cast through a reduced level of the volume (``Volume.rendering_level``: block means, each axis at most about
160 voxels, made once and kept with the volume), one trilinear sample per slice along the principal axis (see
``shear``: about the level's voxel size). Each sample is classified by a transfer function (tables as data: CT
in Hounsfield units, anything else a ramp over the volume's value range), lit by a headlight on the local
gradient (Phong: ambient, two-sided diffuse, specular), and composited front to back. The image is made at the
level's ray density and warped (bilinear) to the output size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import Camera, Volume, resolve_size
from .shear import Shear, plan
from .spread import SERIAL, Spread

_LUT_SIZE = 4096


@dataclass(frozen=True, slots=True)
class TransferFunction:
    """Control points: modality value -> (red, green, blue) in [0, 1] and opacity per mm of ray."""

    values: tuple[float, ...]
    colours: tuple[tuple[float, float, float], ...]
    opacity_per_mm: tuple[float, ...]


# CT (Hounsfield units): air and lung transparent, fat faint yellow, soft tissue a faint translucent red, bone
# ivory to white and nearly opaque: the "bone and soft tissue" look of clinical workstations.
CT_TRANSFER = TransferFunction(
    values=(-1024.0, -500.0, -200.0, -80.0, 20.0, 60.0, 140.0, 220.0, 400.0, 1000.0, 3071.0),
    colours=((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.75, 0.6, 0.4), (0.85, 0.7, 0.45), (0.75, 0.3, 0.25),
             (0.8, 0.35, 0.3), (0.88, 0.55, 0.45), (0.93, 0.85, 0.72), (0.96, 0.92, 0.82), (1.0, 0.98, 0.92),
             (1.0, 1.0, 1.0)),
    opacity_per_mm=(0.0, 0.0, 0.0, 0.001, 0.004, 0.006, 0.02, 0.25, 0.6, 0.9, 0.95),
)

# Lighting of the headlight (the light sits at the camera): ambient + diffuse |n.v| + specular |n.v|^shininess.
AMBIENT, DIFFUSE, SPECULAR, SHININESS = 0.2, 0.65, 0.2, 24  # at most ~1: facing white bone is white (_shine)


def generic_transfer(lo: float, hi: float) -> TransferFunction:
    """A grey ramp over [lo, hi]: the lowest fifth transparent, then more opaque and brighter up to hi."""
    span = max(hi - lo, 1e-6)
    return TransferFunction(
        values=(lo, lo + 0.2 * span, lo + 0.5 * span, lo + span),  # lo + span, not hi: a constant volume has a ramp
        colours=((0.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.8, 0.8, 0.8), (1.0, 1.0, 1.0)),
        opacity_per_mm=(0.0, 0.0, 0.05, 0.5),
    )


def transfer_for(volume: Volume, modality: str | None) -> TransferFunction:
    if (modality or "").upper() == "CT":
        return CT_TRANSFER
    lo, hi = volume.value_range()
    return generic_transfer(lo, hi)


def _tables(volume: Volume, tf: TransferFunction, step_mm: float) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(stored low, LUT index per stored unit, opacity per sample (N,), colour (N, 3)) on a stored-value LUT."""
    m_lo, m_hi = tf.values[0], tf.values[-1]
    grid = np.linspace(m_lo, m_hi, _LUT_SIZE)
    alpha_mm = np.interp(grid, tf.values, tf.opacity_per_mm)
    alpha = (1.0 - np.power(1.0 - np.clip(alpha_mm, 0.0, 0.999999), step_mm)).astype(np.float32)
    colour = np.stack([np.interp(grid, tf.values, [c[n] for c in tf.colours]) for n in range(3)], axis=1)
    # modality = stored * slope + intercept: the LUT index of a stored value s is (s - s_lo) * scale.
    slope = volume.slope if volume.slope != 0 else 1.0
    s_lo = (m_lo - volume.intercept) / slope
    scale = (_LUT_SIZE - 1) / (m_hi - m_lo) * slope
    if scale < 0:  # a negative slope reverses the table
        s_lo, scale = (m_hi - volume.intercept) / slope, -scale
        alpha, colour = alpha[::-1].copy(), colour[::-1].copy()
    return s_lo, scale, alpha, colour.astype(np.float32)


def _composite(volume: Volume, data: np.ndarray, shear: Shear, tf: TransferFunction,
               direction: np.ndarray, spread: Spread) -> tuple[np.ndarray, np.ndarray]:
    """(premultiplied colour (U1, U2, 3), opacity (U1, U2)) of the intermediate image.

    Colour is kept as three planes and looked up in three flat tables: gathering rows of a (N, 3) table, and a
    float power, cost more than all the other steps of a sample together.
    """
    s_lo, scale, alpha_lut, colour_table = _tables(volume, tf, shear.step_mm)
    channels = [np.ascontiguousarray(colour_table[:, c]) for c in range(3)]
    lo = np.float32(volume.stored_range()[0])
    g = shear.gradient
    to_view = (g.T @ direction).astype(np.float32)  # world gradient . view = to_view . sheared gradient
    metric = (g.T @ g).astype(np.float32)  # |world gradient|^2 = sheared^T metric sheared
    # Gradients under about 15 HU/mm (stored units per mm) are noise: those samples are lit as if facing the light.
    slope = abs(volume.slope) or 1.0
    flat = np.float32(15.0 / slope)
    lut_top = _LUT_SIZE - 1
    sign = 1.0 if shear.forward else -1.0  # the slice gradient d/dn, with n increasing front to back

    def work(slices: range) -> tuple[np.ndarray, np.ndarray]:
        colour = np.zeros((3, *shear.shape), dtype=np.float32)
        white = np.zeros(shear.shape, dtype=np.float32)  # the specular light, the same in every channel
        opacity = np.zeros(shear.shape, dtype=np.float32)
        buffers: dict[int, np.ndarray] = {}
        source = shear.reader(data)

        def samples(n: int) -> np.ndarray:
            found = buffers.get(n)
            if found is None:
                found = np.full(shear.shape, lo, dtype=np.float32)
                if 0 <= n < shear.count:
                    got = shear.resampled(source, n)
                    if got is not None:
                        (a, b, c, d), block = got
                        found[a:b, c:d] = block
                buffers[n] = found
            return found

        step = 1 if shear.forward else -1
        for n in slices:
            for old in [m for m in buffers if abs(m - n) > 1]:
                del buffers[old]
            here = samples(n)
            index = np.clip((here - np.float32(s_lo)) * np.float32(scale), 0, lut_top).astype(np.int32)
            alpha = alpha_lut[index]
            alpha *= 1.0 - opacity  # what still shows through the samples in front
            rows = np.flatnonzero(alpha.max(axis=1) > 1e-4)
            if rows.size == 0:
                continue
            cols = np.flatnonzero(alpha[rows[0]:rows[-1] + 1].max(axis=0) > 1e-4)
            r0, r1 = max(rows[0], 1), min(rows[-1] + 1, shear.shape[0] - 1)
            c0, c1 = max(cols[0], 1), min(cols[-1] + 1, shear.shape[1] - 1)
            if r1 <= r0 or c1 <= c0:
                continue
            box = (slice(r0, r1), slice(c0, c1))
            gu1 = (here[r0 + 1:r1 + 1, c0:c1] - here[r0 - 1:r1 - 1, c0:c1]) * np.float32(0.5)
            gu2 = (here[r0:r1, c0 + 1:c1 + 1] - here[r0:r1, c0 - 1:c1 - 1]) * np.float32(0.5)
            gn = (samples(n + step)[box] - samples(n - step)[box]) * np.float32(0.5 * sign)
            along = to_view[0] * gu1 + to_view[1] * gu2 + to_view[2] * gn
            norm2 = (metric[0, 0] * gu1 * gu1 + metric[1, 1] * gu2 * gu2 + metric[2, 2] * gn * gn
                     + 2 * (metric[0, 1] * gu1 * gu2 + metric[0, 2] * gu1 * gn + metric[1, 2] * gu2 * gn))
            norm = np.sqrt(np.maximum(norm2, 0))
            facing = np.abs(along) / np.maximum(norm, np.float32(1e-6))
            strength = np.minimum(norm / flat, np.float32(1.0))
            facing = np.float32(1.0) - strength * (np.float32(1.0) - facing)
            light = (np.float32(AMBIENT) + np.float32(DIFFUSE) * facing)
            a = alpha[box]
            white[box] += a * _shine(facing)
            lit = a * light
            where = index[box]
            for plane, table in zip(colour, channels, strict=True):
                plane[box] += lit * table[where]
            opacity[box] += a
        colour += white
        return colour, opacity

    parts = shear.over_slices(work, spread)
    colour, opacity = parts[0]
    for c_back, a_back in parts[1:]:
        # "over": the back run shows through what the front runs left transparent
        colour += (1.0 - opacity) * c_back
        opacity += (1.0 - opacity) * a_back
    return np.moveaxis(colour, 0, -1), opacity


def _shine(facing: np.ndarray) -> np.ndarray:
    """SPECULAR * facing ** SHININESS by repeated squaring: a float power is ten times slower.

    Below 0.05 the term is under 1e-31 either way; keeping facing above it keeps the products off denormal numbers,
    which are slower still.
    """
    base = np.maximum(facing, np.float32(0.05))
    result: np.ndarray = np.full_like(base, np.float32(SPECULAR))
    exponent = SHININESS
    while exponent:
        if exponent & 1:
            result *= base
        exponent >>= 1
        if exponent:
            base *= base
    return result


def volume_render(volume: Volume, camera: Camera, *, modality: str | None = None,
                  size: tuple[int, int] | None = None, spacing: float | None = None,
                  preview: bool = False, spread: Spread = SERIAL) -> np.ndarray:
    """A shaded volume rendering, uint8 (rows, cols, 3) RGB on black (rays through nothing stay black).

    A ``preview`` is cast through the preview level (the rendering level halved once more, opacity corrected for
    its longer steps): a quarter of the time, softer, for pictures shown while a view is being turned.
    """
    size, spacing = resolve_size(volume, camera, "volume_rendered", size, spacing)
    data, affine = volume.preview_level() if preview else volume.rendering_level()
    # Rays are cast at the level's density (the intermediate image is on its voxel grid); the warp goes straight
    # to the output pixels.
    shear = plan(data.shape, affine, camera, size, spacing)
    colour, _ = _composite(volume, data, shear, transfer_for(volume, modality), camera.direction, spread)
    image = shear.warp(colour, size, 0.0)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)

