// exportd's web page: the catalog with each dataset's fields and a preview of its records, an
// export menu per dataset, "my exports" with live progress, and for administrators the approval
// queue. It calls only the public, documented API (the same a curl user has), sends the token
// kept in the exportd_token cookie as the OSDI-API-Token header, and writes every value that
// comes from the API into the page as text (textContent), never as HTML.
'use strict';

const COOKIE = 'exportd_token';
const CATALOG = '/api/v2/catalog/datasets';
const EXPORTS = '/api/v1/exports';
const LIVE = ['initializing', 'pending_approval', 'queued', 'processing'];
const MOVING = ['initializing', 'queued', 'processing']; // change with nobody acting: followed live
const MAX_FOLLOWED = 4; // long polls at once: a browser opens only six connections to a host
const STATUS_WAIT = 20; // seconds a GET …?wait= may hold for a change of status
const PROGRESS_EVERY = 500; // ms between progress reads while an export is processing
const LISTS_EVERY = 15000; // ms between refreshes of the export lists
const EXPORTS_PER_PAGE = 20;
const VISITOR_KEY = 'exportd_visitor_exports'; // localStorage: the ids of a visitor's exports, newest first
const VISITOR_KEEPS = 20;
const CHOICE_LABELS = { '\t': 'tab', ' ': 'space' };

const state = { user: null, formats: [], datasets: [], dataset: null, exports: new Map(), followed: new Set() };
// the page of exports shown, and its filters: the query of GET /api/v1/exports
const exportsView = { page: 1, pages: 1, status: '', dataset: '' };
let previewRun = 0;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// An element with attributes, listeners (onclick: …) and children; strings become text nodes.
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key === 'className' ? 'class' : key, value === true ? '' : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// --- the token, in a cookie only this site's pages send and read ---------------------------

function token() {
  for (const part of document.cookie.split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === COOKIE) return decodeURIComponent(value.join('='));
  }
  return '';
}

function storeToken(value) {
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = `${COOKIE}=${encodeURIComponent(value)}; Path=/; SameSite=Strict${secure}`;
}

function forgetToken() {
  document.cookie = `${COOKIE}=; Path=/; SameSite=Strict; Max-Age=0`;
}

// --- the API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  const key = token();
  if (key) headers['OSDI-API-Token'] = key;
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = (data && data.message) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message, data && data.error_code);
  }
  return data;
}

const exportId = (exp) => exp._links.self.href.split('/').pop();
const embedded = (page) => (page._embedded && page._embedded['osdi:exports']) || [];

// --- small formatting helpers --------------------------------------------------------------

const number = (n) => (n === null || n === undefined ? '' : Number(n).toLocaleString('en'));

function bytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function countdown(iso) {
  const seconds = Math.floor((Date.parse(iso) - Date.now()) / 1000);
  if (seconds <= 0) return 'expired';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h >= 24) return `in ${Math.floor(h / 24)} d ${h % 24} h`;
  if (h) return `in ${h} h ${String(m).padStart(2, '0')} min`;
  return `in ${m} min ${String(s).padStart(2, '0')} s`;
}

// 2026-12-07T15:15:52Z → 2026-12-07 15:15 UTC: the API's times are UTC, and so is what the page shows.
const shortDate = (iso) => `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;

function cell(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// Only http(s) links on this page: a link from the API never becomes a javascript: URL.
function safeHref(href) {
  try {
    const url = new URL(href, location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function notify(message, kind = 'error') {
  const notice = $('notice');
  notice.textContent = message;
  notice.className = `notice ${kind}`;
  notice.hidden = !message;
}

// --- signing in ----------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const value = $('token').value.trim();
  if (!value) return;
  storeToken(value);
  $('token').value = '';
  notify('');
  await loadUser();
}

function signOut() {
  forgetToken();
  showUser(null);
  notify('Signed out.', 'info');
  loadCatalog();
}

async function loadUser() {
  let user = null;
  if (token()) {
    try {
      user = await api('/api/v1/me');
    } catch (error) {
      if (error.status === 401) forgetToken();
      notify(error.status === 401 ? 'That API token is not valid.' : error.message);
    }
  }
  showUser(user);
  await loadCatalog();
}

function showUser(user) {
  state.user = user;
  $('signin').hidden = Boolean(user);
  $('whoami').hidden = !user;
  $('user-name').textContent = user ? user.name : '';
  $('user-role').hidden = !(user && user.admin);
  $('approvals-section').hidden = !(user && user.admin);
  $('exports-title').textContent = user && user.admin ? 'Exports (all users)' : user ? 'My exports' : 'Your exports (this browser)';
  $('exports').classList.toggle('with-owner', Boolean(user && user.admin));
  Object.assign(exportsView, { page: 1, status: '', dataset: '' });
  $('exports-status').value = '';
  $('exports-dataset').value = '';
  $('exports-filters').hidden = !user; // a visitor's exports are no list the API keeps: no paging, no filter
  $('exports-pager').hidden = !user;
  $('export-signin').hidden = Boolean(user);
  state.exports.clear();
  $('exports').tBodies[0].replaceChildren();
  $('approvals').replaceChildren();
  refreshLists();
}

// --- the catalog and one dataset -----------------------------------------------------------

async function loadCatalog() {
  try {
    state.datasets = (await api(`${CATALOG}?limit=100`)).results;
  } catch (error) {
    notify(`The catalog could not be read: ${error.message}`);
    return;
  }
  renderCatalog();
  renderDatasetFilter();
  await route();
}

function renderCatalog() {
  const wanted = $('catalog-search').value.trim().toLowerCase();
  const current = state.dataset && state.dataset.dataset_id;
  const items = [];
  for (const dataset of state.datasets) {
    const metas = dataset.metas.default;
    const title = metas.title || dataset.dataset_id;
    if (wanted && !`${title} ${dataset.dataset_id}`.toLowerCase().includes(wanted)) continue;
    items.push(el('li', {},
      el('a', { href: `#/datasets/${encodeURIComponent(dataset.dataset_id)}`, 'aria-current': dataset.dataset_id === current ? 'page' : null },
        el('span', { className: 'title', text: title }),
        el('span', { className: 'muted', text: `${number(metas.records_count)} records` }))));
  }
  $('datasets').replaceChildren(...items);
  $('catalog-empty').hidden = items.length > 0;
}

async function route() {
  const match = location.hash.match(/^#\/datasets\/(.+)$/);
  if (!match) return;
  const id = decodeURIComponent(match[1]);
  if (!state.dataset || state.dataset.dataset_id !== id) await showDataset(id);
}

async function showDataset(id) {
  const base = `${CATALOG}/${encodeURIComponent(id)}`;
  let dataset;
  let fitting;
  try {
    [dataset, fitting] = await Promise.all([api(base), api(`${base}/exports`)]);
  } catch (error) {
    notify(error.message);
    return;
  }
  state.dataset = dataset;
  renderCatalog();
  const metas = dataset.metas.default;
  $('welcome').hidden = true;
  $('dataset').hidden = false;
  $('dataset-title').textContent = metas.title || dataset.dataset_id;
  $('dataset-description').textContent = metas.description || '';
  $('dataset-meta').textContent = `${dataset.dataset_id} · ${number(metas.records_count)} records · modified ${metas.modified || '—'}`;
  $('fields').tBodies[0].replaceChildren(...dataset.fields.map((field) => el('tr', {},
    el('td', {}, el('code', { text: field.name })), el('td', { text: field.label || '' }), el('td', { text: field.type }))));

  const names = new Set(fitting.links.map((link) => link.rel));
  const formats = state.formats.filter((format) => names.has(format.name));
  $('format').replaceChildren(...formats.map((format) =>
    el('option', { value: format.name, text: `${format.name.toUpperCase()} (.${format.extension})` })));
  renderOptions();
  $('where').value = '';
  $('export-name').value = '';
  await preview();
}

async function preview() {
  const dataset = state.dataset;
  if (!dataset) return;
  const run = ++previewRun;
  const where = $('where').value.trim();
  const params = new URLSearchParams({ limit: '10' });
  if (where) params.set('where', where);
  const count = $('preview-count');
  const thead = $('preview').tHead;
  const tbody = $('preview').tBodies[0];
  let page;
  try {
    page = await api(`${CATALOG}/${encodeURIComponent(dataset.dataset_id)}/records?${params}`);
  } catch (error) {
    if (run !== previewRun) return;
    count.textContent = `The filter is not valid: ${error.message}`;
    count.className = 'error-text';
    tbody.replaceChildren();
    clearPictures('Nothing to draw until the filter is valid.');
    return;
  }
  if (run !== previewRun) return; // a newer filter was typed meanwhile
  drawPictures(dataset, where); // pictures.js: the map and the chart follow the filter
  count.className = 'muted';
  count.textContent = where
    ? `${number(page.total_count)} records match this filter; the first ${page.results.length}:`
    : `${number(page.total_count)} records; the first ${page.results.length}:`;
  const fields = dataset.fields;
  thead.replaceChildren(el('tr', {}, ...fields.map((field) => el('th', { scope: 'col', title: field.name, text: field.label || field.name }))));
  tbody.replaceChildren(...page.results.map((record) => el('tr', {}, ...fields.map((field) => {
    const text = cell(record[field.name]);
    return el('td', { title: text.length > 60 ? text : null, text: text.length > 60 ? `${text.slice(0, 57)}…` : text });
  }))));
}

// --- the export menu: the format, the options x-formats lists for it, a where filter --------

function currentFormat() {
  return state.formats.find((format) => format.name === $('format').value);
}

function renderOptions() {
  const format = currentFormat();
  const controls = (format ? format.options : []).map(optionControl);
  $('options-list').replaceChildren(...controls);
  $('format-options').hidden = controls.length === 0;
}

function optionControl(option) {
  const id = `option-${option.name}`;
  const label = el('label', { for: id, text: option.name.replaceAll('_', ' ') });
  const hint = option.description ? el('small', { className: 'muted', id: `${id}-hint`, text: option.description }) : null;
  const described = hint ? `${id}-hint` : null;
  if (option.type === 'boolean') {
    const box = el('input', { id, type: 'checkbox', checked: option.default === true, 'aria-describedby': described });
    return el('div', { className: 'option check' }, box, label, hint);
  }
  let input;
  if (option.choices) {
    input = el('select', { id, 'aria-describedby': described }, ...option.choices.map((choice) =>
      el('option', { value: String(choice), selected: choice === option.default, text: CHOICE_LABELS[choice] || String(choice) })));
  } else {
    const placeholder = option.type === 'fields' ? 'field names, comma-separated' : cell(option.default);
    input = el('input', { id, type: option.type === 'integer' ? 'number' : 'text', placeholder, 'aria-describedby': described });
  }
  return el('div', { className: 'option' }, label, input, hint);
}

// The options whose value differs from the format's default.
function chosenOptions() {
  const options = {};
  for (const option of currentFormat().options) {
    const input = $(`option-${option.name}`);
    let value;
    if (option.type === 'boolean') value = input.checked;
    else if (option.choices) value = option.choices.find((choice) => String(choice) === input.value);
    else {
      const raw = input.value.trim();
      if (!raw) continue;
      value = option.type === 'integer' && Number.isInteger(Number(raw)) ? Number(raw) : raw;
    }
    if (value !== option.default) options[option.name] = value;
  }
  return options;
}

async function createExport(event) {
  event.preventDefault();
  const dataset = state.dataset;
  const href = new URL(`${CATALOG}/${encodeURIComponent(dataset.dataset_id)}/records`, location.origin);
  const where = $('where').value.trim();
  if (where) href.searchParams.set('where', where);
  const body = { export_type: $('format').value, _links: { 'osdi:resource': { href: href.href } } };
  const name = $('export-name').value.trim();
  if (name) body.name = name;
  const options = chosenOptions();
  if (Object.keys(options).length) body.options = options;
  const button = $('export-submit');
  button.disabled = true;
  try {
    askToNotify(); // while the click is a user's gesture, which browsers ask of a permission request
    const created = await api(EXPORTS, { method: 'POST', body });
    const waits = created.status === 'pending_approval' ? ' It waits for an administrator’s approval.' : '';
    notify(`Export “${created.name}” created.${waits}`, 'info');
    show(created, true);
    follow(created);
    if (!state.user) rememberVisitorExport(exportId(created));
    if (state.user && state.user.admin) refreshApprovals();
  } catch (error) {
    notify(error.status === 401 && !state.user
      ? 'Sign in with your API token to export: this service takes no export from visitors without one.'
      : `The export was refused: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

// --- my exports ----------------------------------------------------------------------------

async function refreshExports() {
  if (!state.user) return refreshVisitorExports();
  const params = new URLSearchParams({ page: String(exportsView.page), per_page: String(EXPORTS_PER_PAGE) });
  if (exportsView.status) params.set('status', exportsView.status);
  if (exportsView.dataset) params.set('dataset', exportsView.dataset);
  let page;
  try {
    page = await api(`${EXPORTS}?${params}`);
  } catch (error) {
    notify(`Your exports could not be read: ${error.message}`);
    return;
  }
  if (page.page > page.total_pages && page.page > 1) { // the last page emptied meanwhile
    exportsView.page = page.total_pages;
    return refreshExports();
  }
  const list = embedded(page);
  state.exports = new Map(list.map((exp) => [exportId(exp), exp]));
  $('exports').tBodies[0].replaceChildren(...list.map(exportRow));
  const filtered = exportsView.status || exportsView.dataset;
  $('exports-empty').textContent = filtered ? 'No export matches these filters.' : 'No export yet.';
  $('exports-empty').hidden = list.length > 0;
  exportsView.pages = page.total_pages;
  $('exports-page').textContent = `Page ${page.page} of ${page.total_pages}`;
  $('exports-prev').disabled = page.page <= 1;
  $('exports-next').disabled = page.page >= page.total_pages;
  list.forEach(follow);
}

function renderDatasetFilter() {
  const select = $('exports-dataset');
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '', text: 'any' }), ...state.datasets.map((dataset) =>
    el('option', { value: dataset.dataset_id, selected: dataset.dataset_id === chosen, text: dataset.metas.default.title || dataset.dataset_id })));
}

function filterExports() {
  exportsView.status = $('exports-status').value;
  exportsView.dataset = $('exports-dataset').value;
  exportsView.page = 1;
  refreshExports();
}

function turnExportsPage(step) {
  exportsView.page = Math.min(Math.max(1, exportsView.page + step), exportsView.pages);
  refreshExports();
}

// Whether a new export belongs on the page shown: the first page, and its filters let it in.
function onShownPage(exp) {
  return exportsView.page === 1 && (!exportsView.status || exportsView.status === exp.status)
    && (!exportsView.dataset || exportsView.dataset === exp.dataset_id);
}

// Put one export's newest state in its row (a new export goes on top).
function show(exp, isNew = false) {
  const id = exportId(exp);
  state.exports.set(id, exp);
  const row = exportRow(exp);
  const old = $('exports').querySelector(`tr[data-export-id="${CSS.escape(id)}"]`);
  if (old) old.replaceWith(row);
  else if (isNew && onShownPage(exp)) $('exports').tBodies[0].prepend(row);
  else state.exports.delete(id);
  $('exports-empty').hidden = state.exports.size > 0;
}

function exportRow(exp) {
  const id = exportId(exp);
  const progress = exp.progress || {};
  let bar = null;
  let progressText = '';
  if (exp.status === 'processing' || exp.status === 'ready') {
    const total = progress.records_total || progress.records_done || 1;
    const done = exp.status === 'ready' ? total : progress.records_done || 0;
    bar = el('progress', { max: total, value: done, 'aria-label': `Progress of ${exp.name}` });
    progressText = progress.records_total === null || progress.records_total === undefined
      ? number(progress.records_done)
      : `${number(progress.records_done)} / ${number(progress.records_total)}`;
  } else if (LIVE.includes(exp.status)) {
    bar = el('progress', { 'aria-label': `Progress of ${exp.name}` }); // indeterminate: not started
    progressText = exp.status === 'pending_approval' ? 'awaiting approval' : 'waiting';
    if (exp.queue_position) progressText += ` (#${exp.queue_position} in the queue)`;
  }
  const link = exp.status === 'ready' ? safeHref(exp.download_link) : null;
  const where = whereOf(exp);
  const options = Object.entries(exp.options || {});
  return el('tr', { 'data-export-id': id },
    el('td', {}, el('span', { className: 'export-name', text: exp.name })),
    state.user && state.user.admin ? el('td', { className: 'owner', text: exp.owner }) : null,
    el('td', {}, el('code', { className: 'dataset', text: exp.dataset_id || '' })),
    el('td', { className: 'filter' }, where ? el('code', { text: where }) : el('span', { className: 'muted', text: 'every record' }),
      otherQuery(exp) ? el('small', { className: 'detail', text: otherQuery(exp) }) : null),
    el('td', { className: 'options' }, options.length
      ? el('code', { text: options.map(([key, value]) => `${key}=${cell(value)}`).join(' · ') })
      : el('span', { className: 'muted', text: 'defaults' })),
    el('td', { text: exp.export_type }),
    el('td', {}, exp.created_date ? el('time', { datetime: exp.created_date, title: exp.created_date, text: shortDate(exp.created_date) }) : null),
    el('td', {},
      el('span', { className: `status status-${exp.status}`, text: exp.status.replace('_', ' ') }),
      exp.detail ? el('small', { className: 'detail', text: exp.detail }) : null),
    el('td', { className: 'progress' }, bar, el('small', { text: progressText })),
    el('td', { className: 'num', text: number(exp.records_count) }),
    el('td', { className: 'num', text: bytes(exp.file_size) }),
    el('td', {}, exp.expires_date && exp.status === 'ready'
      ? el('time', { datetime: exp.expires_date, 'data-expires': exp.expires_date, title: exp.expires_date, text: countdown(exp.expires_date) })
      : null),
    el('td', { className: 'actions' },
      link ? el('a', { className: 'button', href: link, download: exp.file_name || '', text: 'Download',
        'aria-label': `Download ${exp.name}` }) : null,
      el('button', { type: 'button', className: 'secondary', text: 'Delete', 'aria-label': `Delete ${exp.name}`,
        onclick: () => deleteExport(id, exp.name) })));
}

// The export's where filter, its conditions joined as the API joins them.
function whereOf(exp) {
  const where = exp.query && exp.query.where;
  if (!where) return '';
  return Array.isArray(where) ? where.map((part) => (where.length > 1 ? `(${part})` : part)).join(' AND ') : String(where);
}

// The rest of the export's query (select, order_by, limit, …), in a line.
function otherQuery(exp) {
  return Object.entries(exp.query || {}).filter(([key]) => key !== 'where')
    .map(([key, value]) => `${key}: ${Array.isArray(value) ? value.join(', ') : cell(value)}`).join('; ');
}

// Whether the page follows an export in this status live. One waiting for approval is followed
// too, except by an administrator (who decides, and whose list holds everyone's), so that its
// owner sees it start the moment it is approved.
const followed = (status) => MOVING.includes(status)
  || (status === 'pending_approval' && !(state.user && state.user.admin));

// Follow an export that moves: a long poll (?wait=) for its next status while it waits, a read
// every PROGRESS_EVERY ms while it is processing.
async function follow(exp) {
  const id = exportId(exp);
  if (!followed(exp.status) || state.followed.has(id) || state.followed.size >= MAX_FOLLOWED) return;
  state.followed.add(id);
  let status = exp.status;
  try {
    while (followed(status) && state.exports.has(id)) { // signing in or out empties state.exports
      const processing = status === 'processing';
      if (processing) await sleep(PROGRESS_EVERY);
      const current = await api(`${EXPORTS}/${encodeURIComponent(id)}${processing ? '' : `?wait=${STATUS_WAIT}`}`);
      if (!state.exports.has(id)) break; // deleted meanwhile
      show(current);
      if (current.status === 'ready' && status !== 'ready') announceReady(current);
      status = current.status;
    }
  } catch (error) {
    if (error.status !== 404) notify(`Export ${id}: ${error.message}`);
  } finally {
    state.followed.delete(id);
  }
}

// --- telling the user: the tab's title, and a desktop notification if they allowed it -------

const TITLE = document.title;
let unseenReady = 0;

function askToNotify() {
  if ('Notification' in window && Notification.permission === 'default') Notification.requestPermission().catch(() => {});
}

function announceReady(exp) {
  if (document.visibilityState !== 'visible') {
    unseenReady += 1;
    document.title = `(${unseenReady}) ready — ${TITLE}`;
  }
  if ('Notification' in window && Notification.permission === 'granted') {
    try {
      new Notification('Export ready', { body: `“${exp.name}” is ready to download.`, tag: exportId(exp) });
    } catch (error) { /* a browser that offers notifications only to service workers */ }
  }
  notify(`Export “${exp.name}” is ready.`, 'info');
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') {
    unseenReady = 0;
    document.title = TITLE;
  }
});

async function deleteExport(id, name) {
  try {
    await api(`${EXPORTS}/${encodeURIComponent(id)}`, { method: 'DELETE' });
  } catch (error) {
    notify(error.message);
    return;
  }
  state.exports.delete(id);
  if (!state.user) forgetVisitorExport(id);
  const row = $('exports').querySelector(`tr[data-export-id="${CSS.escape(id)}"]`);
  if (row) row.remove();
  $('exports-empty').hidden = state.exports.size > 0;
  notify(`Export “${name}” deleted.`, 'info');
}

function tick() {
  for (const time of document.querySelectorAll('time[data-expires]')) {
    time.textContent = countdown(time.dataset.expires);
  }
}

// --- a visitor's exports: without an account, the export's URL is the only key to it -------
// The API keeps no list of them, so this browser does (localStorage), and reads each one back.

function visitorExports() {
  try {
    const ids = JSON.parse(localStorage.getItem(VISITOR_KEY) || '[]');
    return Array.isArray(ids) ? ids.filter((id) => typeof id === 'string') : [];
  } catch {
    return [];
  }
}

function keepVisitorExports(ids) {
  localStorage.setItem(VISITOR_KEY, JSON.stringify(ids.slice(0, VISITOR_KEEPS)));
}

const rememberVisitorExport = (id) => keepVisitorExports([id, ...visitorExports().filter((kept) => kept !== id)]);
const forgetVisitorExport = (id) => keepVisitorExports(visitorExports().filter((kept) => kept !== id));

async function refreshVisitorExports() {
  const ids = visitorExports();
  const answers = await Promise.all(ids.map((id) => api(`${EXPORTS}/${encodeURIComponent(id)}`).catch((error) => error)));
  if (state.user) return; // signed in meanwhile
  const list = [];
  answers.forEach((answer, i) => {
    if (answer instanceof ApiError) {
      if (answer.status === 404) forgetVisitorExport(ids[i]); // deleted, expired and swept, or never ours
    } else if (answer instanceof Error) {
      notify(`Your exports could not be read: ${answer.message}`);
    } else list.push(answer);
  });
  state.exports = new Map(list.map((exp) => [exportId(exp), exp]));
  $('exports').tBodies[0].replaceChildren(...list.map(exportRow));
  $('exports-empty').textContent = 'No export yet from this browser.';
  $('exports-empty').hidden = list.length > 0;
  list.forEach(follow);
}

// --- the approval queue (administrators) ---------------------------------------------------

async function refreshApprovals() {
  if (!(state.user && state.user.admin)) return;
  let page;
  try {
    page = await api(`${EXPORTS}?status=pending_approval&per_page=100`);
  } catch (error) {
    notify(`The approval queue could not be read: ${error.message}`);
    return;
  }
  const waiting = embedded(page);
  $('approvals').replaceChildren(...waiting.map(approvalItem));
  $('approvals-empty').hidden = waiting.length > 0;
}

function approvalItem(exp) {
  const id = exportId(exp);
  const noteId = `note-${id}`;
  const note = el('input', { id: noteId, type: 'text', placeholder: 'a reason; required to reject' });
  const resource = safeHref(exp._links['osdi:resource'].href);
  const url = resource ? new URL(resource) : null;
  const dataset = url && url.pathname.match(/\/datasets\/([^/]+)/);
  const facts = [
    ['Asked by', exp.owner],
    ['Dataset', dataset ? decodeURIComponent(dataset[1]) : ''],
    ['Filter', (url && url.searchParams.get('where')) || 'none: every record'],
    ['Options', exp.options ? JSON.stringify(exp.options) : 'defaults'],
    ['Asked', exp.created_date],
    ['Resource', resource || ''],
  ];
  return el('li', { className: 'approval', 'data-export-id': id },
    el('div', { className: 'approval-head' },
      el('strong', { className: 'export-name', text: exp.name }),
      el('span', { className: 'badge', text: exp.export_type })),
    exp.detail ? el('p', { className: 'muted', text: exp.detail }) : null,
    el('details', {}, el('summary', { text: 'Detail' }),
      el('dl', {}, ...facts.flatMap(([term, value]) => [el('dt', { text: term }), el('dd', { text: value })]))),
    el('div', { className: 'decision' },
      el('label', { for: noteId, text: 'Note' }), note,
      el('button', { type: 'button', text: 'Approve', 'aria-label': `Approve ${exp.name}`, onclick: () => decide(id, 'approve', note.value) }),
      el('button', { type: 'button', className: 'danger', text: 'Reject', 'aria-label': `Reject ${exp.name}`, onclick: () => decide(id, 'reject', note.value) })));
}

async function decide(id, action, note) {
  const detail = note.trim();
  if (action === 'reject' && !detail) {
    notify('Give a reason to reject an export: its owner will read it.');
    return;
  }
  try {
    const exp = await api(`${EXPORTS}/${encodeURIComponent(id)}/${action}`, { method: 'POST', body: detail ? { detail } : {} });
    notify(`Export “${exp.name}” ${action === 'approve' ? 'approved' : 'rejected'}.`, 'info');
  } catch (error) {
    notify(error.message);
  }
  await Promise.all([refreshApprovals(), refreshExports()]);
}

function refreshLists() {
  refreshExports();
  refreshApprovals();
}

// --- start ---------------------------------------------------------------------------------

async function start() {
  $('signin').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('catalog-search').addEventListener('input', renderCatalog);
  $('format').addEventListener('change', renderOptions);
  let typing = null;
  $('where').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(preview, 350);
  });
  $('export-form').addEventListener('submit', createExport);
  startPictures();
  $('exports-refresh').addEventListener('click', refreshExports);
  $('exports-status').addEventListener('change', filterExports);
  $('exports-dataset').addEventListener('change', filterExports);
  $('exports-prev').addEventListener('click', () => turnExportsPage(-1));
  $('exports-next').addEventListener('click', () => turnExportsPage(1));
  $('approvals-refresh').addEventListener('click', refreshApprovals);
  window.addEventListener('hashchange', route);
  try {
    state.formats = (await api('/api/openapi.json'))['x-formats'];
  } catch (error) {
    notify(`The list of formats could not be read: ${error.message}`);
  }
  await loadUser();
  setInterval(tick, 1000);
  setInterval(() => {
    if (document.visibilityState === 'visible') refreshLists();
  }, LISTS_EVERY);
}

start();
