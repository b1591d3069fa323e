// SPDX-License-Identifier: Apache-2.0
//
// The dashboard's behaviour, dependency-free. It polls GET /api/overview every second
// and turns counters into rates over a short sliding window (the server sends totals
// so that a missed poll never loses counts), refreshes the devices and dead-letter
// tables every few seconds, and draws the selected series on a <canvas> by hand.
// Lag tiles turn amber and red at the thresholds below: lag must be seen before it
// becomes a gap. API reference: docs/http-api.md.
'use strict';

const POLL_MS = 1000;
const TABLE_MS = 5000;
const CHART_MS = 5000;
const RATE_WINDOW_MS = 5000;
// Bus lag thresholds [amber, red]; override per page with ?lag_messages=W,R&lag_seconds=W,R.
function thresholds(name, def) {
  const v = new URLSearchParams(location.search).get(name);
  const parts = v ? v.split(',').map(Number) : [];
  return parts.length === 2 && parts.every((n) => isFinite(n)) ? parts : def;
}
const LAG_MESSAGES = thresholds('lag_messages', [1000, 100000]);
const LAG_SECONDS = thresholds('lag_seconds', [5, 60]);

const $ = (sel) => document.querySelector(sel);
const samples = [];  // recent overview snapshots, oldest first

function fmtInt(v) {
  if (v === null || v === undefined) return '–';
  return Math.round(v).toLocaleString('en-US');
}

function fmtRate(v) {
  if (v === null || !isFinite(v)) return '–';
  if (v >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(1);
}

function fmtBytes(v) {
  if (v === null || v === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + ' ' + units[i];
}

function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleString('en-GB', { hour12: false });
}

function setTile(id, value, sub, level, raw) {
  const tile = document.getElementById(id);
  tile.querySelector('.value').textContent = value;
  tile.querySelector('.sub').textContent = sub || '';
  if (level) tile.dataset.level = level; else delete tile.dataset.level;
  if (raw !== undefined && raw !== null) tile.dataset.value = String(raw); else delete tile.dataset.value;
}

function levelFor(v, [warn, bad]) {
  if (v === null || v === undefined) return '';
  if (v >= bad) return 'bad';
  if (v >= warn) return 'warn';
  return 'ok';
}

// Rate of `key` per second over the samples of the last RATE_WINDOW_MS.
function rate(key) {
  if (samples.length < 2) return null;
  const last = samples[samples.length - 1];
  let first = samples[0];
  for (const s of samples) {
    if (last.time_ms - s.time_ms <= RATE_WINDOW_MS) { first = s; break; }
  }
  if (first === last) first = samples[samples.length - 2];
  const dt = (last.time_ms - first.time_ms) / 1000;
  if (dt <= 0 || last[key] === null || first[key] === null) return null;
  return Math.max(0, (last[key] - first[key]) / dt);  // a restart resets counters: never negative
}

function renderOverview(o) {
  setTile('tile-connections', fmtInt(o.connections),
    o.sessions === null ? '' : fmtInt(o.sessions) + ' sessions', '', o.connections);
  setTile('tile-messages-in', fmtRate(rate('messages_in')), 'total ' + fmtInt(o.messages_in), '', o.messages_in);
  setTile('tile-messages-out', fmtRate(rate('messages_out')), 'total ' + fmtInt(o.messages_out), '', o.messages_out);
  setTile('tile-rows', o.rows === null ? '–' : fmtRate(rate('rows')),
    o.rows === null ? 'no pipeline' : 'total ' + fmtInt(o.rows), '', o.rows);
  setTile('tile-lag-messages', fmtInt(o.lag_messages), 'not yet in the database',
    levelFor(o.lag_messages, LAG_MESSAGES), o.lag_messages);
  setTile('tile-lag-seconds', o.lag_seconds === null ? '–' : o.lag_seconds.toFixed(1) + ' s',
    'newest durable vs newest stored', levelFor(o.lag_seconds, LAG_SECONDS), o.lag_seconds);
  const dlRate = rate('dead_letters');
  setTile('tile-dead-letters', fmtInt(o.dead_letters), dlRate ? fmtRate(dlRate) + ' /s' : '',
    o.dead_letters > 0 ? 'warn' : (o.dead_letters === null ? '' : 'ok'), o.dead_letters);
  setTile('tile-gaps', fmtInt(o.sequence_gaps),
    o.sequence_missing === null ? '' : fmtInt(o.sequence_missing) + ' payloads missing',
    o.sequence_gaps > 0 ? 'bad' : (o.sequence_gaps === null ? '' : 'ok'), o.sequence_gaps);
  let db = '–', dbLevel = '';
  if (o.database_up === true) { db = 'up'; dbLevel = 'ok'; }
  if (o.database_up === false) { db = 'down'; dbLevel = 'bad'; }
  setTile('tile-database', db, o.pipeline_running === false ? 'pipeline starting' : '', dbLevel,
    o.database_up === null ? null : (o.database_up ? 1 : 0));
  setTile('tile-wal', fmtBytes(o.bus_bytes), o.wal_over_quota ? 'OVER QUOTA: back-pressure' : 'within quota',
    o.wal_over_quota ? 'bad' : (o.wal_over_quota === null ? '' : 'ok'), o.bus_bytes);
}

function setStatus(state, text) {
  const el = $('#status');
  el.dataset.state = state;
  el.textContent = text;
}

// The API token when the server requires one (docs/security.md): open the dashboard as
// http://HOST:PORT/#token=TOKEN; it is kept for this tab only.
function apiToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) sessionStorage.setItem('sluice-token', decodeURIComponent(m[1]));
  return sessionStorage.getItem('sluice-token');
}

// A login for users of the server's password file (auth.http_login): the server answers
// 401 with "login": true, the form below sends POST /api/login and the session cookie
// (HttpOnly, so this script never sees it) opens the API until logout or expiry.
async function showLogin() {
  const dialog = $('#login');
  if (!dialog.open) {
    dialog.showModal();
    $('#login-user').focus();
  }
}

async function showUser() {
  const res = await fetch('/api/whoami', { cache: 'no-store', headers: authHeaders() });
  const who = await res.json().catch(() => ({}));
  $('#user').textContent = res.ok && who.by === 'session' ? who.user : '';
  $('#logout').hidden = !(res.ok && who.by === 'session');
  if (res.status === 401 && who.login) showLogin();
}

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('#login-error').textContent = '';
  const res = await fetch('/api/login', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: $('#login-user').value, password: $('#login-password').value }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    $('#login-error').textContent = body.error || ('HTTP ' + res.status);
    return;
  }
  $('#login-password').value = '';
  $('#login').close();
  showUser();
});

$('#logout').addEventListener('click', async () => {
  await fetch('/api/logout', { method: 'POST' });
  showUser();
});

function authHeaders() {
  const token = apiToken();
  return token ? { Authorization: 'Bearer ' + token } : {};
}

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store', headers: authHeaders() });
  if (res.status === 401) {
    const why = await res.json().catch(() => ({}));
    if (why.login !== false) {
      const who = await fetch('/api/whoami', { cache: 'no-store' }).then((r) => r.json()).catch(() => ({}));
      if (who.login) {
        showLogin();
        throw new Error('log in to see the data');
      }
    }
    throw new Error('API token required: open this page as /#token=TOKEN');
  }
  const body = await res.json().catch(() => ({ error: 'invalid JSON' }));
  if (!res.ok) throw new Error(body.detail || body.error || ('HTTP ' + res.status));
  return body;
}

async function pollOverview() {
  try {
    const o = await getJson('/api/overview');
    samples.push(o);
    while (samples.length > 0 && o.time_ms - samples[0].time_ms > RATE_WINDOW_MS + 2000) samples.shift();
    renderOverview(o);
    setStatus('live', 'live · ' + new Date(o.time_ms).toLocaleTimeString('en-GB', { hour12: false }));
  } catch (e) {
    setStatus('error', 'cannot reach Sluice: ' + e.message);
  } finally {
    setTimeout(pollOverview, POLL_MS);
  }
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function emptyRow(tbody, cols, text) {
  const tr = document.createElement('tr');
  const td = cell(tr, text, 'empty');
  td.colSpan = cols;
  tbody.replaceChildren(tr);
}

let selectedDevice = '';
let selectedMetric = '';

async function refreshDevices() {
  const tbody = $('#devices tbody');
  try {
    const { devices } = await getJson('/api/devices?limit=200');
    $('#devices-info').textContent = devices.length + (devices.length === 200 ? '+' : '') + ' devices';
    if (devices.length === 0) {
      emptyRow(tbody, 5, 'no devices yet');
    } else {
      const rows = devices.map((d) => {
        const tr = document.createElement('tr');
        tr.dataset.key = d.key;
        if (d.key === selectedDevice) tr.className = 'selected';
        cell(tr, d.key);
        cell(tr, d.name);
        cell(tr, d.site);
        cell(tr, d.line);
        cell(tr, fmtTime(d.last_reading));
        tr.addEventListener('click', () => selectDevice(d.key));
        return tr;
      });
      tbody.replaceChildren(...rows);
    }
    const sel = $('#chart-device');
    const keys = devices.map((d) => d.key);
    const have = Array.from(sel.options).map((o) => o.value).slice(1);
    if (keys.join('\n') !== have.join('\n')) {
      sel.replaceChildren(new Option('—', ''), ...keys.map((k) => new Option(k, k)));
      sel.value = selectedDevice;
    }
  } catch (e) {
    $('#devices-info').textContent = e.message;
  }
}

async function refreshDeadLetters() {
  const tbody = $('#dead-letters tbody');
  try {
    const { dead_letters: rows } = await getJson('/api/dead-letters?limit=20');
    $('#dead-info').textContent = rows.length ? 'newest ' + rows.length : '';
    if (rows.length === 0) {
      emptyRow(tbody, 5, 'none');
      return;
    }
    tbody.replaceChildren(...rows.map((d) => {
      const tr = document.createElement('tr');
      cell(tr, fmtTime(d.received_at));
      cell(tr, d.topic);
      cell(tr, d.client_id);
      cell(tr, d.reason);
      const p = cell(tr, d.payload_text !== null ? d.payload_text : 'base64:' + d.payload_base64, 'payload');
      p.title = (d.payload_bytes + ' bytes') + (d.payload_truncated ? ' (preview)' : '');
      return tr;
    }));
  } catch (e) {
    $('#dead-info').textContent = e.message;
  }
}

// Partitions, their owners and lag (GET /api/cluster): one node with the WAL, the consumer
// group's workers with Kafka. A partition without an owner, or owned twice (a rebalance in
// flight), is marked; its lag is coloured like the lag tile.
async function refreshCluster() {
  const tbody = $('#cluster tbody');
  try {
    const c = await getJson('/api/cluster');
    const members = new Map(c.members.map((m) => [m.member_id, m]));
    const parts = [c.bus, c.group, c.members.length + (c.members.length === 1 ? ' member' : ' members'),
      c.source + (c.state ? ' (' + c.state + ')' : '')];
    if (!c.database) parts.push('database down: stored offsets unknown');
    if (c.unowned.length) parts.push('no owner: ' + c.unowned.join(', '));
    $('#cluster-info').textContent = parts.filter(Boolean).join(' · ');
    if (c.partitions.length === 0) {
      emptyRow(tbody, 6, 'no partitions');
      return;
    }
    tbody.replaceChildren(...c.partitions.map((p) => {
      const tr = document.createElement('tr');
      tr.dataset.partition = p.partition;
      const m = p.owner !== null ? members.get(p.owner) : null;
      cell(tr, String(p.partition));
      cell(tr, p.owner === null ? 'no owner' : (m && m.client_id ? m.client_id + ' ' : '') + p.owner,
        p.owner === null || p.owners > 1 ? 'bad' : '');
      cell(tr, m ? m.host : '');
      cell(tr, fmtInt(p.end_offset));
      cell(tr, fmtInt(p.stored_offset));
      const lag = cell(tr, fmtInt(p.lag), 'lag');
      lag.dataset.level = p.lag === null ? 'unknown' : levelFor(p.lag, LAG_MESSAGES);
      return tr;
    }));
  } catch (e) {
    $('#cluster-info').textContent = e.message;
  }
}

async function selectDevice(key) {
  selectedDevice = key;
  $('#chart-device').value = key;
  for (const tr of document.querySelectorAll('#devices tbody tr')) {
    tr.classList.toggle('selected', tr.dataset.key === key);
  }
  const msel = $('#chart-metric');
  if (!key) {
    msel.replaceChildren(new Option('—', ''));
    selectedMetric = '';
    drawChart([]);
    return;
  }
  try {
    const { metrics } = await getJson('/api/metrics?device=' + encodeURIComponent(key));
    msel.replaceChildren(...metrics.map((m) => new Option(m.unit ? m.name + ' (' + m.unit + ')' : m.name, m.name)));
    if (!metrics.some((m) => m.name === selectedMetric)) selectedMetric = metrics.length ? metrics[0].name : '';
    msel.value = selectedMetric;
    if (!metrics.length) $('#chart-info').textContent = 'no readings for ' + key;
  } catch (e) {
    $('#chart-info').textContent = e.message;
  }
  await refreshChart();
}

async function refreshChart() {
  if (!selectedDevice || !selectedMetric) {
    drawChart([]);
    return;
  }
  const to = new Date();
  const from = new Date(to.getTime() - 3600 * 1000);
  const url = '/api/telemetry?device=' + encodeURIComponent(selectedDevice) +
    '&metric=' + encodeURIComponent(selectedMetric) +
    '&from=' + encodeURIComponent(from.toISOString()) + '&to=' + encodeURIComponent(to.toISOString());
  try {
    const r = await getJson(url);
    const pts = r.points.filter((p) => p.value !== null).map((p) => ({ t: Date.parse(p.time), v: p.value }));
    $('#chart-info').textContent = selectedDevice + ' · ' + selectedMetric + ' · ' + pts.length + ' readings' +
      (r.truncated ? ' (first 10,000)' : '');
    drawChart(pts, from.getTime(), to.getTime());
  } catch (e) {
    $('#chart-info').textContent = e.message;
  }
}

// "Nice" tick step for a range, 1/2/5 × 10^k.
function niceStep(range, count) {
  const raw = range / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const n = raw / mag;
  return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
}

function drawChart(pts, t0, t1) {
  const canvas = $('#chart');
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 900;
  const cssH = canvas.clientHeight || 280;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  canvas.dataset.points = String(pts.length);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  const css = getComputedStyle(document.documentElement);
  const muted = css.getPropertyValue('--muted').trim() || '#8b98a7';
  const line = css.getPropertyValue('--line').trim() || '#2b3440';
  const accent = css.getPropertyValue('--accent').trim() || '#58a6ff';
  g.font = '11px system-ui, sans-serif';
  if (!pts.length) {
    g.fillStyle = muted;
    g.textAlign = 'center';
    g.fillText(selectedDevice ? 'no readings in the last hour' : 'select a device', cssW / 2, cssH / 2);
    return;
  }
  const left = 56, right = 12, top = 10, bottom = 26;
  const w = cssW - left - right, h = cssH - top - bottom;
  let vmin = Infinity, vmax = -Infinity;
  for (const p of pts) { vmin = Math.min(vmin, p.v); vmax = Math.max(vmax, p.v); }
  if (vmin === vmax) { vmin -= 1; vmax += 1; }
  const pad = (vmax - vmin) * 0.08;
  vmin -= pad; vmax += pad;
  const tMin = t0 !== undefined ? t0 : pts[0].t;
  const tMax = t1 !== undefined ? t1 : pts[pts.length - 1].t;
  const x = (t) => left + ((t - tMin) / Math.max(1, tMax - tMin)) * w;
  const y = (v) => top + (1 - (v - vmin) / (vmax - vmin)) * h;

  // Y grid and labels.
  g.strokeStyle = line;
  g.fillStyle = muted;
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  const ystep = niceStep(vmax - vmin, 5);
  for (let v = Math.ceil(vmin / ystep) * ystep; v <= vmax; v += ystep) {
    const yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(left, yy); g.lineTo(left + w, yy); g.stroke();
    g.fillText(Number(v.toPrecision(6)).toString(), left - 6, yy);
  }
  // X ticks every 10 minutes (or 1/6 of the span).
  g.textAlign = 'center';
  g.textBaseline = 'top';
  const span = tMax - tMin;
  const xstep = span > 20 * 60000 ? 10 * 60000 : Math.max(1000, niceStep(span, 6));
  for (let t = Math.ceil(tMin / xstep) * xstep; t <= tMax; t += xstep) {
    const xx = Math.round(x(t)) + 0.5;
    g.beginPath(); g.moveTo(xx, top + h); g.lineTo(xx, top + h + 4); g.stroke();
    const label = new Date(t).toLocaleTimeString('en-GB', { hour12: false, hour: '2-digit', minute: '2-digit',
      second: xstep < 60000 ? '2-digit' : undefined });
    g.fillText(label, xx, top + h + 7);
  }
  // Axes.
  g.strokeStyle = muted;
  g.beginPath(); g.moveTo(left + 0.5, top); g.lineTo(left + 0.5, top + h + 0.5); g.lineTo(left + w, top + h + 0.5); g.stroke();
  // Series.
  g.strokeStyle = accent;
  g.lineWidth = 2;
  g.lineJoin = 'round';
  g.beginPath();
  pts.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p.v)) : g.moveTo(x(p.t), y(p.v))));
  g.stroke();
  if (pts.length <= 120) {
    g.fillStyle = accent;
    for (const p of pts) { g.beginPath(); g.arc(x(p.t), y(p.v), 3, 0, 2 * Math.PI); g.fill(); }
  }
}

$('#chart-device').addEventListener('change', (e) => selectDevice(e.target.value));
$('#chart-metric').addEventListener('change', (e) => { selectedMetric = e.target.value; refreshChart(); });
window.addEventListener('resize', () => refreshChart());

function every(ms, fn) {
  const run = async () => {
    try { await fn(); } finally { setTimeout(run, ms); }
  };
  run();
}

showUser();
pollOverview();
every(TABLE_MS, refreshDevices);
every(TABLE_MS, refreshDeadLetters);
every(TABLE_MS, refreshCluster);
every(CHART_MS, refreshChart);
