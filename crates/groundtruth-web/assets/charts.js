// SVG pictures of the evidence and the metrics, drawn from the API's JSON.
// No library and no network: every chart is plain SVG built with DOM calls
// (never parsed from HTML strings), so data cannot inject markup. Each chart's root carries
// data-chart="<kind>" and an aria-label; the tests look for both.

const NS = 'http://www.w3.org/2000/svg';

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e',
  '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

/** An SVG element with attributes and children (strings become text). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' || typeof c === 'number' ? String(c) : c);
  }
  return el;
}

function root(kind, w, h, label) {
  return s('svg', {
    viewBox: `0 0 ${w} ${h}`, width: '100%', role: 'img', 'aria-label': label,
    'data-chart': kind, class: 'chart', preserveAspectRatio: 'xMidYMid meet',
  }, s('title', {}, label));
}

/** Colour of a categorical key, stable across charts. */
export function colorOf(key, keys) {
  const i = keys ? keys.indexOf(key) : hash(String(key));
  return PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length];
}

function hash(str) {
  let h = 0;
  for (let i = 0; i < str.length; i++) h = (h * 31 + str.charCodeAt(i)) | 0;
  return Math.abs(h);
}

/** Linear map from [d0, d1] onto [r0, r1]. */
export function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** About n round tick values covering [min, max]. */
export function ticks(min, max, n = 5) {
  if (!(max > min)) return [min];
  const raw = (max - min) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
    out.push(Number(v.toFixed(10)));
  }
  return out;
}

/** A round length (1, 2 or 5 x 10^k) near `target`. */
export function roundLength(target) {
  const mag = Math.pow(10, Math.floor(Math.log10(Math.max(target, 1e-9))));
  for (const m of [5, 2, 1]) if (m * mag <= target) return m * mag;
  return mag;
}

function fmtNum(v) {
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(Math.abs(v) < 1 ? 2 : 1);
}

function fmtMeters(m) {
  return m >= 1000 ? `${m / 1000} km` : `${m} m`;
}

const two = (v) => String(v).padStart(2, '0');

function hhmm(ms, seconds = false) {
  const d = new Date(ms);
  return `${two(d.getHours())}:${two(d.getMinutes())}${seconds ? `:${two(d.getSeconds())}` : ''}`;
}

/** The local day of an instant (ms or anything `Date` reads), YYYY-MM-DD. */
export function localDay(at) {
  const d = new Date(at);
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
}

function axisY(g, y, values, x0, x1, fmt = fmtNum) {
  for (const v of values) {
    g.append(s('line', { x1: x0, x2: x1, y1: y(v), y2: y(v), class: 'grid' }));
    g.append(s('text', { x: x0 - 4, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, fmt(v)));
  }
}

/** Projects [lat, lon] onto metres around a centre (equirectangular). */
export function projector(points) {
  const lats = points.map((p) => p[0]);
  const lons = points.map((p) => p[1]);
  const lat0 = (Math.min(...lats) + Math.max(...lats)) / 2;
  const lon0 = (Math.min(...lons) + Math.max(...lons)) / 2;
  const kx = 111320 * Math.cos((lat0 * Math.PI) / 180);
  const ky = 110540;
  return ([lat, lon]) => [(lon - lon0) * kx, (lat - lat0) * ky];
}

/** Fits metre coordinates into a w x h box, same scale on both axes. */
function fit(xy, w, h, pad, minSpan = 20) {
  const xs = xy.map((p) => p[0]);
  const ys = xy.map((p) => p[1]);
  const minX = Math.min(...xs), maxX = Math.max(...xs);
  const minY = Math.min(...ys), maxY = Math.max(...ys);
  const spanX = Math.max(maxX - minX, minSpan), spanY = Math.max(maxY - minY, minSpan);
  const k = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY);
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  return { k, at: ([x, y]) => [w / 2 + (x - cx) * k, h / 2 - (y - cy) * k] };
}

function scaleBar(g, k, w, h, label) {
  const len = roundLength((w / 4) / k);
  const px = len * k;
  const x0 = 16, y0 = h - 16;
  g.append(s('g', { class: 'scale-bar', 'data-meters': len },
    s('line', { x1: x0, x2: x0 + px, y1: y0, y2: y0, stroke: '#222', 'stroke-width': 3 }),
    s('line', { x1: x0, x2: x0, y1: y0 - 5, y2: y0 + 1, stroke: '#222', 'stroke-width': 2 }),
    s('line', { x1: x0 + px, x2: x0 + px, y1: y0 - 5, y2: y0 + 1, stroke: '#222', 'stroke-width': 2 }),
    s('text', { x: x0 + px / 2, y: y0 - 7, 'text-anchor': 'middle', class: 'tick' }, `${label} ${fmtMeters(len)}`)));
}

/** Speed bands: stopped/slow, the human band, fast, impossible on foot. */
export const HUMAN_BAND = [0.5, 6];
export function speedColor(v) {
  if (!(v >= 0)) return '#7f7f7f';
  if (v < HUMAN_BAND[0]) return '#4a6fa5';
  if (v <= 2) return '#2ca02c';
  if (v <= HUMAN_BAND[1]) return '#9acd32';
  if (v <= 15) return '#ff7f0e';
  return '#d62728';
}

/**
 * A patrol track: segments coloured by speed, stops as dots, start and end
 * marked, the replayed source track dashed underneath, and a scale bar.
 * points: [[lat, lon, seconds, speed_mps], ...].
 */
export function trackPlot(points, { replay, labels } = {}) {
  const w = 640, h = 420;
  const svg = root('track', w, h, labels.title);
  if (!points || points.length < 2) return svg;
  const all = replay && replay.length > 1 ? points.concat(replay) : points;
  const proj = projector(all);
  const box = fit(all.map(proj), w, h, 28);
  const xy = (p) => box.at(proj(p));
  svg.append(s('rect', { x: 0, y: 0, width: w, height: h, class: 'plot-bg' }));
  if (replay && replay.length > 1) {
    svg.append(s('polyline', {
      points: replay.map((p) => xy(p).join(',')).join(' '),
      class: 'replay', fill: 'none', stroke: '#555', 'stroke-width': 2, 'stroke-dasharray': '6 4',
    }));
  }
  const g = s('g', { class: 'segments' });
  for (let i = 1; i < points.length; i++) {
    const [x1, y1] = xy(points[i - 1]);
    const [x2, y2] = xy(points[i]);
    g.append(s('line', { x1, y1, x2, y2, stroke: speedColor(points[i][3]), 'stroke-width': 3.5, 'stroke-linecap': 'round' }));
  }
  svg.append(g);
  // Stops: runs of fixes below walking pace, one dot per run.
  const stops = s('g', { class: 'stops' });
  let inStop = false;
  for (const p of points) {
    const slow = p[3] < 0.3;
    if (slow && !inStop) {
      const [x, y] = xy(p);
      stops.append(s('circle', { cx: x, cy: y, r: 5, fill: '#fff', stroke: '#4a6fa5', 'stroke-width': 2 }));
    }
    inStop = slow;
  }
  svg.append(stops);
  const [sx, sy] = xy(points[0]);
  const [ex, ey] = xy(points[points.length - 1]);
  svg.append(s('g', { class: 'ends' },
    s('circle', { cx: sx, cy: sy, r: 7, fill: '#2ca02c', stroke: '#fff', 'stroke-width': 2 }),
    s('text', { x: sx + 9, y: sy - 9, class: 'label' }, 'S'),
    s('circle', { cx: ex, cy: ey, r: 7, fill: '#d62728', stroke: '#fff', 'stroke-width': 2 }),
    s('text', { x: ex + 9, y: ey - 9, class: 'label' }, 'E')));
  scaleBar(svg, box.k, w, h, labels.scale);
  return svg;
}

/** Speed against time with the human band shaded. */
export function speedProfile(points, { labels }) {
  const w = 640, h = 220, l = 44, r = 10, t = 12, b = 30;
  const svg = root('speed', w, h, labels.title);
  if (!points || points.length < 2) return svg;
  const tmax = Math.max(points[points.length - 1][2], 1);
  const vmax = Math.max(HUMAN_BAND[1] * 1.3, ...points.map((p) => p[3] || 0));
  const x = scale(0, tmax, l, w - r);
  const y = scale(0, vmax, h - b, t);
  svg.append(s('rect', {
    x: l, width: w - l - r, y: y(HUMAN_BAND[1]), height: y(HUMAN_BAND[0]) - y(HUMAN_BAND[1]),
    class: 'human-band', fill: '#2ca02c', 'fill-opacity': 0.15,
  }, s('title', {}, labels.band)));
  const g = s('g', {});
  axisY(g, y, ticks(0, vmax, 4), l, w - r);
  svg.append(g);
  for (const tv of ticks(0, tmax, 6)) {
    svg.append(s('text', { x: x(tv), y: h - 10, 'text-anchor': 'middle', class: 'tick' }, `${Math.round(tv / 60)}′`));
  }
  svg.append(s('text', { x: 4, y: t + 4, class: 'tick' }, labels.axis));
  svg.append(s('polyline', {
    points: points.map((p) => `${x(p[2])},${y(p[3] || 0)}`).join(' '),
    fill: 'none', stroke: '#1f77b4', 'stroke-width': 2, class: 'speed-line',
  }));
  return svg;
}

/**
 * Sessions as bars on one row per account against time. `timeline` is the
 * phone_farm evidence: a list of chains (each a list of sessions, used one
 * after another) or one flat list of sessions. Chains are joined by a thin
 * string through their sessions.
 */
export function sessionTimeline(timeline, { labels, maxRows = 40, focus, minPadMs = 5 * 60e3 }) {
  const chains = Array.isArray(timeline[0]) ? timeline : [timeline];
  const sessions = chains.flatMap((c, ci) => c.map((x) => ({
    ...x, chain: ci, t0: Date.parse(x.start), t1: Date.parse(x.end),
  }))).filter((x) => Number.isFinite(x.t0) && Number.isFinite(x.t1));
  const order = [];
  for (const x of [...sessions].sort((a, b) => a.t0 - b.t0)) {
    if (!order.includes(x.account)) order.push(x.account);
  }
  const rows = order.slice(0, maxRows);
  const rowH = 14, l = 110, r = 10, t = 10, b = 28;
  const w = 720, h = t + b + rows.length * rowH;
  const svg = root('sessions', w, h, labels.title);
  if (!sessions.length) return svg;
  // Zoom on one chain (`focus`, else the longest: a farm's morning), with a
  // margin; a flat list shows its first day.
  let tmin, tmax;
  if (Array.isArray(timeline[0])) {
    const longest = chains.reduce((best, c, i) => (c.length > chains[best].length ? i : best), 0);
    const shown = Number.isInteger(focus) && focus >= 0 && focus < chains.length ? focus : longest;
    const mine = sessions.filter((q) => q.chain === shown);
    const a = Math.min(...mine.map((q) => q.t0)), b = Math.max(...mine.map((q) => q.t1));
    const pad = Math.max((b - a) * 0.05, minPadMs);
    tmin = a - pad; tmax = b + pad;
  } else {
    tmin = Math.min(...sessions.map((q) => q.t0));
    tmax = Math.min(Math.max(...sessions.map((q) => q.t1)), tmin + 26 * 3600e3);
  }
  const x = scale(tmin, tmax, l, w - r);
  const devices = [...new Set(sessions.map((x) => x.device))];
  rows.forEach((a, i) => {
    const yy = t + i * rowH;
    if (i % 2 === 0) svg.append(s('rect', { x: l, y: yy, width: w - l - r, height: rowH, class: 'row-band' }));
    svg.append(s('text', { x: l - 4, y: yy + rowH - 3, 'text-anchor': 'end', class: 'tick' }, a.length > 16 ? a.slice(0, 15) + '…' : a));
  });
  for (const c of chains.keys()) {
    const mine = sessions.filter((q) => q.chain === c && rows.includes(q.account) && q.t0 <= tmax && q.t1 >= tmin).sort((a, b) => a.t0 - b.t0);
    if (mine.length > 1 && Array.isArray(timeline[0])) {
      svg.append(s('polyline', {
        points: mine.map((q) => `${x(q.t0)},${t + rows.indexOf(q.account) * rowH + rowH / 2}`).join(' '),
        fill: 'none', stroke: '#999', 'stroke-width': 1, class: 'chain',
      }));
    }
  }
  const beads = s('g', { class: 'beads' });
  for (const x0 of sessions) {
    const i = rows.indexOf(x0.account);
    if (i < 0 || x0.t0 > tmax || x0.t1 < tmin) continue;
    beads.append(s('rect', {
      x: x(Math.max(x0.t0, tmin)), y: t + i * rowH + 2, width: Math.max(x(Math.min(x0.t1, tmax)) - x(Math.max(x0.t0, tmin)), 2), height: rowH - 4,
      rx: 3, fill: colorOf(x0.device, devices), class: 'session',
    }, s('title', {}, `${x0.account} · ${x0.device} · ${x0.start} → ${x0.end}`)));
  }
  svg.append(beads);
  // Seconds on the axis when the span is a few minutes (check-ins
  // clocked in seconds apart).
  const secs = tmax - tmin < 10 * 60e3;
  for (const tv of ticks(tmin, tmax, 6)) {
    svg.append(s('text', { x: x(tv), y: h - 8, 'text-anchor': 'middle', class: 'tick' }, hhmm(tv, secs)));
  }
  // The day shown (local), under the accounts.
  svg.append(s('text', { x: l - 4, y: h - 8, 'text-anchor': 'end', class: 'tick day' }, localDay(tmin)));
  return svg;
}

/**
 * Check-ins in metres around their centre: a dot per check-in coloured by
 * account, a circle of the reported accuracy around it, and a count where
 * several sit on the very same coordinate.
 */
export function checkinScatter(checkIns, { labels }) {
  const w = 560, h = 420;
  const svg = root('checkins', w, h, labels.title);
  const pts = checkIns.filter((c) => Number.isFinite(c.lat) && Number.isFinite(c.lon));
  if (!pts.length) return svg;
  const proj = projector(pts.map((c) => [c.lat, c.lon]));
  const xy = pts.map((c) => proj([c.lat, c.lon]));
  // Room for the accuracy circles: a stack on one coordinate shows as a
  // dot inside its circles, not a dot in an empty frame.
  const acc = pts.map((c) => c.accuracy_m).filter((a) => a > 0).sort((a, b) => a - b);
  const box = fit(xy, w, h, 30, Math.min(Math.max(40, 2.4 * (acc[acc.length - 1] || 0)), 2000));
  svg.append(s('rect', { x: 0, y: 0, width: w, height: h, class: 'plot-bg' }));
  const accounts = [...new Set(pts.map((c) => c.account))];
  const circles = s('g', { class: 'jitter' });
  const dots = s('g', { class: 'dots' });
  const stacks = new Map();
  pts.forEach((c, i) => {
    const [px, py] = box.at(xy[i]);
    const key = `${c.lat},${c.lon}`;
    stacks.set(key, { n: (stacks.get(key)?.n || 0) + 1, px, py });
    if (c.accuracy_m > 0) {
      circles.append(s('circle', { cx: px, cy: py, r: Math.max(c.accuracy_m * box.k, 1.5), fill: 'none', stroke: colorOf(c.account, accounts), 'stroke-opacity': 0.35 }));
    }
    dots.append(s('circle', { cx: px, cy: py, r: 3.5, fill: colorOf(c.account, accounts), class: 'check-in' },
      s('title', {}, `${c.account} · ${c.ts} · ±${c.accuracy_m ?? '?'} m`)));
  });
  svg.append(circles, dots);
  const counts = s('g', { class: 'stacks' });
  for (const { n, px, py } of stacks.values()) {
    if (n > 1) counts.append(s('text', { x: px + 6, y: py - 6, class: 'label' }, `×${n}`, s('title', {}, labels.stack(n))));
  }
  svg.append(counts);
  scaleBar(svg, box.k, w, h, labels.scale);
  return svg;
}

/** Counts per bin of `minutes` for a list of timestamps. */
export function histogram(times, { labels, minutes = 1, usual = null }) {
  const ms = times.map((x) => Date.parse(x)).filter(Number.isFinite).sort((a, b) => a - b);
  const w = 640, h = 220, l = 40, r = 10, t = 12, b = 28;
  const svg = root('histogram', w, h, labels.title);
  if (!ms.length) return svg;
  const bin = minutes * 60e3;
  const start = Math.floor(ms[0] / bin) * bin;
  const n = Math.min(Math.floor((ms[ms.length - 1] - start) / bin) + 1, 24 * 60);
  const counts = new Array(n).fill(0);
  for (const v of ms) { const i = Math.floor((v - start) / bin); if (i < n) counts[i]++; }
  const x = scale(0, n, l, w - r);
  const ymax = Math.max(...counts, Number(usual) || 0, 1);
  const y = scale(0, ymax, h - b, t);
  const g = s('g', {});
  axisY(g, y, ticks(0, ymax, 4), l, w - r);
  svg.append(g);
  const bars = s('g', { class: 'bars' });
  counts.forEach((c, i) => {
    if (c) bars.append(s('rect', { x: x(i) + 0.5, y: y(c), width: Math.max(x(i + 1) - x(i) - 1, 1), height: y(0) - y(c), fill: '#d62728', class: 'bar' },
      s('title', {}, `${hhmm(start + i * bin)} · ${c}`)));
  });
  svg.append(bars);
  // The normal pace per bin (the other sources' busiest hour spread over
  // it), dashed, drawn over the bars.
  if (Number.isFinite(usual) && usual >= 0) {
    svg.append(s('line', { x1: l, x2: w - r, y1: y(usual), y2: y(usual), stroke: '#7f7f7f', 'stroke-width': 2, 'stroke-dasharray': '6 4', class: 'usual' },
      s('title', {}, String(Math.round(usual * 100) / 100))));
  }
  for (const tv of ticks(0, n, 6)) svg.append(s('text', { x: x(tv), y: h - 8, 'text-anchor': 'middle', class: 'tick' }, hhmm(start + tv * bin)));
  return svg;
}

/**
 * Stacked bars per category with optional lines over them.
 * stacks: [{label, color, values}], lines: [{label, color, values, dash, axis: 'right'?, max?}]
 */
export function bars(categories, { stacks = [], lines = [], labels, kind = 'bars', rightFmt }) {
  const w = 720, h = 260, l = 48, r = lines.some((x) => x.axis === 'right') ? 44 : 12, t = 12, b = 46;
  const svg = root(kind, w, h, labels.title);
  if (!categories.length) return svg;
  const totals = categories.map((_, i) => stacks.reduce((a, st) => a + (Number(st.values[i]) || 0), 0));
  const leftLines = lines.filter((x) => x.axis !== 'right');
  const ymax = Math.max(1, ...totals, ...leftLines.flatMap((x) => x.values.map(Number).filter(Number.isFinite)));
  const x = scale(0, categories.length, l, w - r);
  const y = scale(0, ymax * 1.05, h - b, t);
  const g = s('g', {});
  axisY(g, y, ticks(0, ymax * 1.05, 4), l, w - r);
  svg.append(g);
  const bw = Math.min(Math.max((x(1) - x(0)) * 0.7, 1), 56);
  stacks.forEach((st) => {
    const gg = s('g', { class: 'bars', 'data-series': st.label });
    svg.append(gg);
    st.g = gg;
  });
  categories.forEach((cat, i) => {
    let acc = 0;
    for (const st of stacks) {
      const v = Number(st.values[i]) || 0;
      if (v > 0) {
        st.g.append(s('rect', { x: x(i) + (x(1) - x(0) - bw) / 2, y: y(acc + v), width: bw, height: y(acc) - y(acc + v), fill: st.color, class: 'bar' },
          s('title', {}, `${cat} · ${st.label}: ${fmtNum(v)}`)));
      }
      acc += v;
    }
  });
  for (const ln of lines) {
    const yr = ln.axis === 'right' ? scale(0, ln.max ?? Math.max(...ln.values.map(Number).filter(Number.isFinite), 1e-9), h - b, t) : y;
    const pts = ln.values.map((v, i) => (Number.isFinite(Number(v)) && v !== null && v !== undefined ? `${x(i + 0.5)},${yr(Number(v))}` : null)).filter(Boolean);
    if (pts.length) {
      svg.append(s('polyline', { points: pts.join(' '), fill: 'none', stroke: ln.color, 'stroke-width': 2.5, 'stroke-dasharray': ln.dash ? '6 4' : undefined, class: 'line', 'data-series': ln.label }));
    }
    if (ln.axis === 'right') {
      for (const tv of ticks(0, ln.max ?? 1, 4)) {
        svg.append(s('text', { x: w - r + 4, y: yr(tv) + 4, class: 'tick' }, rightFmt ? rightFmt(tv) : fmtNum(tv)));
      }
    }
  }
  const every = Math.ceil(categories.length / 10);
  categories.forEach((cat, i) => {
    if (i % every === 0) {
      svg.append(s('text', { x: x(i + 0.5), y: h - b + 16, 'text-anchor': 'middle', class: 'tick' }, String(cat).length > 10 ? String(cat).slice(5) : String(cat)));
    }
  });
  return svg;
}

/** Horizontal bars: one per label, value in [0, max]. */
export function hbars(items, { labels, max, fmt = fmtNum, color = '#d62728' }) {
  const rowH = 22, l = 150, r = 60, t = 6;
  const w = 640, h = t * 2 + items.length * rowH;
  const svg = root('hbars', w, h, labels.title);
  const top = max ?? Math.max(...items.map((x) => x.value), 1e-9);
  const x = scale(0, top, l, w - r);
  items.forEach((it, i) => {
    const yy = t + i * rowH;
    svg.append(s('text', { x: l - 6, y: yy + rowH - 7, 'text-anchor': 'end', class: 'tick' }, it.label));
    svg.append(s('rect', { x: l, y: yy + 3, width: Math.max(x(it.value) - l, 1), height: rowH - 6, fill: color, class: 'bar' }, s('title', {}, `${it.label}: ${fmt(it.value)}`)));
    svg.append(s('text', { x: x(it.value) + 4, y: yy + rowH - 7, class: 'tick' }, fmt(it.value)));
  });
  return svg;
}

/** Events as dots: one row per account, colour = kind. */
export function eventStrip(events, { labels, maxRows = 30 }) {
  const ev = events.map((e) => ({ ...e, t: Date.parse(e.ts) })).filter((e) => Number.isFinite(e.t));
  const accounts = [...new Set(ev.map((e) => e.account_id))].slice(0, maxRows);
  const kinds = [...new Set(ev.map((e) => e.kind))].sort();
  const rowH = 14, l = 110, r = 10, t = 8, b = 28;
  const w = 720, h = t + b + Math.max(accounts.length, 1) * rowH;
  const svg = root('events', w, h, labels.title);
  if (!ev.length) return { svg, kinds };
  const tmin = Math.min(...ev.map((e) => e.t)), tmax = Math.max(...ev.map((e) => e.t), tmin + 60e3);
  const x = scale(tmin, tmax, l, w - r);
  accounts.forEach((a, i) => {
    if (i % 2 === 0) svg.append(s('rect', { x: l, y: t + i * rowH, width: w - l - r, height: rowH, class: 'row-band' }));
    svg.append(s('text', { x: l - 4, y: t + i * rowH + rowH - 3, 'text-anchor': 'end', class: 'tick' }, a.length > 16 ? a.slice(0, 15) + '…' : a));
  });
  const dots = s('g', { class: 'dots' });
  for (const e of ev) {
    const i = accounts.indexOf(e.account_id);
    if (i < 0) continue;
    dots.append(s('circle', { cx: x(e.t), cy: t + i * rowH + rowH / 2, r: 2.5, fill: colorOf(e.kind, kinds), class: 'event' }, s('title', {}, `${e.ts} · ${e.account_id} · ${e.kind}`)));
  }
  svg.append(dots);
  const spanDays = (tmax - tmin) / 86400e3;
  for (const tv of ticks(tmin, tmax, 6)) {
    const d = new Date(tv);
    const label = spanDays > 0.9 ? `${d.getMonth() + 1}-${d.getDate()} ${hhmm(tv)}` : hhmm(tv);
    svg.append(s('text', { x: x(tv), y: h - 8, 'text-anchor': 'middle', class: 'tick' }, label));
  }
  return { svg, kinds };
}
