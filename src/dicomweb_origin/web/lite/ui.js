// What the three views share: a pane (picture, overlay, orientation letters, gestures), toolbars, window presets.

// Window presets (center, width in Hounsfield units) offered for CT; other modalities use the data set's own window.
export const PRESETS = { 'Soft tissue': [40, 400], Lung: [-600, 1500], Bone: [400, 1800], Brain: [40, 80] };
// While dragging: half the size, at most 320 pixels a side, and a lower quality (a preview on /rendered3d).
export const DRAG = { factor: 0.5, most: 320, quality: 50 };
/** The scale of a drag picture of w x h pixels (1 for the full picture). */
export const dragScale = (w, h, low) => (low ? Math.min(DRAG.factor, DRAG.most / Math.max(w, h, 1)) : 1);
export const FULL_QUALITY = 90;
const SVG = 'http://www.w3.org/2000/svg';

export function element(tag, attributes = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, v] of Object.entries(attributes)) {
    if (name.startsWith('on')) el.addEventListener(name.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(name, v === true ? '' : v);
  }
  el.append(...children.filter((c) => c !== null && c !== undefined));
  return el;
}

export function svg(tag, attributes = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, v] of Object.entries(attributes)) el.setAttribute(name, v);
  return el;
}

/** A row of buttons of which one is chosen (tools, methods); `choose` is called with the chosen value. */
export function choice(label, options, chosen, choose) {
  const group = element('span', { class: 'choice', role: 'group', 'aria-label': label });
  const pick = (v) => {
    for (const b of group.children) b.setAttribute('aria-pressed', String(b.dataset.value === String(v)));
  };
  for (const [v, text] of options) {
    group.append(element('button', { type: 'button', 'data-value': v, onclick: () => { pick(v); choose(v); } }, text));
  }
  pick(chosen);
  group.pick = pick;
  return group;
}

export function selector(label, options, chosen, choose) {
  const el = element('select', { 'aria-label': label, title: label, onchange: () => choose(el.value) },
    ...options.map(([v, text]) => element('option', { value: v, selected: String(v) === String(chosen) }, text)));
  return el;
}

/** The window menu: the data set's own, then the CT presets (for CT only). */
export function windowMenu(modality, choose) {
  const options = [['', 'Window: default']];
  if (modality === 'CT') options.push(...Object.keys(PRESETS).map((name) => [name, name]));
  return selector('Window preset', options, '', (name) => choose(name ? PRESETS[name] : null));
}

/** Window center/width after a drag of (dx, dy) device pixels: right widens, down raises the center. */
export function dragWindow([center, width], dx, dy) {
  const k = Math.max(width, 10) / 300;
  return [center + dy * k, Math.max(1, width + dx * k)];
}

export const windowParam = (w) => (w ? `${w[0].toFixed(1)},${w[1].toFixed(1)},linear` : undefined);

/** One picture area: an <img>, an SVG overlay, edge letters, a caption, a message; gestures for mouse and touch. */
export class Pane {
  constructor(parent, name) {
    this.img = element('img', { alt: name, draggable: 'false' });
    this.overlay = svg('svg', { class: 'overlay' });
    this.edges = Object.fromEntries(['left', 'right', 'top', 'bottom'].map((s) => [s, element('span', { class: `edge ${s}` })]));
    this.caption = element('span', { class: 'caption' });
    this.note = element('span', { class: 'note' });
    this.text = element('div', { class: 'message', hidden: true });
    this.el = element('div', { class: 'pane', 'data-pane': name },
      this.img, this.overlay, ...Object.values(this.edges), this.caption, this.note, this.text);
    parent.append(this.el);
    this.caption.textContent = name;
  }

  /** CSS and device pixel sizes (pictures are asked for at device pixels, at most twice the CSS size). */
  size() {
    const ratio = Math.min(window.devicePixelRatio || 1, 2);
    const width = Math.max(1, this.el.clientWidth), height = Math.max(1, this.el.clientHeight);
    return { width, height, ratio, vw: Math.round(width * ratio), vh: Math.round(height * ratio) };
  }

  /** Where the picture goes, in CSS pixels of the pane. */
  place(left, top, width, height) {
    Object.assign(this.img.style, { left: `${left}px`, top: `${top}px`, width: `${width}px`, height: `${height}px` });
  }

  letters(right, up, name) {
    this.edges.right.textContent = name(right);
    this.edges.left.textContent = name(right.map((x) => -x));
    this.edges.top.textContent = name(up);
    this.edges.bottom.textContent = name(up.map((x) => -x));
  }

  message(text) {
    this.text.hidden = !text;
    this.text.textContent = text || '';
  }

  /**
   * Gestures: `drag(phase, e)` for one pointer (phase start, move, end; e has x, y, dx, dy in CSS pixels and the
   * mouse button), `pinch(scale, dx, dy, phase)` for two touches, `wheel(steps, e)`, `double()` for a double tap.
   */
  gestures({ drag, pinch, wheel, double }) {
    const down = new Map();
    let last = null, start = null, lastTap = 0;
    const local = (e) => { const r = this.el.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
    const spread = () => { const [a, b] = [...down.values()]; return [Math.hypot(a[0] - b[0], a[1] - b[1]), (a[0] + b[0]) / 2, (a[1] + b[1]) / 2]; };
    this.el.addEventListener('contextmenu', (e) => e.preventDefault());
    this.el.addEventListener('pointerdown', (e) => {
      this.el.setPointerCapture(e.pointerId);
      down.set(e.pointerId, local(e));
      if (down.size === 1) {
        const [x, y] = local(e);
        const now = performance.now();
        if (double && now - lastTap < 300) { double(); lastTap = 0; return; }
        lastTap = now;
        last = [x, y];
        start = { button: e.button, shift: e.shiftKey };
        drag?.('start', { x, y, dx: 0, dy: 0, ...start });
      } else if (down.size === 2) {
        if (start) drag?.('end', { x: last[0], y: last[1], dx: 0, dy: 0, ...start });
        start = null;
        last = spread();
        pinch?.(1, 0, 0, 'start');
      }
      e.preventDefault();
    });
    this.el.addEventListener('pointermove', (e) => {
      if (!down.has(e.pointerId)) return;
      down.set(e.pointerId, local(e));
      if (down.size === 1 && start) {
        const [x, y] = local(e);
        if (Math.abs(x - last[0]) + Math.abs(y - last[1]) > 3) lastTap = 0;
        drag?.('move', { x, y, dx: x - last[0], dy: y - last[1], ...start });
        last = [x, y];
      } else if (down.size === 2) {
        const now = spread();
        pinch?.(now[0] / Math.max(last[0], 1), now[1] - last[1], now[2] - last[2], 'move');
        last = now;
      }
    });
    const up = (e) => {
      if (!down.delete(e.pointerId)) return;
      if (start && down.size === 0) drag?.('end', { x: last[0], y: last[1], dx: 0, dy: 0, ...start });
      if (down.size === 1 && !start) pinch?.(1, 0, 0, 'end');
      start = null;
    };
    this.el.addEventListener('pointerup', up);
    this.el.addEventListener('pointercancel', up);
    let wheelEnd = 0;
    this.el.addEventListener('wheel', (e) => {
      e.preventDefault();
      const steps = Math.sign(e.deltaY) * Math.max(1, Math.round(Math.abs(e.deltaY) / 100));
      wheel?.(steps, e);
      clearTimeout(wheelEnd);
      wheelEnd = setTimeout(() => wheel?.(0, e), 200); // 0: the wheel has stopped
    }, { passive: false });
  }
}
