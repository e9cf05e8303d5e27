// End-to-end test of groundtruth's pages in Debian's headless Chromium.
//
// Run by tests/tests/web.rs against a running `groundtruth demo`; reads
//   GT_URL        http://127.0.0.1:PORT (the demo's API and pages)
//   GT_ADMIN, GT_INSPECTOR, GT_ANALYST   tokens the demo printed
//   GT_CITY       the inspector's region (a 4-digit city code)
//   GT_ARTIFACTS  where screenshots go
//   CHROMIUM      the browser (default /usr/bin/chromium)
// Exits non-zero with a message on the first failed check.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const URL0 = need('GT_URL');
const ADMIN = need('GT_ADMIN');
const INSPECTOR = need('GT_INSPECTOR');
const ANALYST = need('GT_ANALYST');
const CITY = need('GT_CITY');
const ARTIFACTS = need('GT_ARTIFACTS');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function need(name) {
  const v = process.env[name];
  if (!v) { console.error(`e2e: ${name} is not set`); process.exit(2); }
  return v;
}

let step = 'start';
function check(cond, what) {
  if (!cond) throw new Error(`${step}: ${what}`);
}

async function api(token, p, init = {}) {
  const res = await fetch(URL0 + p, { ...init, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...(init.headers || {}) } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

fs.mkdirSync(ARTIFACTS, { recursive: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
const problems = [];
let n = 0;

async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'zh-CN' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Chromium logs every non-2xx answer as "Failed to load resource"; the
  // test provokes 400/401/403/404 on purpose. Anything else is a problem
  // (script errors, CSP violations).
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`); });
  return page;
}

async function shot(page, name) {
  n += 1;
  // A case page loads its timeline and history after the case: wait for both.
  if (await page.locator('#timeline').count()) await page.waitForSelector('#timeline[data-loaded] >> nth=0');
  if (await page.locator('#history').count()) await page.waitForSelector('#history[data-loaded] >> nth=0');
  await page.screenshot({ path: path.join(ARTIFACTS, `${String(n).padStart(2, '0')}-${name}.png`), fullPage: true });
}

async function signIn(page, token) {
  await page.goto(URL0 + '/');
  await page.waitForSelector('#token');
  await page.fill('#token', token);
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('#signout');
}

/** Every form control on the page has a label (for screen readers). */
async function labelled(page) {
  const bare = await page.$$eval('input, select, textarea', (els) => els
    .filter((el) => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    .map((el) => el.outerHTML.slice(0, 80)));
  check(bare.length === 0, `controls without a label: ${bare.join(' | ')}`);
}

async function count(page, selector) {
  return page.locator(selector).count();
}

try {
  // ------------------------------------------------------------ admin
  step = 'sign-in page';
  let page = await newPage();
  await page.goto(URL0 + '/');
  await page.waitForSelector('#token');
  check((await page.locator('html').getAttribute('lang')) === 'zh-CN', 'Chinese is the default language');
  check((await page.textContent('form.signin h1')).includes('登录'), 'the sign-in title is in Chinese');
  await shot(page, 'signin');
  step = 'wrong token';
  await page.fill('#token', 'gt_' + '0'.repeat(64));
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('form.signin .alert');
  check(await page.isVisible('#token'), 'a wrong token stays on the sign-in page');

  step = 'queue as admin';
  await signIn(page, ADMIN);
  await page.waitForSelector('table.queue tbody tr');
  const allRows = await count(page, 'table.queue tbody tr');
  check(allRows > 0, 'the admin queue lists cases');
  check((await page.textContent('nav#nav')).includes('案件队列'), 'the navigation is in Chinese');
  await labelled(page);
  await shot(page, 'queue');

  step = 'filter the queue';
  await page.selectOption('#f-detector', 'phone_farm');
  await page.click('form.filters button[type=submit]');
  await page.waitForFunction(() => location.hash.includes('detector=phone_farm'));
  // The unfiltered rows stay on the page until the filtered page has
  // loaded: wait for the table to be redrawn with phone farms only (a
  // filter that does not work times out here).
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('table.queue tbody tr')];
    return rows.length > 0 && rows.every((r) => r.querySelector('.chip.det-phone_farm'));
  });
  const farmRows = await page.locator('table.queue tbody tr').all();
  check(farmRows.length > 0, 'phone_farm cases are listed');
  for (const r of farmRows) check((await r.locator('.chip.det-phone_farm').count()) === 1, 'every filtered row is a phone farm');
  await shot(page, 'queue-filtered');

  step = 'phone-farm case';
  await page.locator('table.queue tbody tr a').first().click();
  await page.waitForSelector('svg[data-chart="sessions"] rect.session');
  const beads = await count(page, 'svg[data-chart="sessions"] rect.session');
  check(beads >= 6, `the farm timeline draws sessions (${beads})`);
  check((await page.textContent('section.reason')).length > 20, 'the reason is shown at the top');
  const han = /[\u4e00-\u9fff]{8}/;
  const chineseReason = async (det) => {
    const r = await page.textContent(`section.finding[data-detector="${det}"] p.reason-text`);
    check(han.test(r), `the ${det} reason is in Chinese: ${r}`);
    // Report categories are named in Chinese, not by their ids.
    check(!/\b[a-z]+_[a-z]+\b/.test(r), `the ${det} reason names no raw category id: ${r}`);
  };
  await chineseReason('phone_farm');
  // A farm works on several days: each chain can be shown, with its day.
  const chains = await count(page, '.chain-picker button');
  if (chains > 1) {
    const day = async () => page.textContent('svg[data-chart="sessions"] text.day');
    const first = await day();
    const other = chains - 1;
    await page.click(`.chain-picker button[data-chain="${other}"]`);
    await page.waitForSelector(`.chain-picker button[data-chain="${other}"][aria-pressed="true"]`);
    const firstBead = await page.textContent('svg[data-chart="sessions"] rect.session title');
    check(/\d{4}-\d{2}-\d{2}/.test(await day()), 'the farm chart says which day it shows');
    check(firstBead.length > 10, 'the chosen chain is drawn');
    console.log(`phone farm: ${chains} chains; shown ${first} then ${await day()}`);
  } else {
    console.log('phone farm: one chain only in this case');
  }
  await page.waitForSelector('svg[data-chart="per-day"] rect.bar');
  await page.waitForSelector('svg[data-chart="events"] circle.event');
  const kinds = await page.textContent('#timeline ul.legend');
  check(kinds.includes('会话开始') && !kinds.includes('session_start'), `event kinds are named in Chinese: ${kinds}`);
  await shot(page, 'case-phone-farm');

  step = 'a case printed';
  {
    check(await page.isVisible('#print-case'), 'the case page has a print button');
    await page.waitForSelector('#timeline details.sql-behind');
    const tlSql = await page.textContent('#timeline details.sql-behind pre');
    check(tlSql.includes('FROM events') && tlSql.includes('account_id IN ('), `the timeline shows the SQL behind it: ${tlSql}`);
    // The SQL gives the timeline's own daily counts.
    const caseId = Number((await page.evaluate(() => location.hash)).split('/')[2]);
    const tl = await api(ADMIN, `/api/v1/cases/${caseId}/timeline`);
    const rerun = await api(ANALYST, '/api/v1/sql', { method: 'POST', body: JSON.stringify({ sql: tlSql }) });
    const total = (rows) => rows.reduce((a, r) => a + Number(r.events), 0);
    check(rerun.status === 200 && total(rerun.body.rows) === total(tl.body.per_day), `the timeline's SQL reruns to its counts (${JSON.stringify(rerun.body).slice(0, 200)})`);
    await page.evaluate(() => window.dispatchEvent(new Event('beforeprint')));
    check(await page.locator('main details:not([open]):not(.raw)').count() === 0, 'printing opens what is folded (the SQL, the detector\u2019s own words)');
    await page.emulateMedia({ media: 'print' });
    check(!(await page.isVisible('#print-case')) && !(await page.isVisible('#nav')), 'controls are not printed');
    check((await page.textContent('.print-head')).includes(`#${caseId}`), 'the print says which case, when and by whom');
    const pdf = path.join(ARTIFACTS, 'case.pdf');
    await page.pdf({ path: pdf, format: 'A4', printBackground: true });
    check(fs.statSync(pdf).size > 20000, 'the case PDF has content');
    await shot(page, 'case-print');
    await page.emulateMedia({ media: 'screen' });
    await page.evaluate(() => window.dispatchEvent(new Event('afterprint')));
  }

  step = 'dog-track case';
  const tracks = await api(ADMIN, '/api/v1/cases?detector=non_human_track&status=open,needs_info,closed&limit=100');
  check(tracks.status === 200 && tracks.body.items.length > 0, 'the demo has non_human_track cases');
  let dog = null;
  for (const c of tracks.body.items) {
    const d = await api(ADMIN, `/api/v1/cases/${c.case_id}`);
    if (d.body.findings.some((f) => f.finding.evidence?.classification === 'animal-like')) { dog = c.case_id; break; }
  }
  check(dog, 'an animal-like (dog) track case exists');
  await page.goto(`${URL0}/#/case/${dog}`);
  await page.waitForSelector('svg[data-chart="track"] g.segments line');
  const segs = await count(page, 'svg[data-chart="track"] g.segments line');
  check(segs >= 10, `the track is drawn (${segs} segments)`);
  const trackCharts = await count(page, 'svg[data-chart="track"]');
  check(await count(page, 'svg[data-chart="track"] .scale-bar') === trackCharts, 'every track has a scale bar');
  check(await count(page, 'svg[data-chart="speed"] rect.human-band') === trackCharts, 'every speed chart shows the human band');
  check((await page.locator('section.finding[data-detector="non_human_track"] ul.legend').first().textContent()).includes('人类速度范围'), 'the track legend is labelled');
  // Colour comes from speed: more than one colour on an animal's track.
  const colours = await page.$$eval('svg[data-chart="track"] g.segments line', (ls) => new Set(ls.map((l) => l.getAttribute('stroke'))).size);
  check(colours >= 2, `the track is coloured by speed (${colours} colours)`);
  await chineseReason('non_human_track');
  // Key figures named in the page's language, the field's own name on hover.
  const figs = await page.$$eval('section.finding[data-detector="non_human_track"] dl.facts dt', (ds) => ds.map((d) => [d.textContent, d.getAttribute('title')]));
  check(figs.some(([text, key]) => key === 'animal-like' && text === '像动物（狗）'), `the class is named in Chinese (${JSON.stringify(figs.slice(0, 3))})`);
  check(figs.some(([text, key]) => key === 'turn_mean_deg' && /[\u4e00-\u9fff]/.test(text)), 'track features are named in Chinese');
  await shot(page, 'case-dog-track');

  step = 'every detector has its picture';
  const pictures = {
    bulk_check_in: 'svg[data-chart="checkins"] circle.check-in',
    registration_farm: 'svg[data-chart="histogram"] rect.bar',
    record_churn: 'svg[data-chart="churn"] rect.bar',
    report_inflation: 'svg[data-chart="reports"] rect.bar',
  };
  for (const [det, selector] of Object.entries(pictures)) {
    const list = await api(ADMIN, `/api/v1/cases?detector=${det}&status=open,needs_info,closed&limit=1`);
    check(list.status === 200 && list.body.items.length === 1, `the demo has a ${det} case`);
    await page.goto(`${URL0}/#/case/${list.body.items[0].case_id}`);
    await page.waitForSelector(`section.finding[data-detector="${det}"] ${selector}`);
    await chineseReason(det);
    if (det === 'bulk_check_in') {
      // The rhythm: a row per account, joined in the order they were
      // clocked in on the device.
      const sel = 'section.finding[data-detector="bulk_check_in"]';
      check(await count(page, `${sel} .rhythm-chart svg[data-chart="sessions"] rect.session`) >= 2, 'the check-ins are drawn one after another, a row per account');
      check(await count(page, `${sel} .rhythm-chart polyline.chain`) >= 1, 'the check-ins are joined in order');
    }
    if (det === 'report_inflation') {
      // The surplus beside the normal count, and the filler in it.
      const sel = 'section.finding[data-detector="report_inflation"]';
      check(await count(page, `${sel} svg[data-chart="reports"] .line`) >= 1, 'the report days have their normal count beside them');
      check((await page.textContent(`${sel} figure.figures`)).includes('推算'), 'the expected reports are among the figures');
    }
    await shot(page, `case-${det}`);
  }

  step = 'four eyes';
  {
    // The demo runs with store.four_eyes = ["registration_farm"]: the
    // admin's confirmation is a proposal; the page says so and offers the
    // proposer no sign-off; a second admin signs it off.
    const list = await api(ADMIN, '/api/v1/cases?detector=registration_farm&status=open&limit=1');
    const id = list.body.items[0].case_id;
    const before = await api(ADMIN, `/api/v1/cases/${id}`);
    const v = await api(ADMIN, `/api/v1/cases/${id}/verdict`, { method: 'POST', body: JSON.stringify({ verdict: 'confirmed', note: '同一批手机注册了上百个账号', expected_version: before.body.case.version }) });
    check(v.status === 200 && v.body.status === 'open' && v.body.proposal, `a confirmation is a proposal: ${JSON.stringify(v.body).slice(0, 200)}`);
    await page.goto(`${URL0}/#/case/${id}`);
    await page.waitForSelector('#proposal');
    check((await page.textContent('#proposal')).includes('待复核'), 'the case says it awaits a sign-off');
    check(await page.isDisabled('button[data-verdict="confirmed"]'), 'the proposer cannot sign off their own proposal');
    await shot(page, 'case-four-eyes');
    const second = await api(ADMIN, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ subject: 'admin-two', role: 'admin', region: '' }) });
    const signed = await api(second.body.token, `/api/v1/cases/${id}/verdict`, { method: 'POST', body: JSON.stringify({ verdict: 'confirmed', note: '核对了设备清单' }) });
    check(signed.status === 200 && signed.body.status === 'closed' && signed.body.verdict === 'confirmed', `a second admin signs it off: ${JSON.stringify(signed.body).slice(0, 200)}`);
  }

  step = 'a phone';
  {
    // A 390 px phone: nothing scrolls sideways, no keyboard hints.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'zh-CN', hasTouch: true, isMobile: true });
    const p = await phone.newPage();
    p.setDefaultTimeout(20000);
    p.on('pageerror', (e) => problems.push(`page error (phone): ${e.message}`));
    await signIn(p, ADMIN);
    const wide = () => p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await p.goto(`${URL0}/#/queue?status=`);
    await p.waitForSelector('table.queue tbody tr');
    check(await wide() <= 1, `the queue scrolls sideways on a phone (${await wide()} px)`);
    check(!(await p.isVisible('#queue-keys')), 'no keyboard hints on a phone');
    await shot(p, 'phone-queue');
    const farm = await api(ADMIN, '/api/v1/cases?detector=phone_farm&status=open,needs_info,closed&limit=1');
    await p.goto(`${URL0}/#/case/${farm.body.items[0].case_id}`);
    await p.waitForSelector('svg[data-chart="sessions"] rect.session');
    await p.waitForSelector('#history[data-loaded]');
    check(await wide() <= 1, `the case page scrolls sideways on a phone (${await wide()} px)`);
    await shot(p, 'phone-case');
    await phone.close();
  }

  step = 'verdict';
  await page.goto(`${URL0}/#/case/${dog}`);
  await page.waitForSelector('svg[data-chart="track"]');
  // A verdict needs its reason: without one the page says so and saves nothing.
  await page.click('button[data-verdict="confirmed"]');
  await page.waitForSelector('section.decide .alert');
  check(await page.evaluate(() => document.activeElement?.id === 'verdict-note'), 'the empty note is focused');
  const note = `e2e verdict ${Date.now()}`;
  await page.fill('#verdict-note', note);
  // A colleague's note lands meanwhile: the verdict is refused (409), the
  // page shows the case as it now is and keeps what was typed.
  const colleague = await api(ADMIN, `/api/v1/cases/${dog}/notes`, { method: 'POST', body: JSON.stringify({ text: 'e2e colleague note' }) });
  check(colleague.status === 200 || colleague.status === 201, `a colleague's note is saved (${colleague.status})`);
  await page.click('button[data-verdict="confirmed"]');
  await page.waitForFunction(() => document.querySelector('section.decide .alert')?.textContent.includes('已被他人修改'));
  check(await page.inputValue('#verdict-note') === note, 'the typed note survives the conflict');
  await page.click('button[data-verdict="confirmed"]');
  await page.waitForSelector('ol.history li[data-action="case.verdict"]');
  const hist = await page.textContent('ol.history');
  check(hist.includes('作出结论') && hist.includes('确认造假'), `the verdict is in the history, in Chinese: ${hist}`);
  check(!hist.includes('case.verdict') && !hist.includes('null'), `no raw action names or nulls in the history: ${hist}`);
  check((await page.textContent('.decide')).includes('已结案'), 'the case shows as closed');
  const audit = await api(ADMIN, `/api/v1/cases/${dog}/history`);
  check(audit.body.some((a) => a.action === 'case.verdict' && JSON.stringify(a.after).includes('confirmed')), 'the API history has the verdict');
  await labelled(page);
  await shot(page, 'case-verdict');

  step = 'keyboard';
  await page.goto(`${URL0}/#/queue`);
  await page.waitForSelector('table.queue tbody tr');
  await page.locator('main h1').click();
  await page.keyboard.press('?');
  await page.waitForSelector('#help');
  await page.keyboard.press('Escape');
  await page.waitForSelector('#help', { state: 'detached' });
  await page.keyboard.press('j');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => location.hash.startsWith('#/case/'));
  await page.waitForSelector('section.reason');

  step = 'save and next';
  {
    // An open case, unassigned: save a verdict with "save and next" on,
    // and the next open case of the queue is claimed and opened.
    const open = await api(ADMIN, '/api/v1/cases?status=open&limit=50');
    const first = open.body.items.find((c) => !c.assignee);
    check(first && open.body.items.filter((c) => !c.assignee).length >= 2, 'the demo has two unassigned open cases');
    await page.goto(`${URL0}/#/queue`);
    await page.waitForSelector('table.queue tbody tr');
    await page.goto(`${URL0}/#/case/${first.case_id}`);
    await page.waitForSelector('#save-next');
    check((await page.textContent('label[for="save-next"]')).includes('下一个'), 'the save-and-next switch is labelled in Chinese');
    await page.check('#save-next');
    await page.fill('#verdict-note', 'e2e save and next');
    await shot(page, 'case-save-next');
    await page.click('button[data-verdict="needs_info"]');
    await page.waitForFunction((id) => location.hash.startsWith('#/case/') && !location.hash.startsWith(`#/case/${id}`), first.case_id);
    const opened = Number((await page.evaluate(() => location.hash)).split('/')[2]);
    const claimed = await api(ADMIN, `/api/v1/cases/${opened}`);
    check(claimed.body.case.assignee, `the next case ${opened} is claimed (${claimed.body.case.assignee})`);
    const decided = await api(ADMIN, `/api/v1/cases/${first.case_id}`);
    check(decided.body.case.verdict === 'needs_info', `the first case has its verdict (${decided.body.case.verdict})`);
    await page.waitForSelector('#save-next');
    check(await page.isChecked('#save-next'), 'the switch stays on for the next case');
    await page.uncheck('#save-next');
  }

  step = 'case link while signed out';
  {
    const ctx = await browser.newContext({ locale: 'zh-CN' });
    const p = await ctx.newPage();
    p.setDefaultTimeout(20000);
    await p.goto(`${URL0}/#/case/${dog}`);
    await p.waitForSelector('#token');
    await p.fill('#token', ADMIN);
    await p.click('form.signin button[type=submit]');
    await p.waitForFunction((id) => location.hash === `#/case/${id}`, dog);
    await p.waitForSelector('section.reason');
    await ctx.close();
  }

  step = 'language switch';
  await page.click('#lang');
  await page.waitForFunction(() => document.documentElement.lang === 'en');
  check((await page.textContent('nav#nav')).includes('Queue'), 'English labels after the switch');
  await page.click('#lang');
  await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
  await page.context().close();

  // ------------------------------------------------------------ inspector, one city
  step = 'inspector scope';
  page = await newPage();
  await signIn(page, INSPECTOR);
  await page.goto(`${URL0}/#/queue?status=`);
  await page.waitForSelector('table.queue tbody tr, main p.notice');
  const regions = await page.$$eval('table.queue tbody tr td:nth-child(5)', (tds) => tds.map((td) => td.textContent));
  check(regions.length > 0, 'the inspector sees cases of the city');
  for (const r of regions) check(r.startsWith(CITY), `a case of region ${r} is outside ${CITY}`);
  // A case of another region, by id: the page must not show it.
  const every = await api(ADMIN, '/api/v1/cases?status=open,needs_info,closed&limit=500');
  const outside = every.body.items.find((c) => !c.regions.some((r) => r.startsWith(CITY)));
  check(outside, 'the demo has a case outside the city');
  await page.goto(`${URL0}/#/case/${outside.case_id}`);
  await page.waitForSelector('main .alert');
  check(!(await page.isVisible('section.reason')), 'no case content for another region');
  check((await page.textContent('main .alert')).includes('not_found'), 'another region\u2019s case is "not found"');
  check((await page.textContent('main .alert')).includes('不在您的辖区内'), 'the error is explained in Chinese');
  // Filtering by another region shows nothing either.
  const otherRegion = outside.regions[0];
  await page.goto(`${URL0}/#/queue?status=&region=${otherRegion}`);
  await page.waitForSelector('main .alert, main p.notice, table.queue');
  check(await count(page, 'table.queue tbody tr') === 0, 'no rows for another region');
  await shot(page, 'inspector-scope');

  step = 'a case across regions';
  {
    // The city's inspector sees the city's accounts of a case that also
    // reaches other regions, and is told what is not shown.
    const across = every.body.items.find((c) => c.regions.some((r) => r.startsWith(CITY)) && c.regions.some((r) => !r.startsWith(CITY)));
    if (across) {
      const whole = await api(ADMIN, `/api/v1/cases/${across.case_id}`);
      const mine = await api(INSPECTOR, `/api/v1/cases/${across.case_id}`);
      check(mine.body.case.outside_scope && mine.body.case.outside_scope.hidden_accounts > 0, 'the city view says what it hides');
      check(mine.body.case.accounts.length < whole.body.case.accounts.length, 'fewer accounts than the whole case');
      await page.goto(`${URL0}/#/case/${across.case_id}`);
      await page.waitForSelector('#outside-scope');
      const facts = await page.textContent('dl.facts');
      const hidden = whole.body.case.accounts.filter((a) => !mine.body.case.accounts.includes(a));
      for (const a of hidden) check(!(await page.textContent('main')).includes(a), `account ${a} of another region shown`);
      check(facts.includes(String(mine.body.case.outside_scope.hidden_accounts)), 'the hidden count is shown');
      await shot(page, 'case-across-regions');
    } else {
      console.log('the demo has no case across regions; the store tests cover them');
    }
  }

  step = 'a slow page does not cover the next';
  {
    // The queue answers slowly; the case opened meanwhile must stay shown
    // when the queue's answer arrives.
    const slow = (url) => url.pathname === '/api/v1/cases';
    await page.route(slow, async (r) => { await new Promise((ok) => setTimeout(ok, 1500)); await r.continue(); });
    const own = every.body.items.find((c) => c.regions.some((r) => r.startsWith(CITY)));
    await page.goto(`${URL0}/#/queue?status=`);
    await page.goto(`${URL0}/#/case/${own.case_id}`);
    await page.waitForSelector('section.reason');
    await page.waitForTimeout(2500);
    check(await page.isVisible('section.reason'), 'the case page stays after the slower queue answers');
    await page.unroute(slow);
  }

  step = 'region data';
  await page.goto(`${URL0}/#/region`);
  await page.waitForSelector('svg[data-chart="region-activity"] rect.bar');
  check((await page.inputValue('#r-code')) === CITY, 'the region page starts at the inspector’s own region');
  check((await page.textContent('main p.meta')).startsWith(CITY), 'the summary is of the city');
  await page.goto(`${URL0}/#/region?code=${otherRegion}`);
  await page.waitForSelector('main .alert');
  check((await page.textContent('main .alert')).includes('not_found'), 'another region’s data is "not found"');
  await shot(page, 'region');

  step = 'bulk assign';
  await page.goto(`${URL0}/#/queue?status=open&assignee=none`);
  await page.waitForSelector('table.queue tbody tr');
  const me = (await api(INSPECTOR, '/api/v1/me')).body.subject;
  const picked = await page.$$eval('table.queue tbody tr', (trs) => trs.slice(0, 2).map((tr) => Number(tr.dataset.caseId)));
  for (let i = 0; i < picked.length; i++) await page.locator('table.queue tbody tr input[type=checkbox]').nth(i).check();
  check((await page.textContent('.bulk .count')).includes(String(picked.length)), 'the selection is counted');
  await page.click('#bulk-assign-me');
  await page.waitForSelector('.status-line .notice');
  for (const id of picked) {
    const c = await api(INSPECTOR, `/api/v1/cases/${id}`);
    check(c.body.case.assignee === me, `case ${id} is assigned to ${me} after the bulk assign`);
  }

  step = 'claim next';
  await page.goto(`${URL0}/#/queue`);
  // This queue's own button, not the one of the queue shown before (the
  // key would land between the two pages and do nothing).
  await page.waitForSelector('main[data-route="#/queue"] #claim-next');
  await page.keyboard.press('c');
  await page.waitForFunction(() => location.hash.startsWith('#/case/'));
  const claimed = Number((await page.evaluate(() => location.hash)).split('/')[2]);
  const cc = await api(INSPECTOR, `/api/v1/cases/${claimed}`);
  check(cc.status === 200 && cc.body.case.assignee === me, 'claim-next gave the inspector a case of the city');
  check(cc.body.case.regions.some((r) => r.startsWith(CITY)), 'the claimed case is in the city');
  await page.context().close();

  // ------------------------------------------------------------ analyst
  step = 'metrics';
  page = await newPage();
  await signIn(page, ANALYST);
  await page.goto(`${URL0}/#/metrics`);
  await page.waitForSelector('#m-daily svg[data-chart="real-vs-faked"] rect.bar', { timeout: 60000 });
  await page.waitForSelector('#m-health table tbody tr', { timeout: 60000 });
  await page.waitForSelector('#m-per-app svg[data-chart="hbars"] rect.bar');
  await page.waitForSelector('#m-burden svg rect.bar');
  check(await count(page, '#m-daily svg .line') >= 1, 'the faked share line is drawn');
  check((await page.textContent('#m-daily details.sql-behind pre')).includes('activity_daily'), 'the chart shows its SQL');
  check((await page.textContent('#m-daily ul.legend')).includes('造假'), 'the chart has a legend');
  await labelled(page);
  await shot(page, 'metrics');
  // Active accounts are people, not account-app pairs: the distinct count
  // of account_days, never above the sum activity_daily gives per app.
  const activeSql = await page.textContent('#m-active details.sql-behind pre');
  check(activeSql.includes('count(DISTINCT account_id)') && activeSql.includes('account_days'), 'active accounts are counted once each');
  const perDay = await api(ANALYST, '/api/v1/sql', { method: 'POST', body: JSON.stringify({ sql: 'SELECT (SELECT count(DISTINCT account_id) FROM account_days) AS people, (SELECT sum(active_accounts) FROM activity_daily) AS pairs' }) });
  check(perDay.status === 200 && perDay.body.rows[0].people <= perDay.body.rows[0].pairs, `distinct people ${JSON.stringify(perDay.body.rows)} within account-app pairs`);
  // A region selected: the burden is the region's people; app health says
  // it stays over all of an app's users.
  await page.goto(`${URL0}/#/metrics?region=${CITY}`);
  await page.waitForSelector('#m-health-scope', { timeout: 60000 });
  await page.waitForSelector('#m-burden details.sql-behind pre', { state: 'attached' });
  check((await page.textContent('#m-burden details.sql-behind pre')).includes(`region LIKE '${CITY}%'`), 'the burden is narrowed to the region');
  check((await page.textContent('#m-health-scope')).includes('全部用户'), 'app health says it is judged over all users');

  step = 'sql console';
  await page.goto(`${URL0}/#/sql`);
  await page.waitForSelector('#sql-text');
  await page.fill('#sql-text', 'SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY n DESC');
  await page.click('#sql-run');
  await page.waitForSelector('#sql-out table tbody tr');
  check((await count(page, '#sql-out table tbody tr')) >= 3, 'the query returns rows');
  check((await page.textContent('#sql-out thead')).includes('kind'), 'the result has its columns');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#sql-csv')]);
  const csvPath = path.join(ARTIFACTS, 'query.csv');
  await download.saveAs(csvPath);
  check(fs.readFileSync(csvPath, 'utf8').startsWith('\ufeffkind,n'), 'the CSV download has a byte order mark (Excel, WPS) and the header');
  check(/^groundtruth-query-\d{8}-\d{6}\.csv$/.test(download.suggestedFilename()), `the CSV is named for when it was taken: ${download.suggestedFilename()}`);
  // The same result as an Excel workbook, read back as an office would.
  const [xlsxDownload] = await Promise.all([page.waitForEvent('download'), page.click('#sql-xlsx')]);
  check(/^groundtruth-query-\d{8}-\d{6}\.xlsx$/.test(xlsxDownload.suggestedFilename()), `the workbook is named for when it was taken: ${xlsxDownload.suggestedFilename()}`);
  const queryBook = await xlsxDownload.path();
  const queryRows = JSON.parse(execFileSync('python3', ['-c',
    'import json,sys,pandas; d=pandas.read_excel(sys.argv[1]); print(json.dumps({"columns": list(map(str, d.columns)), "n": [int(x) for x in d["n"]]}))',
    queryBook], { encoding: 'utf8' }));
  const csvRows = fs.readFileSync(csvPath, 'utf8').trim().split('\n').slice(1).map((l) => Number(l.split(',')[1]));
  check(JSON.stringify(queryRows.columns) === '["kind","n"]' && JSON.stringify(queryRows.n) === JSON.stringify(csvRows), `the workbook holds the CSV's rows, counts as numbers: ${JSON.stringify(queryRows)}`);
  await labelled(page);
  await shot(page, 'sql');
  await page.fill('#sql-text', 'DROP TABLE events');
  await page.keyboard.press('Control+Enter');
  await page.waitForSelector('#sql-error');
  check((await page.textContent('#sql-error')).length > 10, 'a refused statement shows the server\u2019s message');
  await page.fill('#sql-text', 'SELEC nonsense');
  await page.click('#sql-run');
  await page.waitForFunction(() => document.querySelector('#sql-error')?.textContent.includes('SELEC'));
  await shot(page, 'sql-error');
  check(!(await page.isVisible('#claim-next')), 'analysts get no claim button');
  await page.context().close();

  // ------------------------------------------------------------ unit
  step = 'a unit: open cases counted, decided ones answered';
  {
    // A case is decided (by the admin, through the API); the unit of its
    // first district signs in.
    const open = await api(ADMIN, '/api/v1/cases?status=open&detector=phone_farm&limit=1');
    const decided = open.body.items[0];
    const d0 = await api(ADMIN, `/api/v1/cases/${decided.case_id}`);
    const v = await api(ADMIN, `/api/v1/cases/${decided.case_id}/verdict`, { method: 'POST', body: JSON.stringify({ verdict: 'confirmed', note: '五个账号由同一人轮流操作', expected_version: d0.body.case.version }) });
    check(v.status === 200, `the admin decides case ${decided.case_id}: ${JSON.stringify(v.body)}`);
    const district = decided.regions.find((r) => r.length === 6) || decided.regions[0];
    const tok = await api(ADMIN, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ subject: `unit-${district}`, role: 'unit', region: district }) });
    check(tok.status === 201, `a unit token for ${district}: ${JSON.stringify(tok.body)}`);
    const UNIT = tok.body.token;
    const seen = await api(UNIT, '/api/v1/cases?status=&limit=500');
    check(seen.body.items.every((c) => c.status === 'closed'), 'a unit sees decided cases only');
    check(seen.body.items.some((c) => c.case_id === decided.case_id), 'the unit sees the decided case about its people');
    page = await newPage();
    await signIn(page, UNIT);
    await page.waitForSelector('#decided');
    check(await page.isVisible('#open-counted'), 'the region page says open cases are counted only');
    check(!(await page.textContent('main')).includes('得分最高的待审案件'), 'no open cases are listed for a unit');
    // Data back to the unit: its month, downloadable and printable.
    await page.waitForSelector('#report-burden');
    const monthly = await page.textContent('#monthly');
    check(monthly.includes('月度报告') && monthly.includes('真实活跃账号'), 'the unit sees its monthly report in Chinese');
    check((await page.locator('#monthly table tbody tr').count()) >= 2, 'the report lists apps and people');
    const [xlsx] = await Promise.all([page.waitForEvent('download'), page.click('#report-xlsx')]);
    check(xlsx.suggestedFilename().startsWith(`groundtruth-${district}-`) && xlsx.suggestedFilename().endsWith('.xlsx'), `the workbook is named for the unit and month: ${xlsx.suggestedFilename()}`);
    const book = await xlsx.path();
    check(book && fs.readFileSync(book).subarray(0, 2).toString() === 'PK', 'the download is an xlsx workbook');
    // Read back as an office would: pandas (openpyxl) opens every sheet.
    const sheets = JSON.parse(execFileSync('python3', ['-c',
      'import json,sys,pandas; b=pandas.read_excel(sys.argv[1], sheet_name=None); print(json.dumps({k: [list(map(str, v.columns)), len(v)] for k, v in b.items()}, ensure_ascii=False))',
      book], { encoding: 'utf8' }));
    check(JSON.stringify(Object.keys(sheets)) === JSON.stringify(['概况', '各应用', '人员负担']), `the workbook's sheets: ${JSON.stringify(sheets)}`);
    check(sheets['各应用'][0].includes('真实活跃账号') && sheets['各应用'][1] >= 1 && sheets['人员负担'][1] >= 1, `the workbook holds apps and people: ${JSON.stringify(sheets)}`);
    check(sheets['人员负担'][0].includes('打卡次数') && sheets['人员负担'][0].includes('上报件数'), `each person's check-ins and reports filed: ${JSON.stringify(sheets['人员负担'][0])}`);
    await page.emulateMedia({ media: 'print' });
    await page.pdf({ path: path.join(ARTIFACTS, 'unit-monthly-report.pdf'), format: 'A4', printBackground: true });
    await page.emulateMedia({ media: 'screen' });
    await page.locator('#monthly').scrollIntoViewIfNeeded();
    await shot(page, 'unit-monthly-report');
    await page.click(`#decided a[href="#/case/${decided.case_id}"]`);
    await page.waitForSelector('#reply-text');
    await page.fill('#reply-text', '这五个账号属于本社区网格员，已要求各自本人使用。');
    await page.click('#send-reply');
    await page.waitForSelector('#replies li');
    check((await page.textContent('#replies')).includes('网格员'), 'the reply is shown on the case');
    await shot(page, 'unit-reply');
    const seenBy = await api(INSPECTOR, `/api/v1/cases/${decided.case_id}`);
    const reply = seenBy.status === 200 ? seenBy.body.replies : (await api(ADMIN, `/api/v1/cases/${decided.case_id}`)).body.replies;
    check(reply.length === 1 && reply[0].author === `unit-${district}`, 'the inspectors see the reply as evidence');
    await page.context().close();
  }

  check(problems.length === 0, `the pages logged errors:\n${problems.join('\n')}`);
  console.log(`e2e: all checks passed; ${n} screenshots in ${ARTIFACTS}`);
  await browser.close();
} catch (e) {
  console.error(`e2e FAILED at ${step}: ${e.message}`);
  // The page as it was when the check failed.
  for (const ctx of browser.contexts()) {
    for (const p of ctx.pages()) await p.screenshot({ path: path.join(ARTIFACTS, 'failed.png'), fullPage: true }).catch(() => {});
  }
  if (problems.length) console.error(problems.join('\n'));
  await browser.close();
  process.exit(1);
}
