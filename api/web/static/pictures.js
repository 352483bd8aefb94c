// Pictures of a dataset's records, drawn in SVG from the public API and following the page's
// `where` filter: a map of a bounded sample of the records' locations (no tiles, nothing from
// another origin), and a bar chart of one field's values from the aggregates API. It uses
// app.js's helpers (api, el, number, CATALOG), which are loaded beside it; app.js calls
// drawPictures(dataset, where) when a dataset opens or its filter changes.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const MAP_PAGES = 5; // records pages of 100 (the API's largest) read for the map's sample
const BARS = 15; // categories a chart shows: the most frequent
const DISTINCT = 1000; // numeric values read at most to draw their histogram exactly
const BINS = 20;
const GEO_TYPES = ['geo_point_2d', 'geo_shape'];
const DATE_TYPES = ['date', 'datetime'];
const NUMBER_TYPES = ['int', 'double'];

const pictures = { dataset: null, where: '', mapRun: 0, chartRun: 0, map: null, chart: null };

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

const recordsOf = (dataset) => `${CATALOG}/${encodeURIComponent(dataset.dataset_id)}`;
const geoField = (dataset) => dataset.fields.find((field) => GEO_TYPES.includes(field.type));
const chartFields = (dataset) => dataset.fields.filter((field) => !GEO_TYPES.includes(field.type));

// Called by app.js: a new dataset (fills the field chooser) or a new filter (redraws).
async function drawPictures(dataset, where) {
  if (!pictures.dataset || pictures.dataset.dataset_id !== dataset.dataset_id) {
    const fields = chartFields(dataset);
    // a date gives a meaningful picture on any dataset (records by month); a text may be unique per record
    const preferred = fields.find((field) => DATE_TYPES.includes(field.type))
      || fields.find((field) => field.type === 'boolean') || fields[0];
    $('chart-field').replaceChildren(...fields.map((field) =>
      el('option', { value: field.name, selected: field === preferred, text: field.label || field.name })));
    $('chart-figure').hidden = fields.length === 0;
    $('map-figure').hidden = !geoField(dataset);
  }
  pictures.dataset = dataset;
  pictures.where = where;
  await Promise.all([loadMap(++pictures.mapRun), loadChart(++pictures.chartRun)]);
}

// Nothing to draw: the filter is not valid (the preview says why).
function clearPictures(message) {
  pictures.mapRun += 1;
  pictures.chartRun += 1;
  pictures.map = pictures.chart = null;
  $('map').replaceChildren();
  $('chart').replaceChildren();
  $('map-caption').textContent = message;
  $('chart-caption').textContent = message;
}

function withWhere(params) {
  if (pictures.where) params.set('where', pictures.where);
  return params;
}

// --- the map: the first MAP_PAGES × 100 records matching the filter, at their location ------

async function loadMap(run) {
  const dataset = pictures.dataset;
  const field = geoField(dataset);
  if (!field) return;
  const pages = [];
  for (let page = 0; page < MAP_PAGES; page += 1) {
    const params = withWhere(new URLSearchParams({ select: field.name, limit: '100', offset: String(page * 100) }));
    pages.push(api(`${recordsOf(dataset)}/records?${params}`).catch((error) => ({ error })));
  }
  const answers = await Promise.all(pages);
  if (run !== pictures.mapRun) return;
  const failed = answers.find((answer) => answer.error);
  if (failed && !answers[0].results) {
    $('map').replaceChildren();
    $('map-caption').textContent = `The map could not be drawn: ${failed.error.message}`;
    return;
  }
  const records = answers.flatMap((answer) => answer.results || []);
  const points = records.map((record) => lonLat(record[field.name])).filter(Boolean);
  pictures.map = { points, total: answers[0].total_count, read: records.length };
  renderMap();
}

// [lon, lat] of a geo_point_2d ({lon, lat}) or of a GeoJSON geometry (its bounding box's centre).
function lonLat(value) {
  if (!value || typeof value !== 'object') return null;
  if (Number.isFinite(value.lon) && Number.isFinite(value.lat)) return [value.lon, value.lat];
  const geometry = value.geometry || value;
  const flat = [];
  (function walk(coordinates) {
    if (!Array.isArray(coordinates)) return;
    if (typeof coordinates[0] === 'number') flat.push(coordinates);
    else coordinates.forEach(walk);
  })(geometry.coordinates);
  if (!flat.length) return null;
  const lons = flat.map((c) => c[0]);
  const lats = flat.map((c) => c[1]);
  return [(Math.min(...lons) + Math.max(...lons)) / 2, (Math.min(...lats) + Math.max(...lats)) / 2];
}

// A step of 1, 2 or 5 × 10^n giving about `count` lines over `span`.
function niceStep(span, count) {
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

function renderMap() {
  const box = $('map');
  const data = pictures.map;
  if (!data) return;
  const { points, total, read } = data;
  $('map-caption').textContent = points.length
    ? `${number(points.length)} records drawn at their location: ${read < total ? `the first ${number(read)} of ${number(total)}` : `all ${number(total)}`} matching records${read > points.length ? ` (${number(read - points.length)} without one)` : ''}.`
    : `No record to draw: ${number(total)} match${total === 1 ? 'es' : ''}, none with a location.`;
  const width = Math.max(box.clientWidth, 240);
  const height = Math.round(Math.min(Math.max(width * 0.6, 220), 460));
  if (!points.length) {
    box.replaceChildren();
    return;
  }
  let [west, east, south, north] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const [lon, lat] of points) {
    west = Math.min(west, lon); east = Math.max(east, lon);
    south = Math.min(south, lat); north = Math.max(north, lat);
  }
  const pad = Math.max(east - west, north - south, 0.01) * 0.08;
  [west, east, south, north] = [west - pad, east + pad, south - pad, north + pad];
  // equirectangular, with longitudes shrunk by cos(latitude) so shapes keep their proportions
  const squeeze = Math.cos(((south + north) / 2) * Math.PI / 180);
  const scale = Math.min(width / ((east - west) * squeeze), height / (north - south));
  const left = (width - (east - west) * squeeze * scale) / 2;
  const top = (height - (north - south) * scale) / 2;
  const x = (lon) => left + (lon - west) * squeeze * scale;
  const y = (lat) => top + (north - lat) * scale;

  const grid = svg('g', { class: 'graticule' });
  const step = niceStep(Math.max(east - west, north - south), 6);
  for (let lon = Math.ceil(west / step) * step; lon <= east; lon += step) {
    grid.append(svg('line', { x1: x(lon), x2: x(lon), y1: 0, y2: height }),
      svg('text', { x: x(lon) + 3, y: height - 4 }, `${+lon.toFixed(6)}°`));
  }
  for (let lat = Math.ceil(south / step) * step; lat <= north; lat += step) {
    grid.append(svg('line', { x1: 0, x2: width, y1: y(lat), y2: y(lat) }),
      svg('text', { x: 3, y: y(lat) - 3 }, `${+lat.toFixed(6)}°`));
  }
  const marks = svg('g', { class: 'marks' }, ...points.map(([lon, lat]) =>
    svg('circle', { cx: x(lon).toFixed(1), cy: y(lat).toFixed(1), r: 2.5, 'data-lon': lon, 'data-lat': lat })));
  box.replaceChildren(svg('svg', { width, height, viewBox: `0 0 ${width} ${height}` },
    svg('rect', { class: 'ground', width, height }), grid, marks));
}

// --- the chart: counts by value (text, boolean), by month (dates), a histogram (numbers) -----

async function loadChart(run) {
  const dataset = pictures.dataset;
  const field = dataset.fields.find((f) => f.name === $('chart-field').value);
  if (!field) return;
  const base = `${recordsOf(dataset)}/aggregates`;
  const name = field.name;
  let chart;
  try {
    if (DATE_TYPES.includes(field.type)) {
      const params = withWhere(new URLSearchParams({ select: 'count(*) as n', group_by: `date_format(${name}, 'yyyy-MM') as k`, order_by: 'k', limit: '240' }));
      const groups = (await api(`${base}?${params}`)).results;
      chart = { field, bars: groups.map((g) => ({ label: g.k === null ? '(none)' : g.k, count: g.n })), note: 'by month' };
    } else if (NUMBER_TYPES.includes(field.type)) {
      chart = await numberChart(base, field);
    } else {
      const params = withWhere(new URLSearchParams({ select: 'count(*) as n', group_by: name, order_by: 'n desc', limit: String(BARS) }));
      const groups = (await api(`${base}?${params}`)).results;
      chart = { field, bars: groups.map((g) => ({ label: g[name] === null ? '(none)' : String(g[name]), count: g.n })),
        note: groups.length === BARS ? `the ${BARS} most frequent values` : 'every value' };
    }
  } catch (error) {
    if (run !== pictures.chartRun) return;
    $('chart').replaceChildren();
    $('chart-caption').textContent = `The chart could not be drawn: ${error.message}`;
    return;
  }
  if (run !== pictures.chartRun) return;
  pictures.chart = chart;
  renderChart();
}

// Up to DISTINCT values: each one a bar if there are few, else an exact histogram of BINS bins;
// more values than that: the most frequent ones.
async function numberChart(base, field) {
  const name = field.name;
  const params = withWhere(new URLSearchParams({ select: 'count(*) as n', group_by: name, order_by: name, limit: String(DISTINCT) }));
  const groups = (await api(`${base}?${params}`)).results;
  if (groups.length === DISTINCT) {
    const top = withWhere(new URLSearchParams({ select: 'count(*) as n', group_by: name, order_by: 'n desc', limit: String(BARS) }));
    const frequent = (await api(`${base}?${top}`)).results;
    return { field, bars: frequent.map((g) => ({ label: g[name] === null ? '(none)' : number(g[name]), count: g.n })),
      note: `the ${BARS} most frequent of more than ${number(DISTINCT)} values` };
  }
  const known = groups.filter((g) => g[name] !== null);
  const none = groups.find((g) => g[name] === null);
  if (known.length <= BARS) {
    const bars = known.map((g) => ({ label: number(g[name]), count: g.n }));
    if (none) bars.push({ label: '(none)', count: none.n });
    return { field, bars, note: 'every value' };
  }
  const low = known[0][name];
  const high = known[known.length - 1][name];
  const width = (high - low) / BINS;
  const bins = Array.from({ length: BINS }, (_, i) => ({ from: low + i * width, count: 0 }));
  for (const g of known) bins[Math.min(BINS - 1, Math.floor((g[name] - low) / width))].count += g.n;
  const bars = bins.map((bin, i) => ({
    label: `${number(+bin.from.toFixed(2))} – ${number(+(i === BINS - 1 ? high : bin.from + width).toFixed(2))}`, count: bin.count }));
  if (none) bars.push({ label: '(none)', count: none.n });
  return { field, bars, note: `a histogram of ${BINS} bins` };
}

function renderChart() {
  const box = $('chart');
  const data = pictures.chart;
  if (!data) return;
  const { field, bars, note } = data;
  const total = bars.reduce((sum, bar) => sum + bar.count, 0);
  $('chart-caption').textContent = bars.length
    ? `${field.label || field.name}: ${note}, ${number(total)} records.`
    : 'No record matches this filter.';
  if (!bars.length) {
    box.replaceChildren();
    return;
  }
  const width = Math.max(box.clientWidth, 240);
  const row = 22;
  const labelWidth = Math.min(190, Math.round(width * 0.38));
  const countWidth = 64;
  const barSpace = width - labelWidth - countWidth - 8;
  const most = Math.max(...bars.map((bar) => bar.count), 1);
  const height = bars.length * row + 4;
  const chars = Math.floor(labelWidth / 7.5);
  const rows = bars.map((bar, i) => {
    const label = bar.label.length > chars ? `${bar.label.slice(0, chars - 1)}…` : bar.label;
    const y = i * row + 2;
    return svg('g', { class: 'bar', 'data-label': bar.label, 'data-count': bar.count },
      svg('title', {}, `${bar.label}: ${number(bar.count)}`),
      svg('text', { class: 'label', x: labelWidth - 6, y: y + 15 }, label),
      svg('rect', { x: labelWidth, y: y + 3, height: row - 6, width: Math.max(1, (bar.count / most) * barSpace).toFixed(1) }),
      svg('text', { class: 'count', x: labelWidth + Math.max(1, (bar.count / most) * barSpace) + 4, y: y + 15 }, number(bar.count)));
  });
  box.replaceChildren(svg('svg', { width, height, viewBox: `0 0 ${width} ${height}` }, ...rows));
}

function redrawPictures() {
  renderMap();
  renderChart();
}

function startPictures() {
  $('chart-field').addEventListener('change', () => {
    if (pictures.dataset) loadChart(++pictures.chartRun);
  });
  let resizing = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = setTimeout(redrawPictures, 150);
  });
}
