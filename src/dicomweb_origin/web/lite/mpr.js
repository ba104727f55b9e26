// The MPR view: three planes through one point, each a Rendered MPR picture (PS3.18 §10.4.1.1.7) asked for by its
// camera triple (§8.3.5.3.5-7). The plane of a pane passes through the point; its picture stays centred on the
// volume. Crosshairs show where the other planes cut it; moving them moves those planes, rotating them makes the
// other two planes oblique. mprslab and renderingmethod (§8.3.5.3.3, .8) make a slab MIP / MinIP / average.

import { HttpError, Latest, picture, query, showBlob } from './api.js';
import { add, camera, cross, dot, fit, letters, mul, rotate, sub, unit } from './dicom.js';
import {
  DRAG, FULL_QUALITY, Pane, choice, dragScale, dragWindow, element, selector, svg, windowMenu, windowParam,
} from './ui.js';

// How radiologists read each plane (§8.3.5.3.4): the view direction and up in LPS; the picture's right is
// direction x up. Axial from the feet with anterior up (the patient's left on the right), coronal from the front
// and sagittal from the patient's left, head up.
const PLANES = [
  ['Axial', [0, 0, 1], [0, -1, 0], '#4aa3ff'],
  ['Coronal', [0, 1, 0], [0, 0, 1], '#4fdc7a'],
  ['Sagittal', [-1, 0, 0], [0, 0, 1], '#ffb347'],
];
const SLABS = [[0, 'Thin'], [5, 'Slab 5 mm'], [10, 'Slab 10 mm'], [20, 'Slab 20 mm'], [50, 'Slab 50 mm']];

/** Where a picture of `fitted` size goes: centred, in CSS pixels at the scale of the full picture. */
export function centred(pane, size, fitted, full) {
  const perMm = 1 / (full.spacing * size.ratio);
  const width = fitted.width * fitted.spacing * perMm, height = fitted.height * fitted.spacing * perMm;
  pane.place((size.width - width) / 2, (size.height - height) / 2, width, height);
}

/** What a picture shows, for tests and tools: LPS centre, axes and mm per picture pixel. */
export function describe(img, lookat, right, up, fitted) {
  Object.assign(img.dataset, {
    lookat: lookat.join(','), right: right.join(','), up: up.join(','), spacing: String(fitted.spacing),
    expected: `${fitted.width},${fitted.height}`,
  });
}

export class MprView {
  constructor(parent, toolbar, base, box, frame) {
    this.base = base;
    this.box = box;
    this.point = box.centre.slice();
    this.slab = 0;
    this.method = 'average_ip';
    this.window = null;
    this.own = frame.window ? [frame.window.center, frame.window.width] : [40, 400];
    this.tool = 'cross';
    this.dragging = false;
    this.banner = element('p', { class: 'banner', hidden: true });
    this.grid = element('div', { class: 'grid' });
    parent.append(this.banner, this.grid);
    this.planes = PLANES.map(([name, direction, up, colour]) => {
      const plane = { name, direction, up, colour, pane: new Pane(this.grid, name) };
      plane.loader = new Latest((shown) => this.display(plane, shown), (error) => this.failed(plane, error));
      plane.pane.gestures({
        drag: (phase, e) => this.drag(plane, phase, e),
        wheel: (steps) => this.scroll(plane, steps),
        double: () => this.maximise(plane),
      });
      return plane;
    });
    this.grid.append(element('div', { class: 'help' }, 'Drag: move the crosshairs (Rotate: tilt the other planes).'
      + ' Wheel: move the plane. Right drag: window. Double tap: enlarge.'));
    toolbar.append(
      choice('Tool', [['cross', 'Crosshair'], ['rotate', 'Rotate'], ['window', 'W/L']], this.tool,
        (tool) => { this.tool = tool; }),
      windowMenu(frame.modality, (w) => { this.window = w; this.refresh(false); }),
      selector('Slab thickness', SLABS, 0, (mm) => { this.slab = Number(mm); this.refresh(false); }),
      choice('Slab method', [['average_ip', 'Average'], ['maximum_ip', 'MIP'], ['minimum_ip', 'MinIP']],
        this.method, (method) => { this.method = method; if (this.slab) this.refresh(false); }),
      element('button', { type: 'button', onclick: () => this.reset() }, 'Reset'),
    );
    this.resize = new ResizeObserver(() => this.refresh(false));
    this.resize.observe(this.grid);
  }

  close() {
    this.resize.disconnect();
  }

  reset() {
    this.point = this.box.centre.slice();
    PLANES.forEach(([, direction, up], n) => Object.assign(this.planes[n], { direction, up }));
    this.refresh(false);
  }

  geometry(plane) {
    const { direction, up } = plane;
    const right = cross(direction, up);
    const centre = this.box.centre;
    const lookat = add(centre, mul(direction, dot(sub(this.point, centre), direction)));
    const size = plane.pane.size();
    return { direction, up, right, lookat, size, full: fit(this.box, lookat, right, up, size.vw, size.vh) };
  }

  refresh(low, planes = this.planes) {
    for (const plane of planes) this.request(plane, low);
    for (const plane of this.planes) this.cross(plane);
  }

  request(plane, low) {
    const g = this.geometry(plane);
    const factor = dragScale(g.full.width, g.full.height, low);
    const vw = Math.max(16, Math.round(g.size.vw * factor)), vh = Math.max(16, Math.round(g.size.vh * factor));
    const fitted = fit(this.box, g.lookat, g.right, g.up, vw, vh);
    const path = `${this.base}/renderedmpr${query({
      ...camera(g.lookat, g.direction, g.up, this.box.diagonal),
      viewport: `${vw},${vh}`,
      mprslab: this.slab || undefined,
      renderingmethod: this.slab ? this.method : undefined,
      window: windowParam(this.window),
      quality: low ? DRAG.quality : FULL_QUALITY,
    })}`;
    plane.loader.want(path, async () => ({ blob: await picture(path), g, fitted }));
  }

  async display(plane, { blob, g, fitted }) {
    await showBlob(plane.pane.img, blob);
    centred(plane.pane, plane.pane.size(), fitted, this.geometry(plane).full);
    describe(plane.pane.img, g.lookat, g.right, g.up, fitted);
    plane.pane.message('');
    this.banner.hidden = true;
  }

  failed(plane, error) {
    if (error instanceof HttpError && error.status === 400) {
      this.banner.textContent = error.message; // e.g. why this series cannot be a volume
      this.banner.hidden = false;
    } else {
      plane.pane.message(error.message);
    }
  }

  /** The crosshairs (the other planes' lines through the point) and the orientation letters of a pane. */
  cross(plane) {
    const g = this.geometry(plane);
    const { width, height, ratio } = g.size;
    const perMm = 1 / (g.full.spacing * ratio);
    const offset = sub(this.point, g.lookat);
    const cx = width / 2 + dot(offset, g.right) * perMm, cy = height / 2 - dot(offset, g.up) * perMm;
    plane.screen = { cx, cy, perMm, g };
    const overlay = plane.pane.overlay;
    overlay.replaceChildren();
    overlay.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const reach = width + height, gap = 12;
    for (const other of this.planes) {
      if (other === plane) continue;
      const line = cross(plane.direction, other.direction); // where the other plane cuts this one
      let ux = dot(line, g.right), uy = -dot(line, g.up);
      const n = Math.hypot(ux, uy) || 1;
      [ux, uy] = [ux / n, uy / n];
      for (const s of [1, -1]) {
        overlay.append(svg('line', {
          x1: cx + s * ux * gap, y1: cy + s * uy * gap, x2: cx + s * ux * reach, y2: cy + s * uy * reach,
          stroke: other.colour, 'stroke-width': 1.5, 'stroke-opacity': 0.85,
        }));
      }
    }
    plane.pane.el.style.setProperty('--plane', plane.colour);
    plane.pane.letters(g.right, g.up, letters);
  }

  /** The LPS point under (x, y) CSS pixels of a pane (on its plane). */
  at(plane, x, y) {
    const { perMm, g } = plane.screen;
    return add(add(g.lookat, mul(g.right, (x - g.size.width / 2) / perMm)), mul(g.up, -(y - g.size.height / 2) / perMm));
  }

  clamp(point) {
    return point.map((v, i) => Math.max(this.box.low[i], Math.min(this.box.high[i], v)));
  }

  drag(plane, phase, e) {
    const tool = e.button === 2 ? 'window' : this.tool;
    const others = this.planes.filter((p) => p !== plane);
    if (phase === 'end') {
      this.dragging = false;
      this.refresh(false);
      return;
    }
    this.dragging = true;
    const { cx, cy } = plane.screen;
    const angle = Math.atan2(-(e.y - cy), e.x - cx); // counter-clockwise on screen, from the picture's right
    if (phase === 'start') {
      plane.angle = angle;
      if (tool !== 'cross') return;
    }
    if (tool === 'cross') {
      this.point = this.clamp(this.at(plane, e.x, e.y));
      this.refresh(true, others);
    } else if (tool === 'rotate') {
      // Counter-clockwise on screen turns from right to up: about -direction (right x up = -direction).
      const turn = -(angle - plane.angle);
      plane.angle = angle;
      for (const other of others) {
        other.direction = unit(rotate(other.direction, plane.direction, turn));
        other.up = unit(rotate(other.up, plane.direction, turn));
      }
      this.refresh(true, others);
    } else {
      const { ratio } = plane.pane.size();
      this.window = dragWindow(this.window || this.own, e.dx * ratio, e.dy * ratio);
      this.refresh(true);
    }
  }

  scroll(plane, steps) {
    if (steps === 0) { this.refresh(false); return; }
    this.point = this.clamp(add(this.point, mul(plane.direction, steps * this.box.finest)));
    this.refresh(true, [plane]);
  }

  maximise(plane) {
    const on = !plane.pane.el.classList.contains('max');
    for (const p of this.planes) p.pane.el.classList.toggle('max', on && p === plane);
    this.grid.classList.toggle('maxed', on);
  }
}
