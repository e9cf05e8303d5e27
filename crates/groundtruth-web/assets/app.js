// groundtruth's pages: sign-in, queue, case, metrics, SQL console, region.
// One page app with hash routes (#/queue, #/case/12, ...), talking to the
// review API on the same origin with the signed-in token. Text from the
// server is always set with textContent, never parsed as HTML.

import { t, has, lang, setLang } from './i18n.js';
import * as C from './charts.js';

const DETECTORS = ['phone_farm', 'non_human_track', 'bulk_check_in', 'registration_farm', 'record_churn', 'report_inflation'];
const REVIEWERS = ['inspector', 'admin'];
const ANALYSTS = ['analyst', 'admin'];
const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

const state = { token: null, me: null, after: null };

// ---------------------------------------------------------------- helpers

/** An HTML element with attributes (on* as listeners) and children. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? String(c) : c);
  }
  return el;
}

function main() { return document.getElementById('main'); }

/** Replaces el's children, skipping null/false (conditional parts). */
function put(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

/** Each route's number; a render that resumes after another route started
 *  must not replace that route's page (a slow queue fetch would otherwise
 *  cover the case page opened meanwhile). */
let routeSeq = 0;
function routeLive() { const mine = routeSeq; return () => mine === routeSeq; }

function show(...nodes) {
  const m = main();
  put(m, ...nodes);
  // Which route the page shows (a test can tell a new page from the last).
  m.dataset.route = location.hash;
  m.focus({ preventScroll: true });
}

/** An API failure with the server's words. */
class ApiFailure extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, { method = 'GET', body, accept = 'application/json', raw = false } = {}) {
  const headers = { Accept: accept };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiFailure(0, 'network', t('error.network', { msg: e.message }));
  }
  if (res.status === 401 && state.token && path !== '/api/v1/me') {
    signOut();
    throw new ApiFailure(401, 'unauthorized', t('signin.bad', { msg: res.statusText }));
  }
  if (!res.ok) {
    let code = String(res.status), message = res.statusText;
    try { const j = await res.json(); code = j.error?.code ?? code; message = j.error?.message ?? message; } catch (_) { /* not JSON */ }
    throw new ApiFailure(res.status, code, message);
  }
  if (raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

/** Runs an analysts' query; returns rows as objects. */
async function sql(text, maxRows) {
  const body = { sql: text };
  if (maxRows) body.max_rows = maxRows;
  return api('/api/v1/sql', { method: 'POST', body });
}

/** An error as the page shows it: what it means in the page's language
 * (by the API's error code; 429 by its status), then the server's own
 * words and the code. */
function alertBox(err) {
  if (!(err instanceof ApiFailure)) {
    return h('div', { class: 'alert', role: 'alert' }, h('strong', {}, t('error.title')), ' ', String(err.message || err));
  }
  const kind = err.status === 429 ? 'busy' : err.code;
  const said = label('error', kind);
  return h('div', { class: 'alert', role: 'alert' },
    h('strong', {}, t('error.title')), ' ', said === kind ? '' : said,
    h('span', { class: 'detail' }, ` ${err.message} (${err.code})`));
}

function notice(text) { return h('p', { class: 'notice', role: 'status' }, text); }

function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return d.toLocaleString(lang() === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false });
}

function fmtScore(v) { return (Number(v) || 0).toFixed(2); }

function detectorName(d) { return t(`detector.${d}`); }

/** `key` named in the page's language under `prefix` (`fig`, `sign`,
 * `kind`: an event kind of the contract), or the key itself. */
function named(prefix, key) { return has(`${prefix}.${key}`) ? t(`${prefix}.${key}`) : key; }

function chip(text, cls) { return h('span', { class: `chip ${cls || ''}` }, text); }

function regionName(r) { return r ? r : t('region.all'); }

function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, query] = raw.split('?');
  return { parts: path.split('/').filter(Boolean), params: new URLSearchParams(query || '') };
}

function go(path) { window.location.hash = path; }

function can(roles) { return state.me && roles.includes(state.me.role); }

function legend(items) {
  return h('ul', { class: 'legend' }, items.map(([color, label, dash]) =>
    h('li', {}, h('span', { class: `swatch${dash ? ' dash' : ''}`, dataset: { color } }), label)));
}

/** Legend swatches take their colour from data-color (no inline styles: CSP). */
function paintSwatches(rootEl) {
  for (const sw of rootEl.querySelectorAll('.swatch[data-color]')) sw.style.background = sw.dataset.color;
}

/** Buttons that redraw a chart for one of `n` items (a farm's chains, a
 * device's days): `draw(i)` when pressed, the pressed one marked; `button(i)`
 * gives its `{ attrs, text }`. None for fewer than two items. */
function chartPicker(n, draw, groupLabel, button) {
  if (n < 2) return null;
  const buttons = Array.from({ length: n }, (_, i) => {
    const { attrs, text } = button(i);
    return h('button', {
      type: 'button', 'aria-pressed': 'false', ...attrs,
      onclick: () => { draw(i); for (const b of buttons) b.setAttribute('aria-pressed', String(b === buttons[i])); },
    }, text);
  });
  return h('div', { class: 'chain-picker', role: 'group', 'aria-label': groupLabel }, h('span', { class: 'hint' }, groupLabel), buttons);
}

function figure(title, chart, ...extra) {
  return h('figure', { class: 'panel' }, h('figcaption', {}, title), chart, ...extra);
}

function sqlDetails(text) {
  return h('details', { class: 'sql-behind' },
    h('summary', {}, t('metrics.show_sql')),
    h('pre', {}, h('code', {}, text)),
    can(ANALYSTS) ? h('button', { type: 'button', class: 'link', onclick: () => { sessionStorage.setItem('gt.sql', text); go('/sql'); } }, t('metrics.open_sql')) : null);
}

// Printing (a case file for the paper record, or a PDF): everything folded
// away is opened for the print and folded back after.
let foldedForPrint = [];
window.addEventListener('beforeprint', () => {
  // The raw JSON stays folded: the file has the figures it comes from.
  foldedForPrint = [...document.querySelectorAll('main details:not([open]):not(.raw)')];
  for (const d of foldedForPrint) d.open = true;
});
window.addEventListener('afterprint', () => {
  for (const d of foldedForPrint) d.open = false;
  foldedForPrint = [];
});

/** Hands `blob` to the browser as a download named `name`. */
function saveAs(blob, name) {
  const a = h('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(a); a.click(); a.remove();
}

function table(columns, rows, { caption } = {}) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.label ?? c.name)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => {
      const v = c.render ? c.render(r) : r[c.name];
      return h('td', {}, v === undefined || v === null ? '' : (v instanceof Node ? v : typeof v === 'object' ? JSON.stringify(v) : String(v)));
    }))))));
}

// ---------------------------------------------------------------- shell

function signOut() {
  state.token = null; state.me = null;
  sessionStorage.removeItem('gt.token');
  renderNav();
  go('/signin');
}

function renderNav() {
  const nav = document.getElementById('nav');
  const items = [];
  if (state.me) {
    items.push(['/queue', t('nav.queue'), true]);
    if (can(ANALYSTS)) items.push(['/metrics', t('nav.metrics'), true], ['/sql', t('nav.sql'), true]);
    items.push(['/region', t('nav.region'), true]);
  }
  const here = '/' + (parseHash().parts[0] || '');
  put(nav,
    h('a', { href: '#/', class: 'brand' }, t('app.brand')),
    h('ul', {}, items.map(([href, label]) => h('li', {}, h('a', { href: `#${href}`, 'aria-current': here === href ? 'page' : null }, label)))),
    h('div', { class: 'right' },
      state.me ? h('span', { class: 'who', 'data-role': state.me.role }, t('who', { subject: state.me.subject, role: t(`role.${state.me.role}`), region: regionName(state.me.region) })) : null,
      h('button', { type: 'button', id: 'lang', 'aria-label': t('nav.lang.label'), onclick: () => { setLang(lang() === 'zh' ? 'en' : 'zh'); document.title = t('app.title'); route(); } }, t('nav.lang')),
      state.me ? h('button', { type: 'button', id: 'signout', onclick: signOut }, t('nav.signout')) : null));
  nav.setAttribute('aria-label', t('nav.main'));
}

async function route() {
  routeSeq += 1;
  const live = routeLive();
  const { parts, params } = parseHash();
  renderNav();
  if (!state.me && parts[0] !== 'signin') {
    // A link to a case opened while signed out leads back to that case.
    if (parts[0]) state.after = window.location.hash.slice(1);
    go('/signin');
    return;
  }
  try {
    switch (parts[0] || '') {
      case 'signin': return renderSignIn();
      case '': return go(can(REVIEWERS) ? '/queue' : can(ANALYSTS) ? '/metrics' : state.me.role === 'unit' ? '/region' : '/queue');
      case 'queue': return await renderQueue(params);
      case 'case': return await renderCase(Number(parts[1]));
      case 'metrics': return can(ANALYSTS) ? await renderMetrics(params) : show(alertBox(new Error(t('error.forbidden'))));
      case 'sql': return can(ANALYSTS) ? renderSql() : show(alertBox(new Error(t('error.forbidden'))));
      case 'region': return await renderRegion(params);
      default: return go('/');
    }
  } catch (e) {
    if (live()) show(alertBox(e));
  }
}

// ---------------------------------------------------------------- sign-in

function renderSignIn() {
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const msg = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'signin', onsubmit: async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) { put(msg, alertBox(new Error(t('signin.empty')))); return; }
    state.token = token;
    try {
      state.me = await api('/api/v1/me');
      sessionStorage.setItem('gt.token', token);
      const after = state.after;
      state.after = null;
      go(after || '/');
    } catch (err) {
      state.token = null;
      put(msg, h('div', { class: 'alert', role: 'alert' }, t('signin.bad', { msg: err.message })));
    }
  } },
  h('h1', {}, t('signin.title')),
  h('p', {}, t('signin.intro')),
  h('label', { for: 'token' }, t('signin.token')), input,
  h('button', { type: 'submit', class: 'primary' }, t('signin.submit')),
  msg);
  show(form);
  input.focus();
}

// ---------------------------------------------------------------- queue

const QUEUE_KEYS = ['detector', 'region', 'app', 'min_score', 'status', 'assignee', 'sort', 'order'];

/** Claims the next open case of the queue's filters (`params`, or the
 *  ones the queue was last shown with), or null when there is none. */
async function claimNext(params) {
  const p = params || new URLSearchParams(sessionStorage.getItem('gt.queue') || '');
  const body = {};
  if (p.get('detector')) body.detectors = p.get('detector').split(',');
  if (p.get('region')) body.region = p.get('region');
  if (p.get('app')) body.app = p.get('app');
  return api('/api/v1/cases/claim-next', { method: 'POST', body });
}

async function renderQueue(params) {
  // The filters "save and next" claims by (see verdictPanel).
  sessionStorage.setItem('gt.queue', params.toString());
  const live = routeLive();
  const p = new URLSearchParams();
  for (const k of QUEUE_KEYS) if (params.get(k)) p.set(k, params.get(k));
  // A unit sees decided cases only (open ones are counted on its region
  // page): its queue starts at them.
  const firstStatus = state.me.role === 'unit' ? 'closed' : 'open';
  if (!params.has('status')) p.set('status', firstStatus);
  if (params.get('cursor')) p.set('cursor', params.get('cursor'));
  p.set('limit', '50');
  const page = await api(`/api/v1/cases?${p}`);
  const reviewer = can(REVIEWERS);

  const field = (name, label, control) => h('div', { class: 'field' }, h('label', { for: `f-${name}` }, label), control);
  const select = (name, options, value) => h('select', { id: `f-${name}`, name },
    options.map(([v, label]) => h('option', { value: v, selected: v === (value ?? '') }, label)));
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': t('queue.filters'), onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(e.target)) if (v !== '') q.set(k, v);
    if (!q.has('status')) q.set('status', '');
    go(`/queue?${q}`);
  } },
  field('detector', t('queue.detector'), select('detector', [['', t('queue.any')], ...DETECTORS.map((d) => [d, detectorName(d)])], params.get('detector'))),
  field('region', t('queue.region'), h('input', { id: 'f-region', name: 'region', inputmode: 'numeric', pattern: '[0-9]{0,6}', value: params.get('region') || '', size: 7 })),
  field('app', t('queue.app'), h('input', { id: 'f-app', name: 'app', value: params.get('app') || '', size: 12 })),
  field('min_score', t('queue.min_score'), h('input', { id: 'f-min_score', name: 'min_score', type: 'number', min: 0, max: 1, step: 0.05, value: params.get('min_score') || '' })),
  field('status', t('queue.status'), select('status', [['open', t('status.open')], ['needs_info', t('status.needs_info')], ['closed', t('status.closed')], ['', t('queue.any')]], params.has('status') ? params.get('status') : firstStatus)),
  field('assignee', t('queue.assignee'), select('assignee', [['', t('queue.any')], ['me', t('queue.assignee.me')], ['none', t('queue.assignee.none')]], params.get('assignee'))),
  field('sort', t('queue.sort'), select('sort', ['score', 'updated', 'created', 'window_end'].map((k) => [k, t(`queue.sort.${k}`)]), params.get('sort') || 'score')),
  field('order', t('queue.order'), select('order', [['desc', t('queue.order.desc')], ['asc', t('queue.order.asc')]], params.get('order') || 'desc')),
  h('div', { class: 'buttons' },
    h('button', { type: 'submit', class: 'primary' }, t('queue.apply')),
    h('button', { type: 'button', onclick: () => go('/queue') }, t('queue.reset'))));

  const selected = new Set();
  const status = h('div', { 'aria-live': 'polite', class: 'status-line' });
  const count = h('span', { class: 'count' }, t('queue.selected', { n: 0 }));
  const boxes = [];
  const updateCount = () => { count.textContent = t('queue.selected', { n: selected.size }); };

  const rows = page.items.map((c, i) => {
    const box = h('input', { type: 'checkbox', 'aria-label': `${t('queue.col.select')} ${c.case_id}`, onchange: (e) => {
      if (e.target.checked) selected.add(c.case_id); else selected.delete(c.case_id);
      updateCount();
    } });
    boxes.push(box);
    return h('tr', { tabindex: -1, dataset: { caseId: c.case_id, index: i } },
      h('td', {}, reviewer ? box : null),
      h('td', {}, h('a', { href: `#/case/${c.case_id}` }, `#${c.case_id}`)),
      h('td', {}, c.detectors.map((d) => chip(detectorName(d), `det-${d}`))),
      h('td', {}, c.app_id),
      h('td', {}, c.region),
      h('td', { class: 'num' }, String(c.n_accounts)),
      h('td', { class: 'num' }, h('meter', { min: 0, max: 1, value: c.score, 'aria-hidden': 'true' }), ' ', fmtScore(c.score)),
      h('td', {}, chip(t(`status.${c.status}`), `st-${c.status}`), c.proposal ? [' ', chip(t('case.proposal.chip'), 'st-proposed')] : null),
      h('td', {}, c.assignee || '—'),
      h('td', {}, fmtTime(c.window_end)));
  });

  const bulk = async (body) => {
    if (!selected.size) { put(status, notice(t('queue.bulk.need_selection'))); return; }
    try {
      const out = await api('/api/v1/cases/bulk', { method: 'POST', body: { case_ids: [...selected], ...body } });
      const ok = out.filter((r) => r.ok).length;
      put(status, notice(t('queue.bulk.done', { ok, failed: out.length - ok })));
      setTimeout(route, 600);
    } catch (e) { put(status, alertBox(e)); }
  };
  const assigneeInput = h('input', { id: 'bulk-assignee', size: 12 });
  const bulkNote = h('input', { id: 'bulk-note', size: 24 });
  const bulkBar = reviewer ? h('section', { class: 'bulk', 'aria-label': t('queue.bulk') },
    count,
    h('button', { type: 'button', onclick: () => { const all = boxes.every((b) => b.checked); boxes.forEach((b, i) => { b.checked = !all; const id = page.items[i].case_id; if (!all) selected.add(id); else selected.delete(id); }); updateCount(); } }, t('queue.select_all')),
    h('button', { type: 'button', id: 'bulk-assign-me', onclick: () => bulk({ action: 'assign', assignee: state.me.subject }) }, t('queue.bulk.assign_me')),
    h('label', { for: 'bulk-assignee' }, t('queue.bulk.assignee')), assigneeInput,
    h('button', { type: 'button', onclick: () => bulk({ action: 'assign', assignee: assigneeInput.value.trim() }) }, t('queue.bulk.assign_to')),
    h('button', { type: 'button', onclick: () => bulk({ action: 'unassign' }) }, t('queue.bulk.unassign')),
    h('label', { for: 'bulk-note' }, t('queue.bulk.note')), bulkNote,
    h('button', { type: 'button', onclick: () => bulk({ action: 'close', verdict: 'confirmed', note: bulkNote.value }) }, t('queue.bulk.confirm')),
    h('button', { type: 'button', onclick: () => bulk({ action: 'close', verdict: 'dismissed', note: bulkNote.value }) }, t('queue.bulk.dismiss'))) : null;

  const claim = async () => {
    try {
      const c = await claimNext(params);
      if (!c) put(status, notice(t('queue.claim.none')));
      else go(`/case/${c.case_id}`);
    } catch (e) { put(status, alertBox(e)); }
  };

  const cols = ['select', 'case', 'detectors', 'app', 'region', 'accounts', 'score', 'status', 'assignee', 'window'];
  const tbl = h('table', { class: 'queue', 'aria-describedby': 'queue-keys' },
    h('caption', { class: 'sr-only' }, t('queue.title')),
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, t(`queue.col.${c}`))))),
    h('tbody', {}, rows));
  const pager = h('nav', { class: 'pager', 'aria-label': 'pages' },
    params.get('cursor') ? h('button', { type: 'button', onclick: () => { const q = new URLSearchParams(params); q.delete('cursor'); go(`/queue?${q}`); } }, t('queue.first')) : null,
    page.next_cursor ? h('button', { type: 'button', id: 'next-page', onclick: () => { const q = new URLSearchParams(params); q.set('cursor', page.next_cursor); go(`/queue?${q}`); } }, t('queue.next')) : null);

  if (!live()) return;
  show(
    h('div', { class: 'title-row' }, h('h1', {}, t('queue.title')),
      reviewer ? h('button', { type: 'button', id: 'claim-next', class: 'primary', onclick: claim }, t('queue.claim')) : null),
    filters, bulkBar, status,
    page.items.length ? h('div', { class: 'table-wrap' }, tbl) : notice(t('queue.empty')),
    pager,
    h('p', { id: 'queue-keys', class: 'hint keys' }, t('queue.keys')));

  // Keyboard: j/k move, Enter/o open, x select, c claim, / filters.
  let at = -1;
  const focusRow = (i) => { if (!rows.length) return; at = Math.max(0, Math.min(rows.length - 1, i)); rows[at].focus(); };
  setKeys((e) => {
    if (e.key === 'j' || e.key === 'ArrowDown') { focusRow(at + 1); return true; }
    if (e.key === 'k' || e.key === 'ArrowUp') { focusRow(at - 1); return true; }
    if ((e.key === 'Enter' || e.key === 'o') && at >= 0) { go(`/case/${page.items[at].case_id}`); return true; }
    if (e.key === 'x' && at >= 0 && reviewer) { boxes[at].click(); return true; }
    if (e.key === 'c' && reviewer) { claim(); return true; }
    if (e.key === '/') { document.getElementById('f-detector').focus(); return true; }
    return false;
  });
}

// ------------------------------------------------------------- keyboard

let pageKeys = null;
function setKeys(handler) { pageKeys = handler; }

document.addEventListener('keydown', (e) => {
  const help = document.getElementById('help');
  if (e.key === 'Escape' && help) { help.remove(); e.preventDefault(); return; }
  const tag = (e.target.tagName || '').toLowerCase();
  if (['input', 'textarea', 'select'].includes(tag) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === '?') { showHelp(); e.preventDefault(); return; }
  if (pageKeys && pageKeys(e)) e.preventDefault();
});

function showHelp() {
  const old = document.getElementById('help');
  if (old) { old.remove(); return; }
  const close = h('button', { type: 'button', onclick: () => dlg.remove() }, t('help.close'));
  const dlg = h('div', { id: 'help', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'help-title', class: 'dialog' },
    h('h2', { id: 'help-title' }, t('help.title')),
    h('p', {}, t('queue.keys')), h('p', {}, t('case.decide.keys')), close);
  document.body.append(dlg);
  close.focus();
}

// ---------------------------------------------------------------- case

async function renderCase(id) {
  if (!Number.isInteger(id) || id <= 0) { go('/queue'); return; }
  const live = routeLive();
  const detail = await api(`/api/v1/cases/${id}`);
  if (!live()) return;
  const c = detail.case;
  const reviewer = can(REVIEWERS);
  const raised = detail.findings.filter((f) => f.raised);
  const reasons = (raised.length ? raised : detail.findings).map((f) => h('li', {},
    h('strong', {}, detectorName(f.finding.detector)), ' — ', reasonText(f.finding)));

  const facts = h('dl', { class: 'facts' },
    h('dt', {}, t('case.app')), h('dd', {}, c.app_id),
    h('dt', {}, t('case.regions')), h('dd', {}, c.regions.join(', ') || '—'),
    h('dt', {}, t('case.accounts')), h('dd', {}, `${c.accounts.join(', ')}${c.outside_scope ? '' : (c.n_accounts > c.accounts.length ? ` … (${c.n_accounts})` : '')}`,
      c.outside_scope ? h('p', { class: 'hint', id: 'outside-scope' }, t('case.outside', { n: c.outside_scope.hidden_accounts, regions: c.outside_scope.regions.join(', ') })) : null),
    h('dt', {}, t('case.window')), h('dd', {}, `${fmtTime(c.window_start)} → ${fmtTime(c.window_end)}`),
    h('dt', {}, t('case.assignee')), h('dd', {}, c.assignee || '—'),
    h('dt', {}, t('queue.col.status')), h('dd', {}, chip(t(`status.${c.status}`), `st-${c.status}`), c.verdict ? ` ${t(`verdict.${c.verdict}`)}` : '', c.proposal ? [' ', chip(t('case.proposal.chip'), 'st-proposed')] : null));

  const evidence = detail.findings.map((f) => evidenceSection(f));
  const timelineBox = h('section', { class: 'panel', id: 'timeline', 'aria-labelledby': 'tl-h' }, h('h2', { id: 'tl-h' }, t('case.timeline')), notice(t('loading')));
  const historyBox = h('section', { class: 'panel', id: 'history', 'aria-labelledby': 'hist-h' }, h('h2', { id: 'hist-h' }, t('case.history')), notice(t('loading')));
  const decide = reviewer ? verdictPanel(c) : null;
  const notes = detail.notes.length ? h('section', { class: 'panel' }, h('h2', {}, t('case.notes')),
    h('ul', { class: 'notes' }, detail.notes.map((n) => h('li', {}, h('span', { class: 'meta' }, `${fmtTime(n.at)} · ${n.author}`), ' ', n.text)))) : null;
  const replies = repliesPanel(c, detail.replies || []);

  show(
    h('p', { class: 'print-only print-head' }, t('case.print.head', { id: c.case_id, at: fmtTime(new Date().toISOString()), who: t('who', { subject: state.me.subject, role: t(`role.${state.me.role}`), region: regionName(state.me.region) }) })),
    h('p', {}, h('a', { href: '#/queue' }, t('case.back'))),
    h('div', { class: 'title-row' }, h('h1', {}, t('case.title', { id: c.case_id })),
      h('div', { class: 'buttons' }, h('button', { type: 'button', id: 'print-case', onclick: () => window.print() }, t('case.print')), chip(fmtScore(c.score), 'score'))),
    h('section', { class: 'reason', 'aria-labelledby': 'why-h' }, h('h2', { id: 'why-h' }, t('case.why')), h('ul', {}, reasons)),
    h('div', { class: 'two-col' },
      h('section', { class: 'panel', 'aria-labelledby': 'facts-h' }, h('h2', { id: 'facts-h' }, t('case.facts')), facts),
      decide),
    h('h2', {}, t('case.evidence')),
    evidence, timelineBox, replies, notes, historyBox);
  paintSwatches(main());

  setKeys((e) => {
    if (!decide) return false;
    const map = { 1: 'confirmed', 2: 'dismissed', 3: 'needs_info' };
    if (map[e.key]) { const b = decide.querySelector(`[data-verdict="${map[e.key]}"]`); if (b) b.focus(); return true; }
    return false;
  });

  loadTimeline(id, timelineBox, c);
  loadHistory(id, historyBox);
}

// The right of reply: a unit answers a decided case about its people; the
// reply is evidence on the case, shown to its inspectors.
function repliesPanel(c, replies) {
  const unit = state.me.role === 'unit';
  if (!replies.length && !(unit && c.status === 'closed')) return null;
  const list = replies.length
    ? h('ul', { class: 'notes', id: 'replies' }, replies.map((r) => h('li', {}, h('span', { class: 'meta' }, `${fmtTime(r.at)} · ${r.author} · ${regionName(r.region)}`), ' ', r.text)))
    : h('p', { class: 'hint' }, t('case.replies.none'));
  let form = null;
  if (unit && c.status === 'closed') {
    const text = h('textarea', { id: 'reply-text', rows: 3, maxlength: 10000, 'aria-required': 'true' });
    const msg = h('div', { 'aria-live': 'polite' });
    const send = async () => {
      if (!text.value.trim()) { put(msg, alertBox(new Error(t('case.reply.required')))); text.focus(); return; }
      try {
        await api(`/api/v1/cases/${c.case_id}/replies`, { method: 'POST', body: { text: text.value } });
        await renderCase(c.case_id);
      } catch (e) { put(msg, alertBox(e)); }
    };
    form = h('div', {},
      h('label', { for: 'reply-text' }, t('case.reply.label')), text,
      h('div', { class: 'buttons' }, h('button', { type: 'button', id: 'send-reply', class: 'primary', onclick: send }, t('case.reply.send'))),
      msg);
  }
  return h('section', { class: 'panel reply', 'aria-labelledby': 'replies-h' },
    h('h2', { id: 'replies-h' }, t('case.replies')),
    unit ? h('p', { class: 'hint' }, t('case.replies.hint')) : null,
    list, form);
}

function verdictPanel(c) {
  // What the inspector typed is kept (per case, for the tab's life) until
  // it is saved: a reload, or a colleague's change answered 409, loses
  // nothing.
  const draftKey = `gt.draft.${c.case_id}`;
  const conflictKey = `gt.conflict.${c.case_id}`;
  const note = h('textarea', { id: 'verdict-note', rows: 3, maxlength: 10000, 'aria-required': 'true' });
  note.value = sessionStorage.getItem(draftKey) || '';
  note.addEventListener('input', () => sessionStorage.setItem(draftKey, note.value));
  const msg = h('div', { 'aria-live': 'polite' });
  if (sessionStorage.getItem(conflictKey)) {
    sessionStorage.removeItem(conflictKey);
    put(msg, h('div', { class: 'alert', role: 'alert' }, t('case.conflict.kept')));
  }
  const saved = async () => {
    sessionStorage.removeItem(draftKey);
    await renderCase(c.case_id);
  };
  const failed = async (e) => {
    if (e.status === 409) {
      // The page is stale: show the case as it is now, the note kept.
      sessionStorage.setItem(draftKey, note.value);
      sessionStorage.setItem(conflictKey, '1');
      await renderCase(c.case_id);
      return;
    }
    put(msg, alertBox(e));
  };
  // Save and next: after a verdict, the next open case of the queue's
  // filters is claimed and opened (kept on for the browser).
  const next = h('input', { type: 'checkbox', id: 'save-next', checked: localStorage.getItem('gt.next') === '1' });
  next.addEventListener('change', () => localStorage.setItem('gt.next', next.checked ? '1' : '0'));
  const decide = async (verdict) => {
    if (!note.value.trim()) { put(msg, alertBox(new Error(t('case.note.required')))); note.focus(); return; }
    try {
      await api(`/api/v1/cases/${c.case_id}/verdict`, { method: 'POST', body: { verdict, note: note.value, expected_version: c.version } });
      put(msg, notice(t('case.saved')));
      if (next.checked) {
        sessionStorage.removeItem(draftKey);
        const n = await claimNext();
        if (n) { go(`/case/${n.case_id}`); return; }
        put(msg, notice(t('case.saved')), notice(t('queue.claim.none')));
      }
      await saved();
    } catch (e) { await failed(e); }
  };
  const reopen = async () => {
    try {
      await api(`/api/v1/cases/${c.case_id}/reopen`, { method: 'POST', body: { note: note.value } });
      await saved();
    } catch (e) { await failed(e); }
  };
  const addNote = async () => {
    try {
      await api(`/api/v1/cases/${c.case_id}/notes`, { method: 'POST', body: { text: note.value } });
      await saved();
    } catch (e) { await failed(e); }
  };
  const closed = c.status === 'closed';
  // Four eyes: a confirmation proposed by one inspector waits for another.
  const p = c.proposal;
  const mine = p && p.by === state.me.subject;
  const proposal = p ? h('div', { class: 'notice proposal', id: 'proposal', role: 'status' },
    h('strong', {}, t('case.proposal.title')), ' ',
    t('case.proposal.text', { by: p.by, at: fmtTime(p.at), note: p.note }), ' ',
    mine ? t('case.proposal.mine') : t('case.proposal.other')) : null;
  return h('section', { class: 'panel decide', 'aria-labelledby': 'decide-h' },
    h('h2', { id: 'decide-h' }, t('case.decide')),
    closed ? h('p', {}, t('case.closed_by', { verdict: t(`verdict.${c.verdict}`) })) : null,
    proposal,
    h('label', { for: 'verdict-note' }, t('case.note')), note,
    h('div', { class: 'buttons' },
      closed ? h('button', { type: 'button', id: 'reopen', onclick: reopen }, t('case.reopen'))
        : ['confirmed', 'dismissed', 'needs_info'].map((v, i) => h('button', {
          type: 'button', class: `verdict v-${v}`, dataset: { verdict: v }, onclick: () => decide(v),
          disabled: mine && v === 'confirmed' ? true : null,
        }, `${i + 1} · ${p && !mine ? t(v === 'confirmed' ? 'case.proposal.sign' : 'case.proposal.back', { verdict: t(`verdict.${v}`) }) : t(`verdict.${v}`)}`)),
      h('button', { type: 'button', id: 'add-note', onclick: addNote }, t('case.add_note'))),
    closed ? null : h('div', { class: 'field inline' }, next, h('label', { for: 'save-next' }, t('case.save_next'))),
    h('p', { class: 'hint keys' }, t('case.decide.keys')),
    msg);
}

// The SQL that gives the timeline's daily counts (for the file, and for an
// analyst to rerun): the case's accounts (those in the reader's region) and
// app over the same span.
function timelineSql(c, tl) {
  const apps = c.app_id && !c.app_id.includes(',') ? `\n  AND app_id = ${sqlString(c.app_id)}` : '';
  return `SELECT event_date, kind, count(*) AS events\nFROM events\nWHERE account_id IN (${c.accounts.map(sqlString).join(', ')})${apps}\n  AND ts >= ${sqlString(tl.from)} AND ts < ${sqlString(tl.to)}\nGROUP BY 1, 2\nORDER BY 1, 2`;
}

async function loadTimeline(id, box, c) {
  const title = box.firstChild;
  try {
    const tl = await api(`/api/v1/cases/${id}/timeline`);
    const days = [...new Set(tl.per_day.map((r) => r.event_date))].sort();
    const kinds = [...new Set(tl.per_day.map((r) => r.kind))].sort();
    const stacks = kinds.map((k) => ({
      label: named('kind', k), color: C.colorOf(k, kinds),
      values: days.map((d) => tl.per_day.filter((r) => r.event_date === d && r.kind === k).reduce((a, r) => a + Number(r.events), 0)),
    }));
    const strip = C.eventStrip(tl.events, { labels: { title: t('case.timeline.events') } });
    put(box, title,
      figure(t('case.timeline.per_day'), C.bars(days, { stacks, labels: { title: t('case.timeline.per_day') }, kind: 'per-day' }),
        legend(kinds.map((k) => [C.colorOf(k, kinds), named('kind', k)]))),
      figure(t('case.timeline.events'), strip.svg, legend(strip.kinds.map((k) => [C.colorOf(k, strip.kinds), named('kind', k)]))),
      tl.truncated ? notice(t('case.timeline.truncated', { n: tl.events.length })) : null,
      c ? sqlDetails(timelineSql(c, tl)) : null);
    paintSwatches(box);
  } catch (e) {
    put(box, title, e.status === 503 ? notice(t('case.timeline.none')) : alertBox(e));
  }
  box.dataset.loaded = 'true';
}

async function loadHistory(id, box) {
  const title = box.firstChild;
  try {
    const items = await api(`/api/v1/cases/${id}/history`);
    const summary = (v) => (v ? Object.entries(v).map(([k, x]) => `${label('history.field', k)}: ${historyValue(k, x)}`).join(lang() === 'zh' ? '；' : ', ') : '');
    put(box, title, items.length ? h('ol', { class: 'history' }, items.map((a) => h('li', { dataset: { action: a.action } },
      h('span', { class: 'meta' }, `${fmtTime(a.at)} · ${a.actor}${lang() === 'zh' ? `（${label('role', a.role)}）` : ` (${label('role', a.role)})`}`), ' ',
      h('strong', {}, label('history.action', a.action)), ' ',
      a.before ? h('span', { class: 'before' }, summary(a.before), ' → ') : null,
      h('span', { class: 'after' }, summary(a.after))))) : notice(t('case.history.empty')));
  } catch (e) { put(box, title, alertBox(e)); }
  box.dataset.loaded = 'true';
}

/** The label of `prefix.key`, or the key itself when there is none. */
function label(prefix, key) {
  const k = `${prefix}.${key}`;
  const v = t(k);
  return v === k ? key : v;
}

/** A report category in the page's language where it is a common one
 * (`neighbour-noise`, `road_damage`, ...); any other id as it came. */
function categoryName(id) {
  return label('category', String(id).toLowerCase().replace(/_/g, '-'));
}

/** A value of a history line as people read it. */
function historyValue(key, v) {
  if (v === null || v === undefined) return '—';
  if (key === 'status') return label('status', v);
  if (key === 'verdict') return label('verdict', v);
  if (key === 'detector') return detectorName(v);
  if (key === 'raised' || typeof v === 'boolean') return t(v ? 'history.yes' : 'history.no');
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(v)) return fmtTime(v);
  if (typeof v === 'number') return fmtValue(v);
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** A number as the reasons show it: whole, or at most `digits` decimals. */
function num(v, digits = 1) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '?';
  return Number.isInteger(v) ? String(v) : String(Number(v.toFixed(digits)));
}

/** How many: a list's length, or the number itself. */
function count(v) { return Array.isArray(v) ? v.length : (typeof v === 'number' ? v : null); }

/** A finding's reason in Chinese, from its evidence (the detectors write
 * theirs in English): null when the evidence lacks what it needs, and the
 * page then shows the detector's own words. */
function reasonZh(f) {
  const ev = f.evidence || {};
  const n = f.accounts.length;
  switch (f.detector) {
    case 'phone_farm': {
      if (ev.sessions == null || !ev.net_key) return null;
      let s = `${n} 个账号在同一网络（${ev.net_key}）上于 ${count(ev.days) ?? '?'} 天里被轮流使用：${ev.sessions} 个会话互不重叠，每个都在上一个结束后 ${num(ev.max_gap_s)} 秒内开始。`;
      if (typeof ev.order_tau === 'number' && ev.order_tau >= 0.8) s += `每天的账号顺序几乎相同（肯德尔 τ ${num(ev.order_tau, 2)}）。`;
      if (ev.static_phones) s += `${ev.static_phones} 部手机从未服务其他账号，也从未离开该网络。`;
      return `${s}这正是一个人操作一排手机的样子。`;
    }
    case 'bulk_check_in': {
      if (!ev.device || ev.accounts_per_day_max == null) return null;
      let s = `一台设备（${ev.device}）在 ${count(ev.days) ?? '?'} 天里为 ${n} 个账号打卡（一天最多 ${ev.accounts_per_day_max} 个）。`;
      if (ev.copied_coordinates) s += `${ev.copied_coordinates} 次打卡坐标与其他账号完全相同。`;
      if (ev.far_from_point) s += `${ev.far_from_point} 次打卡远离账号自己的岗位。`;
      if (ev.regular_days) s += `${ev.regular_days} 天的打卡间隔整齐得像脚本。`;
      return s;
    }
    case 'registration_farm': {
      if (ev.registrations == null || ev.minutes == null) return null;
      let s = `${ev.referrer ? `通过推荐人 ${ev.referrer} ` : ''}在 ${num(ev.minutes, 0)} 分钟内注册了 ${ev.registrations} 个新账号，使用 ${count(ev.devices) ?? '?'} 部手机、${count(ev.ips) ?? '?'} 个网络地址。`;
      if (ev.emulated) s += `其中 ${ev.emulated} 个来自模拟器或未经认证的手机。`;
      if (ev.observed) s += `之后只有 ${ev.came_back ?? 0}/${ev.observed} 个在另一天再次使用（其他新账号：${num((ev.others_return_rate || 0) * 100, 0)}%）。`;
      return s;
    }
    case 'record_churn': {
      if (ev.operations == null || ev.re_entries == null) return null;
      const share = ev.operations ? ((ev.re_entries + (ev.no_op_updates || 0)) / ev.operations) * 100 : 0;
      let s = `在 ${count(ev.days) ?? '?'} 天里，该账号的人口数据工作主要是空转：${ev.re_entries} 次删除后重新录入同一记录，${ev.no_op_updates || 0} 次什么都没改的更新，占全部 ${ev.operations} 次操作的 ${num(share, 0)}%。`;
      if (ev.peer_median_churn_per_day != null) s += `同类账号每天约 ${num(ev.peer_median_churn_per_day)} 次。`;
      return s;
    }
    case 'report_inflation': {
      if (ev.reports == null || ev.expected_reports == null) return null;
      const days = Array.isArray(ev.days) ? ev.days.map((d) => d.date).filter(Boolean) : [];
      let s = `单位 ${ev.region || '?'} 在 ${days.length} 天（${days.join('、')}）提交了 ${ev.reports} 份报告，按其前一周和同类单位推算约为 ${num(ev.expected_reports, 0)} 份。`;
      if (ev.repeated_text) s += `有文字的 ${ev.with_text ?? ev.reports} 份中 ${ev.repeated_text} 份与之前的报告逐字相同。`;
      if (ev.same_spot_copies) s += `${ev.same_spot_copies} 份在同一地点重复提交。`;
      if ((ev.signs || []).includes('rapid_succession') && ev.rapid_succession) s += `${ev.rapid_succession} 份是同一人在上一份提交后两分钟内接连提交的。`;
      const cats = Array.isArray(ev.days) ? [...new Set(ev.days.flatMap((d) => d.top_categories || []))] : [];
      if ((ev.signs || []).includes('two_categories') && cats.length) s += `报告集中在少数类别（${cats.map(categoryName).join('、')}），远超同类单位的比例${(ev.days || []).some((d) => d.own_top_share != null) ? '，也超出本单位前一周的比例' : ''}。`;
      return s;
    }
    case 'non_human_track': {
      const x = ev.features || {};
      const parts = (ev.classes || []).map((c) => {
        switch (c.class) {
          case 'teleporting': return '轨迹中有地面上不可能的瞬移（一步超过每秒 100 米），之后从新位置继续。';
          case 'synthetic': return `以机器般恒定的速度沿笔直的线移动（定位点离直线平均 ${num(x.jitter_m, 2)} 米）；人携带的手机速度起伏至少 10%，定位点散布数米。`;
          case 'animal-like':
            if ((x.bursts ?? 0) < 2 && x.course_window_m != null) {
              // A dog that never runs: found by its meandering, not dashes.
              return `在约 ${num(x.max_excursion_m, 0)} 米的范围内四处游荡：每走 ${num(x.course_window_m, 0)} 米只前进约 ${num(x.course_straightness * 100, 0)}%，每 ${num(x.rediscretise_m, 0)} 米转向约 ${num(x.turn_median_deg, 0)}°，只有 ${num((x.straight_share ?? 0) * 100, 0)}% 的路程是直线，${x.home_returns ?? '?'} 次回到同一地点；人无论巡河还是踏勘小块场地，都是走直线、在拐点急转。这是狗边嗅边走的走法。`;
            }
            return `在约 ${num(x.max_excursion_m, 0)} 米的范围内来回，${x.home_returns ?? '?'} 次回到同一地点，${x.bursts ?? '?'} 次冲刺（约每秒 ${num(x.burst_speed_median)} 米）；人巡查时沿路线以每秒 1.2–1.5 米稳定行走。这是狗的走法。`;
          case 'replayed': {
            const r = ev.replay || {};
            return `逐点重复了${r.source_account_id ? `账号 ${r.source_account_id} 的` : '另一次'}巡查轨迹${r.source_patrol_id ? ` ${r.source_patrol_id}` : ''}（平移 ${num(r.offset_m)} 米，平均只差 ${num(r.residual_m, 2)} 米）；同一路线真实走两次，GPS 误差不同，会相差数米。`;
          }
          default: return null;
        }
      });
      return parts.length && parts.every(Boolean) ? parts.join('') : null;
    }
    default: return null;
  }
}

/** The reason as the page shows it: in Chinese when the page is. */
function reasonText(f) {
  return withheldText(f) || (lang() === 'zh' && reasonZh(f)) || f.reason;
}

/** What replaces a finding's reason when its evidence was withheld (it
 * reaches regions outside the caller's scope), or null. */
function withheldText(f) {
  const w = f.evidence?.withheld;
  return w ? t('ev.withheld', { regions: (w.regions || []).join(', '), n: f.accounts.length }) : null;
}

/** One finding: its reason, its evidence as a picture, the figures. */
function evidenceSection(rec) {
  const f = rec.finding;
  const ev = f.evidence || {};
  const parts = [];
  const withheld = withheldText(f);
  const labels = (title) => ({ title, scale: t('ev.track.scale') });
  switch (withheld ? null : f.detector) {
    case 'non_human_track': {
      const pts = ev.geometry?.points || [];
      const replay = ev.replay?.source_geometry?.points;
      parts.push(figure(t('ev.track'), C.trackPlot(pts, { replay, labels: labels(t('ev.track')) }),
        legend([['#2ca02c', t('ev.legend.walk')], ['#ff7f0e', t('ev.legend.fast')], ['#4a6fa5', t('ev.legend.slow')],
          ...(replay ? [['#555', t('ev.track.replay'), true]] : [])])));
      parts.push(figure(t('ev.speed'), C.speedProfile(pts, { labels: { title: t('ev.speed'), band: t('ev.speed.band'), axis: t('ev.speed.axis') } }),
        legend([['#2ca02c', t('ev.speed.band')]])));
      if (Array.isArray(ev.classes) && ev.classes.length) {
        // Each class's score; its words are the reason above (in Chinese
        // on a Chinese page, the detector's English under it).
        const zh = lang() === 'zh' && reasonZh(f);
        parts.push(figureTable(t('ev.figures'), Object.fromEntries(ev.classes.map((c) => [c.class, zh ? fmtScore(c.score) : `${fmtScore(c.score)} — ${c.reason}`]))));
      }
      if (ev.replay) parts.push(figureTable(t('ev.track.replay'), pick(ev.replay, ['source_account_id', 'source_patrol_id', 'source_start', 'residual_m', 'offset_m', 'cover'])));
      if (ev.features) parts.push(figureTable(t('ev.features'), ev.features, { collapsed: true }));
      break;
    }
    case 'phone_farm': {
      if (Array.isArray(ev.timeline) && ev.timeline.length) {
        // One chain at a time (a farm works on several days): a button per
        // chain, with its day, start and accounts in order.
        const chains = Array.isArray(ev.timeline[0]) ? ev.timeline.filter((c) => c.length) : [];
        const holder = h('div', { class: 'farm-chart' });
        const draw = (i) => put(holder, C.sessionTimeline(ev.timeline, { labels: { title: t('ev.farm') }, focus: i }));
        draw(undefined);
        const picker = chartPicker(chains.length, draw, t('ev.farm.chains'), (i) => {
          const c = chains[i];
          return {
            attrs: { dataset: { chain: String(i) }, title: c.map((x) => x.account).filter((a, k, all) => all.indexOf(a) === k).join(' → ') },
            text: t('ev.farm.chain', { at: fmtTime(c[0].start), n: new Set(c.map((x) => x.account)).size }),
          };
        });
        parts.push(figure(t('ev.farm'), holder, picker, h('p', { class: 'hint' }, t('ev.farm.row'))));
      }
      parts.push(figureTable(t('ev.figures'), pick(ev, ['pattern', 'chains', 'sessions', 'max_gap_s', 'median_session_s', 'order_tau', 'mean_similarity', 'static_phones', 'phones_with_profile', 'chance_log10', 'days'])));
      break;
    }
    case 'bulk_check_in': {
      if (Array.isArray(ev.check_ins) && ev.check_ins.length) {
        parts.push(figure(t('ev.checkins'), C.checkinScatter(ev.check_ins, { labels: { title: t('ev.checkins'), scale: t('ev.track.scale'), stack: (n) => t('ev.checkins.stack', { n }) } })));
        // The rhythm: each day's check-ins on one device, a row per
        // account, joined in order (one account after another, seconds
        // apart); a button per day.
        const byDay = new Map();
        for (const c of ev.check_ins) {
          if (!Number.isFinite(Date.parse(c.ts))) continue;
          const day = C.localDay(c.ts);
          if (!byDay.has(day)) byDay.set(day, []);
          byDay.get(day).push({ account: c.account, device: ev.device || '', start: c.ts, end: c.ts });
        }
        const days = [...byDay.keys()].sort();
        const chains = days.map((d) => byDay.get(d).sort((a, b) => Date.parse(a.start) - Date.parse(b.start)));
        if (chains.length) {
          const holder = h('div', { class: 'rhythm-chart' });
          const draw = (i) => put(holder, C.sessionTimeline(chains, { labels: { title: t('ev.rhythm') }, focus: i, minPadMs: 5e3 }));
          draw(undefined);
          const picker = chartPicker(chains.length, draw, t('ev.rhythm.days'), (i) => ({
            attrs: { dataset: { day: days[i] } },
            text: t('ev.rhythm.day', { day: days[i], n: new Set(chains[i].map((x) => x.account)).size }),
          }));
          const gaps = Array.isArray(ev.interval_s) ? ev.interval_s.filter((x) => x && x.mean != null) : [];
          const rhythm = gaps.length ? h('p', { class: 'hint' }, t('ev.rhythm.gaps', { s: gaps.map((x) => `${num(x.mean, 0)}±${num((x.cv || 0) * x.mean, 0)}`).join('、') })) : null;
          parts.push(figure(t('ev.rhythm'), holder, picker, rhythm));
        }
      }
      // (The intervals are under the rhythm, in words.)
      parts.push(figureTable(t('ev.figures'), pick(ev, ['device', 'days', 'accounts_per_day_max', 'copied_coordinates', 'regular_days', 'far_from_point'])));
      break;
    }
    case 'registration_farm': {
      // The burst per minute, beside the normal pace: the other sources'
      // busiest hour (median) spread over its minutes.
      const usual = ev.others_busiest_hour != null ? ev.others_busiest_hour / 60 : null;
      if (Array.isArray(ev.times) && ev.times.length) {
        parts.push(figure(t('ev.registrations'), C.histogram(ev.times, { usual, labels: { title: t('ev.registrations') } }),
          usual != null ? legend([['#d62728', t('ev.legend.registrations')], ['#7f7f7f', t('ev.legend.usual_registrations', { n: fmtValue(ev.others_busiest_hour) }), true]]) : null));
      }
      parts.push(figureTable(t('ev.figures'), pick(ev, ['app_id', 'referrer', 'signals', 'registrations', 'minutes', 'busiest_hour', 'others_busiest_hour', 'devices', 'ips', 'per_device', 'per_ip', 'emulated', 'observed', 'came_back', 'others_return_rate', 'claimed_regions'])));
      break;
    }
    case 'record_churn': {
      const days = ev.days || [];
      const peer = ev.peer_median_churn_per_day;
      parts.push(figure(t('ev.churn'), C.bars(days.map((d) => d.date), {
        kind: 'churn', labels: { title: t('ev.churn') },
        stacks: [['creates', '#2ca02c'], ['updates', '#1f77b4'], ['deletes', '#d62728']].map(([k, color]) => ({ label: t(`ev.legend.${k}`), color, values: days.map((d) => d[k]) })),
        lines: [{ label: t('ev.legend.re_entries'), color: '#000', values: days.map((d) => d.re_entries) },
          ...(peer != null ? [{ label: t('ev.legend.peer'), color: '#7f7f7f', dash: true, values: days.map(() => peer) }] : [])],
      }), legend([['#2ca02c', t('ev.legend.creates')], ['#1f77b4', t('ev.legend.updates')], ['#d62728', t('ev.legend.deletes')], ['#000', t('ev.legend.re_entries')], ['#7f7f7f', t('ev.legend.peer'), true]])));
      parts.push(figureTable(t('ev.figures'), pick(ev, ['app_id', 'registry', 're_entries', 'no_op_updates', 'operations', 'peer_median_churn_per_day'])));
      break;
    }
    case 'report_inflation': {
      const days = ev.days || [];
      // Each flagged day: the filler (texts repeating an earlier one word
      // for word, same-spot copies, or reports filed one after another:
      // the largest of them, as one report may be all three) and the rest,
      // beside the day's normal count (the unit's own week before and its
      // peers).
      const filler = (d) => Math.min(d.reports || 0, Math.max(d.repeated_text || 0, d.same_spot_copies || 0, (d.signs || []).includes('rapid_succession') ? d.rapid_succession || 0 : 0));
      parts.push(figure(t('ev.reports'), C.bars(days.map((d) => d.date), {
        kind: 'reports', labels: { title: t('ev.reports') },
        stacks: [{ label: t('ev.legend.near_copies'), color: '#d62728', values: days.map(filler) },
          { label: t('ev.legend.reports'), color: '#1f77b4', values: days.map((d) => Math.max((d.reports || 0) - filler(d), 0)) }],
        lines: [{ label: t('ev.legend.expected'), color: '#7f7f7f', dash: true, values: days.map((d) => d.expected) }],
      }), legend([['#1f77b4', t('ev.legend.reports')], ['#d62728', t('ev.legend.near_copies')], ['#7f7f7f', t('ev.legend.expected'), true]])));
      const figs = pick(ev, ['app_id', 'region', 'reports', 'expected_reports', 'with_text', 'repeated_text', 'same_spot_copies', 'rapid_succession', 'signs']);
      if (Array.isArray(figs.signs)) figs.signs = figs.signs.map((x) => named('sign', x));
      parts.push(figureTable(t('ev.figures'), figs));
      break;
    }
    default: break;
  }
  return h('section', { class: 'finding panel', dataset: { detector: f.detector, findingId: f.finding_id } },
    h('h3', {}, t('case.finding', { detector: detectorName(f.detector), score: fmtScore(f.score) }), rec.raised ? null : h('span', { class: 'hint' }, ' ', t('case.suppressed'))),
    h('p', { class: withheld ? 'reason-text withheld' : 'reason-text' }, reasonText(f)),
    !withheld && lang() === 'zh' && reasonZh(f) ? h('details', { class: 'original' }, h('summary', {}, t('case.reason.original')), h('p', {}, f.reason)) : null,
    h('p', { class: 'meta' }, `${fmtTime(f.window_start)} → ${fmtTime(f.window_end)} · ${f.accounts.length} ${t('case.accounts')}${f.devices?.length ? ` · ${f.devices.length} ${t('case.devices')}` : ''}`),
    h('div', { class: 'pictures' }, parts),
    h('details', { class: 'raw' }, h('summary', {}, t('case.raw')), h('pre', {}, JSON.stringify(f, null, 2))));
}

function pick(obj, keys) {
  const out = {};
  for (const k of keys) if (obj[k] !== undefined && obj[k] !== null) out[k] = obj[k];
  return out;
}

/** A figure as people read it: at most 3 decimals, lists joined. */
function fmtValue(v) {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toFixed(3)));
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object')) return v.join(', ');
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function figureTable(title, obj, { collapsed = false } = {}) {
  const entries = Object.entries(obj || {});
  if (!entries.length) return null;
  // Each figure named in the page's language; the field's own name (what
  // the API and SQL call it) on hover.
  const name = (k) => named('fig', k);
  const list = h('dl', { class: 'facts' }, entries.flatMap(([k, v]) => [h('dt', { title: k }, name(k)), h('dd', {}, fmtValue(v))]));
  if (collapsed) return h('details', { class: 'panel figures' }, h('summary', {}, title), list);
  return h('figure', { class: 'panel figures' }, h('figcaption', {}, title), list);
}

// ---------------------------------------------------------------- metrics

const METRIC_SQL = {
  daily: (where) => `SELECT day, sum(events) AS events, sum(faked_events) AS faked_events
FROM activity_daily${where}
GROUP BY day
ORDER BY day`,
  // People, not account-app pairs: an account active in two apps that day
  // is one active account (activity_daily counts it once per app).
  active: (where) => `SELECT day, count(DISTINCT account_id) AS active_accounts,
       count(DISTINCT CASE WHEN NOT flagged THEN account_id END) AS real_active_accounts
FROM account_days${where}
GROUP BY day
ORDER BY day`,
  perApp: (where) => sharePer('app_id', where),
  perRegion: (where) => sharePer('region', where),
  // An app's health is judged over all its users, whatever region is
  // selected (the panel says so); an app selected narrows it to that app.
  health: (appWhere) => `SELECT app_id, name, classification, real_mau_1, real_mau_2, real_mau_3,
       raw_mau_1, faked_share_90d, modules, rare_modules, why
FROM app_health${appWhere}
ORDER BY classification DESC, app_id`,
  // A person's burden is over every app they use: the region narrows it,
  // an app does not.
  burdenHist: (regionWhere) => `SELECT apps_used, count(*) AS person_weeks
FROM worker_burden${regionWhere}
GROUP BY apps_used
ORDER BY apps_used`,
};

/** Faked share of the events per `col` (app_id or region), highest first. */
function sharePer(col, where) {
  return `SELECT ${col}, sum(events) AS events,
       CAST(sum(faked_events) AS DOUBLE) / CAST(sum(events) AS DOUBLE) AS faked_share
FROM activity_daily${where}
GROUP BY ${col}
ORDER BY faked_share DESC, ${col}
LIMIT 25`;
}

function sqlString(v) { return `'${String(v).replace(/'/g, "''")}'`; }

async function renderMetrics(params) {
  const live = routeLive();
  const app = params.get('app') || '';
  const region = params.get('region') || '';
  const appCond = app ? `app_id = ${sqlString(app)}` : '';
  const regionCond = /^[0-9]{1,6}$/.test(region) ? `region LIKE ${sqlString(region + '%')}` : '';
  const whereOf = (...conds) => (conds.some(Boolean) ? `\nWHERE ${conds.filter(Boolean).join(' AND ')}` : '');
  const where = whereOf(appCond, regionCond);

  const apps = await sql('SELECT DISTINCT app_id FROM activity_daily ORDER BY app_id', 500).catch(() => ({ rows: [] }));
  const scopeForm = h('form', { class: 'filters', 'aria-label': t('metrics.filters'), onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(e.target)) if (v !== '') q.set(k, v);
    go(`/metrics?${q}`);
  } },
  h('div', { class: 'field' }, h('label', { for: 'm-app' }, t('queue.app')),
    h('select', { id: 'm-app', name: 'app' }, h('option', { value: '' }, t('metrics.all_apps')),
      apps.rows.map((r) => h('option', { value: r.app_id, selected: r.app_id === app }, r.app_id)))),
  h('div', { class: 'field' }, h('label', { for: 'm-region' }, t('queue.region')), h('input', { id: 'm-region', name: 'region', value: region, size: 7, inputmode: 'numeric', pattern: '[0-9]{0,6}' })),
  h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('queue.apply'))));

  const slot = (id) => h('section', { class: 'panel metric', id, 'aria-busy': 'true' }, notice(t('metrics.loading')));
  const slots = { daily: slot('m-daily'), active: slot('m-active'), perApp: slot('m-per-app'), perRegion: slot('m-per-region'), health: slot('m-health'), burden: slot('m-burden') };
  if (!live()) return;
  show(h('h1', {}, t('metrics.title')), scopeForm,
    h('div', { class: 'metrics-grid' }, slots.daily, slots.active, slots.perApp, slots.perRegion),
    slots.health, slots.burden);

  const fill = async (el, text, draw) => {
    try {
      const r = await sql(text, 5000);
      put(el, r.rows.length ? draw(r.rows) : notice(t('metrics.empty')), sqlDetails(text));
      paintSwatches(el);
    } catch (e) { put(el, alertBox(e), sqlDetails(text)); }
    el.setAttribute('aria-busy', 'false');
  };
  const pct = (v) => `${Math.round(v * 100)}%`;
  await Promise.all([
    fill(slots.daily, METRIC_SQL.daily(where), (rows) => {
      const days = rows.map((r) => r.day);
      return figure(t('metrics.real_vs_faked'), C.bars(days, {
        kind: 'real-vs-faked', labels: { title: t('metrics.real_vs_faked') }, rightFmt: pct,
        stacks: [{ label: t('metrics.real'), color: '#2ca02c', values: rows.map((r) => r.events - r.faked_events) },
          { label: t('metrics.faked'), color: '#d62728', values: rows.map((r) => r.faked_events) }],
        lines: [{ label: t('metrics.faked_share'), color: '#000', axis: 'right', max: 1, values: rows.map((r) => (r.events ? r.faked_events / r.events : null)) }],
      }), legend([['#2ca02c', t('metrics.real')], ['#d62728', t('metrics.faked')], ['#000', t('metrics.faked_share')]]));
    }),
    fill(slots.active, METRIC_SQL.active(where), (rows) => figure(t('metrics.active'), C.bars(rows.map((r) => r.day), {
      kind: 'active', labels: { title: t('metrics.active') },
      lines: [{ label: t('metrics.active.raw'), color: '#7f7f7f', dash: true, values: rows.map((r) => r.active_accounts) },
        { label: t('metrics.active.real'), color: '#1f77b4', values: rows.map((r) => r.real_active_accounts) }],
    }), legend([['#7f7f7f', t('metrics.active.raw'), true], ['#1f77b4', t('metrics.active.real')]]))),
    fill(slots.perApp, METRIC_SQL.perApp(where), (rows) => figure(t('metrics.per_app'),
      C.hbars(rows.map((r) => ({ label: r.app_id, value: r.faked_share || 0 })), { labels: { title: t('metrics.per_app') }, max: 1, fmt: pct }))),
    fill(slots.perRegion, METRIC_SQL.perRegion(where), (rows) => figure(t('metrics.per_region'),
      C.hbars(rows.map((r) => ({ label: r.region, value: r.faked_share || 0 })), { labels: { title: t('metrics.per_region') }, max: 1, fmt: pct, color: '#9467bd' }))),
    fill(slots.health, METRIC_SQL.health(whereOf(appCond)), (rows) => h('div', {}, h('h2', {}, t('metrics.health')),
      regionCond ? h('p', { class: 'meta', id: 'm-health-scope' }, t('metrics.health.nationwide')) : null,
      table([
      { name: 'app_id' }, { name: 'name' },
      { name: 'classification', render: (r) => healthChip(r.classification) },
      { name: 'real_mau_1' }, { name: 'real_mau_2' }, { name: 'real_mau_3' }, { name: 'raw_mau_1' },
      { name: 'faked_share_90d', render: (r) => (r.faked_share_90d == null ? '' : pct(r.faked_share_90d)) },
      { name: 'modules' }, { name: 'rare_modules' }, { name: 'why' },
    ], rows, { caption: t('metrics.health') }))),
    fill(slots.burden, METRIC_SQL.burdenHist(whereOf(regionCond)), (rows) => figure(t('metrics.burden'),
      C.bars(rows.map((r) => String(r.apps_used)), { kind: 'burden', labels: { title: t('metrics.burden') }, stacks: [{ label: t('metrics.burden'), color: '#8c564b', values: rows.map((r) => r.person_weeks) }] }))),
  ]);
}

function healthChip(cls) {
  const c = String(cls || '');
  if (c.startsWith('duplicate_of:')) return chip(`${t('health.duplicate')} → ${c.slice('duplicate_of:'.length)}`, 'h-duplicate');
  return chip(t(`health.${c}`), `h-${c}`);
}

// ---------------------------------------------------------------- SQL console

const SQL_TABLES = ['events', 'findings', 'cases', 'verdicts', 'flagged_accounts', 'account_days', 'activity_daily', 'app_health', 'app_overlap', 'worker_burden', 'app_catalog'];

/** The server's refusal of a query, as the console shows it. */
function sqlError(e) {
  return h('div', { class: 'alert', role: 'alert', id: 'sql-error' }, h('strong', {}, t('sql.error')), ': ', e.message);
}

function renderSql() {
  const editor = h('textarea', { id: 'sql-text', rows: 10, spellcheck: 'false', class: 'code' });
  editor.value = sessionStorage.getItem('gt.sql') || 'SELECT day, sum(events) AS events, sum(faked_events) AS faked\nFROM activity_daily\nGROUP BY day\nORDER BY day';
  const maxRows = h('input', { id: 'sql-max', type: 'number', min: 1, max: 100000, value: 1000 });
  const out = h('div', { id: 'sql-out', 'aria-live': 'polite' });
  const run = async () => {
    sessionStorage.setItem('gt.sql', editor.value);
    put(out, notice(t('loading')));
    try {
      const r = await sql(editor.value, Number(maxRows.value) || undefined);
      const cols = r.columns.map((c) => ({ name: c.name, label: `${c.name} (${c.type})` }));
      put(out,
        h('p', { class: 'meta', id: 'sql-summary' }, t('sql.result', { n: r.row_count, ms: Math.round(r.elapsed_ms) })),
        r.truncated ? notice(t('sql.truncated', { n: r.row_count })) : null,
        table(cols, r.rows));
    } catch (e) {
      put(out, sqlError(e));
    }
  };
  // Downloads: CSV with a byte order mark (so Excel and WPS read the
  // Chinese text as UTF-8), or an xlsx workbook; the file named for when
  // it was taken.
  const download = (format) => async () => {
    const type = format === 'csv' ? 'text/csv' : XLSX_TYPE;
    try {
      const res = await api('/api/v1/sql', { method: 'POST', body: { sql: editor.value, format, max_rows: Number(maxRows.value) || undefined }, accept: type, raw: true });
      const blob = format === 'csv' ? new Blob(['\ufeff', await res.text()], { type: 'text/csv;charset=utf-8' }) : await res.blob();
      const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
      saveAs(blob, `groundtruth-query-${stamp}.${format}`);
    } catch (e) {
      put(out, sqlError(e));
    }
  };
  editor.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); } });
  show(h('h1', {}, t('sql.title')),
    h('div', { class: 'sql-layout' },
      h('div', {},
        h('label', { for: 'sql-text' }, t('sql.editor')), editor,
        h('div', { class: 'buttons' },
          h('button', { type: 'button', id: 'sql-run', class: 'primary', onclick: run }, t('sql.run')),
          h('button', { type: 'button', id: 'sql-csv', onclick: download('csv') }, t('sql.csv')),
          h('button', { type: 'button', id: 'sql-xlsx', onclick: download('xlsx') }, t('sql.xlsx')),
          h('label', { for: 'sql-max' }, t('sql.max_rows')), maxRows)),
      h('aside', { class: 'panel' }, h('h2', {}, t('sql.tables')),
        h('ul', { class: 'tables' }, SQL_TABLES.map((n) => h('li', {}, h('button', { type: 'button', class: 'link', onclick: () => { editor.value = `SELECT * FROM ${n} LIMIT 100`; editor.focus(); } }, n)))))),
    out);
  setKeys(() => false);
  editor.focus();
}

// ---------------------------------------------------------------- region

async function renderRegion(params) {
  const live = routeLive();
  const code = params.get('code') || state.me.region || '';
  const form = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); go(`/region?code=${encodeURIComponent(new FormData(e.target).get('code') || '')}`); } },
    h('div', { class: 'field' }, h('label', { for: 'r-code' }, t('region.code')), h('input', { id: 'r-code', name: 'code', value: code, inputmode: 'numeric', pattern: '[0-9]{2,6}', required: true, size: 7 })),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, t('region.show'))));
  if (!code) { show(h('h1', {}, t('region.title')), form); return; }
  show(h('h1', {}, t('region.title')), form, notice(t('loading')));
  let sum;
  try { sum = await api(`/api/v1/regions/${encodeURIComponent(code)}/summary`); } catch (e) { if (live()) show(h('h1', {}, t('region.title')), form, alertBox(e)); return; }
  if (!live()) return;
  const days = [...new Set(sum.activity.map((r) => r.event_date))].sort();
  const apps = [...new Set(sum.activity.map((r) => r.app_id))].sort();
  const stacks = apps.map((a) => ({ label: a, color: C.colorOf(a, apps), values: days.map((d) => sum.activity.filter((r) => r.event_date === d && r.app_id === a).reduce((x, r) => x + Number(r.events), 0)) }));
  const cases = Object.entries(sum.cases || {}).filter(([, v]) => typeof v !== 'object');
  show(h('h1', {}, t('region.title')), form,
    h('p', { class: 'meta' }, `${sum.region} · ${fmtTime(sum.from)} → ${fmtTime(sum.to)}`),
    figure(t('region.activity'), C.bars(days, { kind: 'region-activity', stacks, labels: { title: t('region.activity') } }), legend(apps.map((a) => [C.colorOf(a, apps), a]))),
    h('section', { class: 'panel' }, h('h2', {}, t('region.cases')), h('dl', { class: 'facts' }, cases.flatMap(([k, v]) => [h('dt', {}, label('region.case', k)), h('dd', {}, String(v))])),
      state.me.role === 'unit' ? h('p', { class: 'hint', id: 'open-counted' }, t('region.open_counted')) : null),
    state.me.role === 'unit' ? null : h('section', { class: 'panel' }, h('h2', {}, t('region.top')), caseTable(sum.top_open_cases)),
    h('section', { class: 'panel', id: 'decided' }, h('h2', {}, t('region.decided')),
      (sum.decided_cases || []).length ? caseTable(sum.decided_cases, true) : h('p', { class: 'hint' }, t('region.decided.none'))),
    monthlyReport(sum.region, params.get('month')));
  paintSwatches(main());
}

/** A unit's month handed back to it: the apps' reported and real activity,
 * what the apps cost its people, its cases; downloadable as xlsx and
 * printable to PDF, in place of a manual monthly return. */
function monthlyReport(code, month) {
  const box = h('section', { class: 'panel', id: 'monthly' }, h('h2', {}, t('report.title')), notice(t('loading')));
  const q = month ? `?month=${encodeURIComponent(month)}` : '';
  const base = `/api/v1/regions/${encodeURIComponent(code)}/report`;
  api(base + q).then((r) => {
    const pick = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); go(`/region?code=${encodeURIComponent(code)}&month=${encodeURIComponent(new FormData(e.target).get('month') || '')}`); } },
      h('div', { class: 'field' }, h('label', { for: 'r-month' }, t('report.month')), h('input', { id: 'r-month', name: 'month', type: 'month', value: r.month, required: true })),
      h('div', { class: 'buttons' }, h('button', { type: 'submit' }, t('region.show'))));
    const xlsx = async () => {
      try {
        const res = await api(`${base}?month=${encodeURIComponent(r.month)}&format=xlsx&lang=${lang()}`, { accept: XLSX_TYPE, raw: true });
        saveAs(await res.blob(), `groundtruth-${r.region}-${r.month}.xlsx`);
      } catch (e) { box.append(alertBox(e)); }
    };
    const b = r.burden;
    const fmtShare = (x) => `${(100 * Number(x || 0)).toFixed(1)}%`;
    put(box, h('h2', {}, t('report.title')), pick,
      h('p', { class: 'meta' }, t('report.span', { region: r.region, first: r.first_day, last: r.last_day })),
      h('div', { class: 'buttons' },
        h('button', { type: 'button', id: 'report-xlsx', class: 'primary', onclick: xlsx }, t('report.xlsx')),
        h('button', { type: 'button', id: 'report-print', onclick: () => window.print() }, t('report.print'))),
      h('dl', { class: 'facts', id: 'report-burden' }, [
        ['report.people', b.people], ['report.median_apps', b.median_apps_used], ['report.max_apps', b.max_apps_used],
        ['report.five_apps', b.people_5_or_more_apps], ['report.median_minutes', b.median_minutes_in_apps],
      ].flatMap(([k, v]) => [h('dt', {}, t(k)), h('dd', {}, String(v))])),
      h('h3', {}, t('report.apps')),
      table([
        { name: 'app_id', label: t('queue.col.app') },
        { name: 'active_accounts', label: t('report.col.active') },
        { name: 'real_active_accounts', label: t('report.col.real') },
        { name: 'events', label: t('report.col.events') },
        { name: 'faked_share', label: t('report.col.faked'), render: (a) => fmtShare(a.faked_share) },
        { name: 'minutes', label: t('report.col.minutes') },
      ], r.apps),
      h('h3', {}, t('report.people_top')),
      table([
        { name: 'account_id', label: t('report.col.account') },
        { name: 'apps_used', label: t('report.col.apps') },
        { name: 'days_active', label: t('report.col.days') },
        { name: 'minutes_in_apps', label: t('report.col.minutes') },
        { name: 'check_ins', label: t('report.col.check_ins') },
        { name: 'reports', label: t('report.col.reports') },
        { name: 'flagged_days', label: t('report.col.flagged_days') },
      ], r.people.slice(0, 20)),
      h('p', { class: 'hint' }, t('report.hint')));
  }).catch((e) => put(box, h('h2', {}, t('report.title')), alertBox(e)));
  return box;
}

function caseTable(cases, decided = false) {
  return table([
    { name: 'case_id', label: t('queue.col.case'), render: (c) => h('a', { href: `#/case/${c.case_id}` }, `#${c.case_id}`) },
    { name: 'detectors', label: t('queue.col.detectors'), render: (c) => c.detectors.map(detectorName).join(', ') },
    { name: 'app_id', label: t('queue.col.app') }, { name: 'region', label: t('queue.col.region') },
    decided ? { name: 'verdict', label: t('queue.col.status'), render: (c) => (c.verdict ? t(`verdict.${c.verdict}`) : '—') }
      : { name: 'score', label: t('queue.col.score'), render: (c) => fmtScore(c.score) },
  ], cases);
}

// ---------------------------------------------------------------- start

async function start() {
  setLang(lang());
  document.title = t('app.title');
  const saved = sessionStorage.getItem('gt.token');
  if (saved) {
    state.token = saved;
    try { state.me = await api('/api/v1/me'); } catch (_) { state.token = null; sessionStorage.removeItem('gt.token'); }
  }
  window.addEventListener('hashchange', () => { setKeys(null); route(); });
  route();
}

start();
