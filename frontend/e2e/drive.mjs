// The browser half of `cargo xtask e2e --browser`: drives the page served by the api in Debian's
// headless Chromium (playwright-core, no browser download) and prints one JSON line of what it
// did and saw; the Rust half (xtask/lab/src/e2e/browser.rs) looks for it in the stores.
//
//   node frontend/e2e/drive.mjs --url http://127.0.0.1:PORT --out target/e2e/browser \
//        --owner e2e-someone [--missing gone] [--strip-traceparent] [--block-beacons]
//
// --missing names a repository of the owner that the provider does not have: the driver follows
// and polls it too, so the worker's job fails in a trace that starts in the browser.
// --strip-traceparent removes the W3C header from the page's API calls, as a server or proxy
// that does not allow it would; --block-beacons fails the vitals beacons. Each must make its
// check fail.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: flags } = parseArgs({
  options: {
    url: { type: 'string' },
    out: { type: 'string' },
    owner: { type: 'string' },
    missing: { type: 'string' },
    'strip-traceparent': { type: 'boolean', default: false },
    'block-beacons': { type: 'boolean', default: false },
    chromium: { type: 'string', default: process.env.AMPEL_CHROMIUM ?? '/usr/bin/chromium' },
  },
});
for (const required of ['url', 'out', 'owner']) {
  if (!flags[required]) {
    console.error(`drive.mjs: --${required} is required`);
    process.exit(2);
  }
}
mkdirSync(flags.out, { recursive: true });
// Every wait is bounded; the Rust side has the deadlines of the stores.
const STEP = 30_000;

const browser = await chromium.launch({
  executablePath: flags.chromium,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
});
const seen = { vitals: [], logs: 0, screenshots: [], console_errors: [], otlp: [], steps: {} };
const began = Date.now();
const step = (name) => { seen.steps[name] = Date.now() - began; };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  if (flags['strip-traceparent']) {
    await context.route('**/api/**', (route) => {
      const headers = { ...route.request().headers() };
      delete headers.traceparent;
      delete headers.tracestate;
      return route.continue({ headers });
    });
  }
  if (flags['block-beacons']) {
    await context.route('**/api/vitals', (route) => route.abort());
  }
  const page = await context.newPage();
  // What the api's relay answered the page's exports, for the report.
  page.on('response', (response) => {
    const path = new URL(response.url()).pathname;
    if (path.startsWith('/otlp/')) seen.otlp.push(`${path} ${response.status()}`);
  });
  page.on('requestfailed', (request) => {
    const path = new URL(request.url()).pathname;
    if (path.startsWith('/otlp/')) seen.otlp.push(`${path} failed: ${request.failure()?.errorText}`);
  });
  page.on('pageerror', (error) => seen.console_errors.push(`uncaught: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') seen.console_errors.push(message.text());
  });
  page.on('request', (request) => {
    const path = new URL(request.url()).pathname;
    if (path === '/api/vitals') {
      try {
        seen.vitals.push(JSON.parse(request.postData() ?? '{}').name);
      } catch {
        seen.vitals.push('unparsable');
      }
    } else if (path === '/otlp/v1/logs') {
      seen.logs += 1;
    } else if (path === '/otlp/v1/traces') {
      seen.trace_exports = (seen.trace_exports ?? 0) + 1;
    }
  });
  const shot = async (name) => {
    const path = join(flags.out, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    seen.screenshots.push(path);
  };

  // Follows `owner/name` and polls it; the poll's trace id, once its fetch span is exported.
  const followAndPoll = async (name, previous) => {
    await page.getByTestId('owner').fill(flags.owner, { timeout: STEP });
    await page.getByTestId('name').fill(name);
    await page.getByTestId('follow').click();
    const row = page.getByTestId('repository').filter({ hasText: `${flags.owner}/${name}` });
    await row.getByTestId('poll').click({ timeout: STEP });
    const traceId = page.getByTestId('last-trace-id');
    let shown = traceId.filter({ hasText: /^[0-9a-f]{32}$/ });
    if (previous) shown = shown.filter({ hasNotText: previous });
    await shown.waitFor({ timeout: STEP });
    const exported = page.waitForRequest((request) => request.url().endsWith('/otlp/v1/traces'), { timeout: STEP })
      .catch(() => null);
    const id = (await traceId.textContent()).trim();
    // The poll's fetch span leaves in the next batch (500 ms), while the page is still open.
    await exported;
    return id;
  };

  // Load, follow a repository, poll it: the poll's trace starts in the browser.
  await page.goto(flags.url, { waitUntil: 'load', timeout: STEP });
  seen.trace_id = await followAndPoll('ampel');
  step('exported');
  // The list refreshes after the poll's job stored them (the titles name the repository).
  seen.pull_requests_shown = await page.getByTestId('pull-requests').locator('li')
    .filter({ hasText: `${flags.owner}/ampel:` }).first()
    .waitFor({ timeout: STEP }).then(() => true, () => false);
  step('pull requests');
  await shot('dashboard');
  if (flags.missing) {
    seen.missing_trace_id = await followAndPoll(flags.missing, seen.trace_id);
    step('missing polled');
  }

  // Leaving the page sends what web-vitals still holds (LCP, CLS, INP) and flushes the spans.
  await page.goto('about:blank');
  step('left');

  // The error path: a component throws; the boundary shows its fallback and reports the error.
  await page.goto(new URL('/?e2e-crash=1', flags.url).href, { waitUntil: 'load', timeout: STEP });
  // The report leaves in the next batch (500 ms): wait for the relay's answer while the page is
  // open, as for the poll's span; a flush on pagehide alone can lose it.
  const reported = page.waitForResponse((response) => response.url().endsWith('/otlp/v1/logs'), { timeout: STEP })
    .catch(() => null);
  await page.getByTestId('crash').click({ timeout: STEP });
  await page.getByTestId('error-fallback').waitFor({ timeout: STEP });
  seen.fallback = true;
  // The fallback shows the report's trace id, which finds the record in the log store.
  const reference = page.getByTestId('error-reference');
  await reference.filter({ hasText: /^[0-9a-f]{32}$/ }).waitFor({ timeout: STEP });
  seen.error_trace_id = (await reference.textContent()).trim();
  await shot('error-fallback');
  await reported;
  step('error reported');
  await page.goto('about:blank');
} catch (error) {
  seen.error = String(error?.message ?? error);
  // What was on screen, for the report.
  const [page] = browser.contexts().flatMap((context) => context.pages());
  if (page) {
    seen.page_text = (await page.locator('body').innerText().catch(() => '')).slice(0, 500);
    const path = join(flags.out, 'failure.png');
    if (await page.screenshot({ path }).then(() => true, () => false)) seen.screenshots.push(path);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
