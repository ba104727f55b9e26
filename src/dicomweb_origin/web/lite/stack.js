// The stack view: one frame at a time through the Rendered resources (PS3.18 §10.4.1.1.3), zoom and pan as the
// `viewport` source region, window and annotation as their parameters, cine for multi-frame.

import { Latest, picture, query, showBlob } from './api.js';
import { letters } from './dicom.js';
import {
  DRAG, FULL_QUALITY, Pane, choice, dragScale, dragWindow, element, windowMenu, windowParam,
} from './ui.js';

const CACHE = 96; // full-quality pictures kept (Blobs), so scrolling back and cine loops are instant

export class StackView {
  constructor(parent, toolbar, base, frames) {
    this.base = base;
    this.frames = frames;
    this.index = Math.floor(frames.length / 2);
    this.tool = 'scroll';
    this.window = null; // null: the data set's own (no window parameter)
    this.annotation = false;
    this.zoom = 1;
    this.centre = null; // image pixel at the pane's centre (null: the image's centre)
    this.dragging = false;
    this.cache = new Map();
    this.pane = new Pane(parent, 'Stack');
    this.pane.el.classList.add('single');
    this.loader = new Latest((shown) => this.display(shown), (error) => this.pane.message(error.message));
    const first = frames[this.index];
    const colour = !first.photometric.startsWith('MONOCHROME');
    toolbar.append(
      choice('Tool', [['scroll', 'Scroll'], ['window', 'W/L'], ['zoom', 'Zoom'], ['pan', 'Pan']], this.tool,
        (tool) => { this.tool = tool; }),
      colour ? null : windowMenu(first.modality, (w) => { this.window = w; this.request(); }),
      element('button', { type: 'button', 'aria-pressed': 'false', onclick: (e) => {
        this.annotation = !this.annotation;
        e.target.setAttribute('aria-pressed', String(this.annotation));
        this.request();
      } }, 'Annotation'),
      frames.length > 1 ? element('button', { type: 'button', class: 'cine', 'aria-pressed': 'false',
        onclick: (e) => this.cine(e.target) }, 'Cine') : null,
      element('button', { type: 'button', onclick: () => { this.zoom = 1; this.centre = null; this.request(); } },
        'Reset'),
    );
    this.pane.gestures({
      drag: (phase, e) => this.drag(phase, e),
      pinch: (scale, dx, dy, phase) => this.pinch(scale, dx, dy, phase),
      wheel: (steps, e) => (steps === 0 ? this.settle() : e.ctrlKey ? this.zoomBy(steps < 0 ? 1.1 : 1 / 1.1)
        : this.go(this.index + steps)),
    });
    this.keys = (e) => {
      if (e.target.closest?.('input, select, textarea')) return; // the keys are the control's there
      const move = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 }[e.key];
      if (move) { e.preventDefault(); this.go(this.index + move); }
      if (e.key === 'Home') this.go(0);
      if (e.key === 'End') this.go(this.frames.length - 1);
    };
    document.addEventListener('keydown', this.keys);
    this.resize = new ResizeObserver(() => this.request());
    this.resize.observe(this.pane.el);
  }

  close() {
    document.removeEventListener('keydown', this.keys);
    this.resize.disconnect();
    clearInterval(this.timer);
  }

  go(index) {
    this.index = Math.max(0, Math.min(this.frames.length - 1, index));
    this.request();
  }

  drag(phase, e) {
    this.dragging = phase !== 'end';
    if (phase === 'end') { this.settle(); return; }
    if (phase === 'start') { this.travel = 0; return; }
    const tool = e.button === 2 ? 'window' : e.button === 1 ? 'pan' : this.tool;
    if (tool === 'scroll') {
      this.travel += e.dy;
      const steps = Math.trunc(this.travel / 8); // a slice per 8 CSS pixels
      if (steps) { this.travel -= steps * 8; this.go(this.index + steps); }
    } else if (tool === 'window') {
      const frame = this.frames[this.index];
      this.window = dragWindow(this.window || (frame.window ? [frame.window.center, frame.window.width]
        : [40, 400]), e.dx, e.dy);
      this.request();
    } else if (tool === 'zoom') {
      this.zoomBy(Math.exp(-e.dy / 100));
    } else {
      this.panBy(e.dx, e.dy);
    }
  }

  pinch(scale, dx, dy, phase) {
    this.dragging = phase !== 'end';
    if (phase === 'end') { this.settle(); return; }
    this.panBy(dx, dy);
    this.zoomBy(scale);
  }

  zoomBy(factor) {
    this.zoom = Math.max(1, Math.min(16, this.zoom * factor));
    this.request();
  }

  panBy(dx, dy) {
    const { frame, scale } = this.layout();
    const [cx, cy] = this.centre || [frame.columns / 2, frame.rows / 2];
    const { ratio } = this.pane.size();
    this.centre = [Math.max(0, Math.min(frame.columns, cx - (dx * ratio) / scale)),
      Math.max(0, Math.min(frame.rows, cy - (dy * ratio) / scale))];
    this.request();
  }

  settle() {
    this.dragging = false;
    this.request();
  }

  cine(button) {
    const playing = !this.timer;
    button.setAttribute('aria-pressed', String(playing));
    clearInterval(this.timer);
    this.timer = null;
    if (!playing) return;
    const ms = this.frames[this.index].frameTime || 100;
    this.timer = setInterval(() => this.go((this.index + 1) % this.frames.length), Math.max(ms, 33));
  }

  /** Device pixels per image pixel, and the image region the pane shows (may reach beyond the image). */
  layout() {
    const frame = this.frames[this.index];
    const { vw, vh } = this.pane.size();
    const scale = Math.min(vw / frame.columns, vh / frame.rows) * this.zoom;
    const [cx, cy] = this.centre || [frame.columns / 2, frame.rows / 2];
    return { frame, vw, vh, scale, x0: cx - vw / (2 * scale), y0: cy - vh / (2 * scale) };
  }

  request() {
    const { frame, vw, vh, scale, x0, y0 } = this.layout();
    // The source region is what the pane shows, cut to the image (§8.3.5.1.3 wants it inside the image).
    const floor = (v) => Math.floor(v * 1000) / 1000;
    const sx = floor(Math.max(0, x0)), sy = floor(Math.max(0, y0));
    const sw = floor(Math.min(frame.columns, x0 + vw / scale) - sx), sh = floor(Math.min(frame.rows, y0 + vh / scale) - sy);
    const low = dragScale(sw * scale, sh * scale, this.dragging);
    const width = Math.max(1, Math.round(sw * scale * low)), height = Math.max(1, Math.round(sh * scale * low));
    const whole = sx === 0 && sy === 0 && sw === frame.columns && sh === frame.rows;
    const target = `${this.base}/instances/${frame.instance}${frame.frame ? `/frames/${frame.frame}` : ''}/rendered`;
    const path = target + query({
      viewport: whole ? `${width},${height}` : [width, height, sx, sy, sw, sh].join(','),
      window: windowParam(this.window),
      annotation: this.annotation ? 'patient,technique' : undefined,
      quality: this.dragging ? DRAG.quality : FULL_QUALITY,
    });
    const { ratio } = this.pane.size();
    const place = [(sx - x0) * scale / ratio, (sy - y0) * scale / ratio, sw * scale / ratio, sh * scale / ratio];
    const index = this.index;
    this.loader.want(path, async () => ({ blob: await this.fetch(path, !this.dragging), place, index }));
  }

  async fetch(path, keep) {
    const found = this.cache.get(path);
    if (found) return found;
    const blob = await picture(path);
    if (keep) {
      this.cache.set(path, blob);
      if (this.cache.size > CACHE) this.cache.delete(this.cache.keys().next().value);
    }
    return blob;
  }

  async display({ blob, place, index }) {
    await showBlob(this.pane.img, blob);
    this.pane.place(...place);
    this.pane.message('');
    const frame = this.frames[index];
    if (frame.orientation) {
      const row = frame.orientation.slice(0, 3), column = frame.orientation.slice(3);
      this.pane.letters(row, column.map((x) => -x), letters);
    }
    const w = this.window ? ` · W ${Math.round(this.window[1])} L ${Math.round(this.window[0])}` : '';
    this.pane.note.textContent = `${index + 1} / ${this.frames.length}${w}${this.zoom > 1 ? ` · ${this.zoom.toFixed(1)}×` : ''}`;
    this.pane.el.dataset.index = String(index + 1);
  }
}
