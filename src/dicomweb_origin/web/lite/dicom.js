// DICOM JSON attributes (PS3.18 Annex F), the frames of a series in order, and the patient-space maths of MPR.

export const value = (ds, tag, n = 0) => ds?.[tag]?.Value?.[n];
export const values = (ds, tag) => ds?.[tag]?.Value || [];
export const item = (ds, tag) => value(ds, tag) || {};

export function personName(ds, tag) {
  const name = value(ds, tag);
  return (name?.Alphabetic || '').replace(/\^+/g, ' ').trim();
}

export function date(text) {
  return /^\d{8}$/.test(text || '') ? `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6)}` : (text || '');
}

// -- vectors in the patient coordinate system (LPS, mm) --------------------------------------------------------
export const add = (a, b) => a.map((x, i) => x + b[i]);
export const sub = (a, b) => a.map((x, i) => x - b[i]);
export const mul = (a, k) => a.map((x) => x * k);
export const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
export const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
export const unit = (a) => mul(a, 1 / Math.hypot(...a));

/** Rodrigues' rotation of v about the unit axis by `radians` (right-handed). */
export function rotate(v, axis, radians) {
  const c = Math.cos(radians), s = Math.sin(radians);
  return add(add(mul(v, c), mul(cross(axis, v), s)), mul(axis, dot(axis, v) * (1 - c)));
}

/** Patient Orientation letters of a direction (PS3.3 C.7.6.1.1.1), strongest first: +x L, +y P, +z H. */
export function letters(v) {
  const names = [['L', 'R'], ['P', 'A'], ['H', 'F']];
  return [0, 1, 2].filter((i) => Math.abs(v[i]) > 0.3).sort((a, b) => Math.abs(v[b]) - Math.abs(v[a]))
    .map((i) => names[i][v[i] > 0 ? 0 : 1]).join('');
}

// -- the frames of a series ------------------------------------------------------------------------------------
const numbers = (list) => (list.length ? list.map(Number) : null);

function window(ds) {
  const c = value(ds, '00281050'), w = value(ds, '00281051');
  return c !== undefined && w !== undefined ? { center: Number(c), width: Number(w) } : null;
}

/**
 * One entry per frame of the series' image instances (series metadata), sorted along the slice normal when every
 * frame has a position and all share an orientation, else by Instance Number and frame number.
 */
export function seriesFrames(metadata) {
  const out = [];
  for (const ds of metadata) {
    if (!ds['00280010'] || !ds['00280011']) continue; // not an image
    const shared = item(ds, '52009229');
    const perFrame = values(ds, '52009230');
    const count = Number(value(ds, '00280008') || 1);
    for (let n = 0; n < count; n++) {
      const own = perFrame[n] || {};
      const pick = (sequence, tag) => value(item(own, sequence), tag) !== undefined
        ? values(item(own, sequence), tag) : values(item(shared, sequence), tag);
      out.push({
        instance: value(ds, '00080018'),
        frame: count > 1 || perFrame.length ? n + 1 : null,
        frames: count,
        number: Number(value(ds, '00200013') || 0),
        rows: Number(value(ds, '00280010')),
        columns: Number(value(ds, '00280011')),
        position: numbers(values(ds, '00200032')) || numbers(pick('00209113', '00200032')),
        orientation: numbers(values(ds, '00200037')) || numbers(pick('00209116', '00200037')),
        spacing: numbers(values(ds, '00280030')) || numbers(pick('00289110', '00280030')),
        window: window(ds) || window(item(own, '00289132')) || window(item(shared, '00289132')),
        photometric: value(ds, '00280004') || '',
        modality: value(ds, '00080060') || '',
        frameTime: Number(value(ds, '00181063') || 0),
      });
    }
  }
  const same = out.length && out.every((f) => f.position && f.orientation?.length === 6
    && f.orientation.every((x, i) => Math.abs(x - out[0].orientation[i]) < 1e-3));
  if (same) {
    const normal = cross(out[0].orientation.slice(0, 3), out[0].orientation.slice(3));
    for (const f of out) f.along = dot(f.position, normal);
    out.sort((a, b) => a.along - b.along);
  } else {
    out.sort((a, b) => a.number - b.number || (a.frame || 0) - (b.frame || 0));
  }
  return out;
}

/** The frames that can be one volume: the largest group sharing orientation, spacing and size, along the normal. */
function volumeFrames(frames) {
  const groups = new Map();
  for (const f of frames) {
    if (!f.position || f.orientation?.length !== 6 || !f.spacing) continue;
    const key = [...f.orientation, ...f.spacing].map((x) => x.toFixed(3)).concat(f.rows, f.columns).join('|');
    groups.set(key, [...(groups.get(key) || []), f]);
  }
  const group = [...groups.values()].sort((a, b) => b.length - a.length)[0] || [];
  const normal = group.length ? cross(group[0].orientation.slice(0, 3), group[0].orientation.slice(3)) : null;
  return group.map((f) => ({ ...f, along: dot(f.position, normal) })).sort((a, b) => a.along - b.along);
}

/**
 * The box the volume fills, as the server assembles it (render/volume/assemble.py): frames along the normal on a
 * uniform grid from the first to the last position, the box half a voxel beyond the outer voxel centres.
 * Null when the frames cannot make one (the server then says why, with a 400).
 */
export function volumeBox(all) {
  const frames = volumeFrames(all);
  if (frames.length < 2) return null;
  const first = frames[0];
  const row = unit(first.orientation.slice(0, 3)), col = unit(first.orientation.slice(3));
  const normal = cross(row, col);
  const range = frames[frames.length - 1].along - first.along;
  const gaps = frames.slice(1).map((f, i) => f.along - frames[i].along).sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)];
  if (!(range > 0) || !(median > 0)) return null;
  const count = Math.round(range / median) + 1;
  const step = range / (count - 1);
  const [di, dj] = [first.spacing[1], first.spacing[0]];
  const axes = [mul(row, di), mul(col, dj), mul(normal, step)];
  const at = (i, j, k) => add(add(add(first.position, mul(axes[0], i)), mul(axes[1], j)), mul(axes[2], k));
  const corners = [];
  for (const i of [-0.5, first.columns - 0.5]) {
    for (const j of [-0.5, first.rows - 0.5]) for (const k of [-0.5, count - 0.5]) corners.push(at(i, j, k));
  }
  const low = [0, 1, 2].map((a) => Math.min(...corners.map((c) => c[a])));
  const high = [0, 1, 2].map((a) => Math.max(...corners.map((c) => c[a])));
  return {
    corners, low, high,
    centre: at((first.columns - 1) / 2, (first.rows - 1) / 2, (count - 1) / 2),
    finest: Math.min(di, dj, step),
    diagonal: Math.hypot(...sub(high, low)),
  };
}

/**
 * Size and spacing of the picture the server renders for `viewport=vw,vh` (retrieve/volumes.py `_size`): the box's
 * footprint about lookat at the finest spacing (coarser beyond 1024 pixels), fitted inside vw x vh.
 */
export function fit(box, lookat, right, up, vw, vh) {
  let halfWidth = 0, halfHeight = 0;
  for (const corner of box.corners) {
    const offset = sub(corner, lookat);
    halfWidth = Math.max(halfWidth, Math.abs(dot(offset, right)));
    halfHeight = Math.max(halfHeight, Math.abs(dot(offset, up)));
  }
  let spacing = box.finest;
  const side = (2 * Math.max(halfWidth, halfHeight)) / spacing;
  if (side > 1024) spacing *= side / 1024;
  const w0 = Math.max(1, Math.ceil((2 * halfWidth) / spacing - 1e-6));
  const h0 = Math.max(1, Math.ceil((2 * halfHeight) / spacing - 1e-6));
  const scale = Math.max(w0 / vw, h0 / vh);
  return {
    width: Math.max(1, Math.min(vw, Math.round(w0 / scale))),
    height: Math.max(1, Math.min(vh, Math.round(h0 / scale))),
    spacing: spacing * scale,
  };
}

/** A camera triple as the Rendered MPR / 3D parameters (PS3.18 §8.3.5.3.5-7). */
export function camera(lookat, direction, up, distance) {
  const text = (v, digits) => v.map((x) => (Math.abs(x) < 1e-9 ? 0 : x).toFixed(digits)).join(',');
  return {
    viewpointposition: text(sub(lookat, mul(direction, distance)), 3),
    viewpointlookat: text(lookat, 3),
    viewpointup: text(up, 6),
  };
}
