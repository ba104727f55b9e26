// The 3D view: Rendered 3D pictures (PS3.18 §10.4.1.1.8) of the volume seen from a camera that turns about its
// centre as the user drags; volume rendering or MIP (renderingmethod, §8.3.5.3.3), preset views from each side.

import { HttpError, Latest, picture, query, showBlob } from './api.js';
import { camera, cross, fit, letters, rotate, unit } from './dicom.js';
import {
  DRAG, FULL_QUALITY, Pane, choice, dragScale, dragWindow, element, windowMenu, windowParam,
} from './ui.js';
import { centred, describe } from './mpr.js';

// The sides of §8.3.5.3.4 (orientation a p r l h f): the view direction and up in LPS.
const VIEWS = {
  A: [[0, 1, 0], [0, 0, 1]], P: [[0, -1, 0], [0, 0, 1]], R: [[1, 0, 0], [0, 0, 1]],
  L: [[-1, 0, 0], [0, 0, 1]], H: [[0, 0, -1], [0, -1, 0]], F: [[0, 0, 1], [0, -1, 0]],
};
const DEGREES_PER_PIXEL = 0.5;

export class VolumeView {
  constructor(parent, toolbar, base, box, frame) {
    this.base = base;
    this.box = box;
    [this.direction, this.up] = VIEWS.A;
    this.method = 'volume_rendered';
    this.window = null;
    this.own = frame.window ? [frame.window.center, frame.window.width] : [40, 400];
    this.banner = element('p', { class: 'banner', hidden: true });
    parent.append(this.banner);
    this.pane = new Pane(parent, '3D');
    this.pane.el.classList.add('single');
    this.loader = new Latest((shown) => this.display(shown), (error) => {
      if (error instanceof HttpError && error.status === 400) {
        this.banner.textContent = error.message;
        this.banner.hidden = false;
      } else {
        this.pane.message(error.message);
      }
    });
    const views = choice('View', Object.keys(VIEWS).map((k) => [k, k]), 'A', (k) => {
      [this.direction, this.up] = VIEWS[k];
      this.request(false);
    });
    toolbar.append(
      choice('Rendering', [['volume_rendered', 'Volume'], ['maximum_ip', 'MIP']], this.method,
        (method) => { this.method = method; this.request(false); }),
      views,
      windowMenu(frame.modality, (w) => { this.window = w; if (this.method !== 'volume_rendered') this.request(false); }),
    );
    this.pane.gestures({
      drag: (phase, e) => {
        if (phase === 'end') { this.request(false); return; }
        if (phase === 'start') return;
        views.pick('');
        if (e.button === 2) {
          const { ratio } = this.pane.size();
          this.window = dragWindow(this.window || this.own, e.dx * ratio, e.dy * ratio);
        } else {
          this.turn(e.dx, e.dy);
        }
        this.request(true);
      },
    });
    this.resize = new ResizeObserver(() => this.request(false));
    this.resize.observe(this.pane.el);
  }

  close() {
    this.resize.disconnect();
  }

  /** Turn the volume as if grabbed: the camera turns the other way about the picture's up and right axes. */
  turn(dx, dy) {
    const right = cross(this.direction, this.up);
    const a = (-dx * DEGREES_PER_PIXEL * Math.PI) / 180, b = (-dy * DEGREES_PER_PIXEL * Math.PI) / 180;
    this.direction = unit(rotate(this.direction, this.up, a));
    this.direction = unit(rotate(this.direction, right, b));
    this.up = unit(rotate(this.up, right, b));
  }

  request(low) {
    const size = this.pane.size();
    const right = cross(this.direction, this.up);
    const centre = this.box.centre;
    const full = fit(this.box, centre, right, this.up, size.vw, size.vh);
    const factor = dragScale(full.width, full.height, low);
    const vw = Math.max(16, Math.round(size.vw * factor)), vh = Math.max(16, Math.round(size.vh * factor));
    const fitted = fit(this.box, centre, right, this.up, vw, vh);
    const path = `${this.base}/rendered3d${query({
      ...camera(centre, this.direction, this.up, this.box.diagonal),
      viewport: `${vw},${vh}`,
      renderingmethod: this.method,
      window: this.method === 'volume_rendered' ? undefined : windowParam(this.window),
      quality: low ? DRAG.quality : FULL_QUALITY,
    })}`;
    const view = { right, up: this.up, fitted, full, size };
    this.loader.want(path, async () => ({ blob: await picture(path), view }));
  }

  async display({ blob, view }) {
    await showBlob(this.pane.img, blob);
    centred(this.pane, view.size, view.fitted, view.full);
    describe(this.pane.img, this.box.centre, view.right, view.up, view.fitted);
    this.pane.letters(view.right, view.up, letters);
    this.pane.message('');
    this.banner.hidden = true;
  }
}
