// The pages: the study list (Search), a study's series, and a series in the stack, MPR or 3D view.
// Routes live in the fragment: #/ (studies), #/study/UID, #/study/UID/series/UID/(stack|mpr|3d).

import { auth, configure, dicomJson, picture, pool, setToken, showBlob } from './api.js';
import { date, personName, seriesFrames, value, values, volumeBox } from './dicom.js';
import { MprView } from './mpr.js';
import { StackView } from './stack.js';
import { element } from './ui.js';
import { VolumeView } from './volume.js';

const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');
const thumbnails = pool(4); // at most four thumbnails rendered at once for one list
const MODES = [['stack', 'Stack'], ['mpr', 'MPR'], ['3d', '3D']];
const STUDY_FIELDS = 'StudyDescription,ModalitiesInStudy,NumberOfStudyRelatedSeries,NumberOfStudyRelatedInstances';
let view = null;
let metadataCache = { key: null, frames: null };

const esc = encodeURIComponent;

function thumbnail(path, size) {
  const img = element('img', { class: 'thumb', alt: '', width: size, height: size, loading: 'lazy' });
  thumbnails(() => picture(`${path}/thumbnail?viewport=${size},${size}`))
    .then((blob) => showBlob(img, blob))
    .catch(() => img.classList.add('missing')); // e.g. a series with nothing to show (404)
  return img;
}

async function studyList() {
  crumbs.textContent = 'Studies';
  const search = element('input', {
    type: 'search', placeholder: 'Patient name', 'aria-label': 'Patient name',
    value: sessionStorage.getItem('lite-search') || '',
  });
  const list = element('ul', { class: 'studies' });
  main.append(element('div', { class: 'search' }, search), list);
  const load = async () => {
    sessionStorage.setItem('lite-search', search.value);
    const name = search.value.trim();
    const filter = name ? `&PatientName=${esc(`*${name}*`)}&fuzzymatching=true` : '';
    const studies = await dicomJson(`/studies?includefield=${STUDY_FIELDS}&limit=200${filter}`);
    list.replaceChildren(...studies.map((ds) => {
      const uid = value(ds, '0020000D');
      return element('li', {}, element('a', { href: `#/study/${esc(uid)}`, class: 'study', 'data-uid': uid },
        thumbnail(`/studies/${uid}`, 64),
        element('span', { class: 'who' }, personName(ds, '00100010') || '(no name)',
          element('small', {}, value(ds, '00100020') || '')),
        element('span', { class: 'what' }, value(ds, '00081030') || '(no description)',
          element('small', {}, `${date(value(ds, '00080020'))} · ${values(ds, '00080061').join(', ')}`
            + ` · ${value(ds, '00201206') ?? '?'} series, ${value(ds, '00201208') ?? '?'} instances`))));
    }));
    if (!studies.length) list.append(element('li', { class: 'empty' }, 'No study matches.'));
  };
  let timer = 0;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => load().catch(show), 300); });
  await load();
}

async function studyPage(study) {
  const series = await dicomJson(`/studies/${study}/series?includefield=SeriesDescription`);
  crumbs.replaceChildren(element('a', { href: '#/' }, 'Studies'), ' › ', 'Study');
  series.sort((a, b) => (value(a, '00200011') || 0) - (value(b, '00200011') || 0));
  main.append(element('ul', { class: 'series' }, ...series.map((ds) => {
    const uid = value(ds, '0020000E');
    const link = (mode) => `#/study/${esc(study)}/series/${esc(uid)}/${mode}`;
    return element('li', { 'data-uid': uid },
      element('a', { href: link('stack'), class: 'open' }, thumbnail(`/studies/${study}/series/${uid}`, 128),
        element('span', {}, `${value(ds, '00080060') || ''} ${value(ds, '0008103E') || '(no description)'}`),
        element('small', {}, `Series ${value(ds, '00200011') ?? '?'} · ${value(ds, '00201209') ?? '?'} instances`)),
      element('span', { class: 'modes' }, ...MODES.map(([mode, text]) => element('a', { href: link(mode) }, text))));
  })));
}

async function seriesPage(study, series, mode) {
  const base = `/studies/${study}/series/${series}`;
  crumbs.replaceChildren(element('a', { href: '#/' }, 'Studies'), ' › ',
    element('a', { href: `#/study/${esc(study)}` }, 'Study'), ' › ', 'Series');
  const toolbar = element('div', { class: 'toolbar' }, element('span', { class: 'modes' },
    ...MODES.map(([m, text]) => element('a', { href: `#/study/${esc(study)}/series/${esc(series)}/${m}`,
      'aria-current': m === mode ? 'page' : undefined }, text))));
  const area = element('div', { class: 'view' });
  main.append(toolbar, area);
  if (metadataCache.key !== base) { // switching views keeps the series' metadata
    metadataCache = { key: base, frames: seriesFrames(await dicomJson(`${base}/metadata`)) };
  }
  const frames = metadataCache.frames;
  if (!frames.length) throw new Error('This series has no images.');
  if (mode === 'stack') {
    view = new StackView(area, toolbar, base, frames);
    return;
  }
  const box = volumeBox(frames);
  if (!box) {
    // Not a volume as far as the metadata shows: the server's answer says why (or draws it after all).
    await picture(`${base}/renderedmpr?viewport=64,64`);
    throw new Error('The series is a volume for the server, but its metadata lacks the geometry to navigate it.');
  }
  const View = mode === 'mpr' ? MprView : VolumeView;
  view = new View(area, toolbar, base, box, frames[Math.floor(frames.length / 2)]);
}

function show(error) {
  main.querySelector('.view')?.remove(); // nothing to view: the message takes its place
  main.append(element('p', { class: 'error', role: 'alert' }, error.message));
}

async function route() {
  view?.close();
  view = null;
  main.replaceChildren();
  main.className = '';
  const [page, study, , series, mode] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  try {
    if (page === 'study' && series) {
      main.className = 'viewer';
      await seriesPage(study, series, MODES.some(([m]) => m === mode) ? mode : 'stack');
    } else if (page === 'study') {
      await studyPage(study);
    } else {
      await studyList();
    }
  } catch (error) {
    show(error);
  }
}

function tokenForm() {
  const dialog = document.getElementById('token');
  const input = dialog.querySelector('input');
  const note = dialog.querySelector('.note');
  const open = (text) => {
    note.textContent = text || 'The token is kept for this browser tab and sent as a Bearer header.';
    input.value = auth.token;
    dialog.hidden = false;
    input.focus();
  };
  auth.needed = open;
  document.getElementById('token-button').addEventListener('click', () => open());
  dialog.querySelector('.save').addEventListener('click', () => { setToken(input.value); dialog.hidden = true; route(); });
  dialog.querySelector('.clear').addEventListener('click', () => { setToken(''); input.value = ''; });
  dialog.querySelector('.close').addEventListener('click', () => { dialog.hidden = true; });
}

tokenForm();
window.addEventListener('hashchange', route);
configure().then(route, show);
