// Every request the viewer makes: DICOMweb under the configured root, the token (given once) as a Bearer header.

const TOKEN_KEY = 'dicomweb-origin-lite-token';
let root = '';
export const auth = { token: sessionStorage.getItem(TOKEN_KEY) || '', needed: () => {} };

export async function configure() {
  const response = await fetch('config.json');
  root = (await response.json()).root;
}

export function setToken(token) {
  auth.token = token.trim();
  if (auth.token) sessionStorage.setItem(TOKEN_KEY, auth.token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(path, accept) {
  const headers = { Accept: accept };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  const response = await fetch(root + path, { headers });
  if (!response.ok) {
    // The server's Status Report is one short line of text: show it as it is (e.g. why a series is no volume).
    const text = (await response.text()).trim() || `${response.status} ${response.statusText}`;
    if (response.status === 401 || response.status === 403) auth.needed(text);
    throw new HttpError(response.status, text);
  }
  return response;
}

export async function dicomJson(path) {
  const response = await request(path, 'application/dicom+json');
  const text = await response.text();
  return text ? JSON.parse(text) : [];
}

/** A rendered picture (JPEG) as a Blob. */
export async function picture(path) {
  return (await request(path, 'image/jpeg')).blob();
}

export function query(params) {
  const parts = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${k}=${encodeURIComponent(v).replace(/%2C/g, ',')}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

/** Show a picture in an <img> only once decoded (no flicker); the previous object URL is released. */
export async function showBlob(img, blob) {
  const url = URL.createObjectURL(blob);
  const next = new Image();
  next.src = url;
  try {
    await next.decode();
  } catch (error) {
    URL.revokeObjectURL(url);
    throw error;
  }
  const old = img.dataset.url;
  img.src = url;
  img.dataset.url = url;
  if (old) URL.revokeObjectURL(old);
}

/**
 * At most one request in flight; while it runs only the newest wish is kept, sent when it ends (latest wins).
 * `want(key, make)`: make() returns a promise of what `show` displays; a key already shown is not asked again.
 */
export class Latest {
  constructor(show, fail) {
    this.show = show;
    this.fail = fail;
    this.next = null;
    this.busy = false;
    this.shown = null;
  }

  want(key, make) {
    this.next = { key, make };
    if (!this.busy) this.pump();
  }

  async pump() {
    this.busy = true;
    while (this.next) {
      const { key, make } = this.next;
      this.next = null;
      if (key === this.shown) continue;
      try {
        await this.show(await make(), key);
        this.shown = key;
      } catch (error) {
        this.fail(error, key);
      }
    }
    this.busy = false;
  }
}

/** Run at most `limit` of the queued jobs at once (thumbnails of a long list). */
export function pool(limit) {
  const waiting = [];
  let running = 0;
  const step = () => {
    while (running < limit && waiting.length) {
      const [job, done] = waiting.shift();
      running += 1;
      job().then(done.resolve, done.reject).finally(() => { running -= 1; step(); });
    }
  };
  return (job) => new Promise((resolve, reject) => { waiting.push([job, { resolve, reject }]); step(); });
}
