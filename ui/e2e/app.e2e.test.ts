// End to end of the real app: the debug `pixelflow-desktop` binary under Xvfb, driven through
// WebDriver (tauri-driver + Debian's WebKitWebDriver). It drops generated images (the same
// function the drag-and-drop event calls), waits for the run to finish, checks the outputs on
// disk, opens the history entry, and saves a screenshot of each main view in
// test-output/app/. scripts/test.sh runs it under xvfb-run with PIXELFLOW_REQUIRE_DESKTOP_E2E=1;
// elsewhere it is skipped when the binary, tauri-driver or a display is missing.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { png } from './png';
import { Session } from './webdriver';

const ui = join(dirname(fileURLToPath(import.meta.url)), '..');
const shots = join(ui, 'test-output', 'app');
const bin = process.env.PIXELFLOW_DESKTOP_BIN ?? '';
const driver = process.env.PIXELFLOW_TAURI_DRIVER ?? 'tauri-driver';
// The S3 server the Export view sends to: moto (scripts/test.sh installs it for the sync tests).
const moto = process.env.PIXELFLOW_MOTO ?? '';
const ready = Boolean(bin && existsSync(bin) && process.env.DISPLAY && moto && existsSync(moto));
if (!ready && process.env.PIXELFLOW_REQUIRE_DESKTOP_E2E === '1') {
  throw new Error(`the desktop end-to-end test needs PIXELFLOW_DESKTOP_BIN (${bin || 'unset'}), a DISPLAY (${process.env.DISPLAY ?? 'unset'}) and PIXELFLOW_MOTO (${moto || 'unset'})`);
}
const BUCKET = 'pixelflow-e2e';

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });

let data = '';
let photos = '';
let tauriDriver: ChildProcess | undefined;
let motoServer: ChildProcess | undefined;
let s3 = '';
let session: Session;
let driverLog = '';

async function shot(name: string) {
  // Let the window paint what the DOM now holds before taking the picture.
  await session.execute('return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))').catch(() => undefined);
  await new Promise((r) => setTimeout(r, 400));
  writeFileSync(join(shots, `${name}.png`), await session.screenshot());
}
const click = (selector: string) => session.execute<boolean>('const e = document.querySelector(arguments[0]); if (!e) return false; e.click(); return true;', selector);

describe.skipIf(!ready)('the desktop app (real binary, WebDriver)', () => {
  beforeAll(async () => {
    mkdirSync(shots, { recursive: true });
    data = mkdtempSync(join(tmpdir(), 'pixelflow-e2e-'));
    photos = join(data, 'dropped');
    mkdirSync(photos);
    writeFileSync(join(photos, 'sunset.png'), png(320, 240, 40));
    writeFileSync(join(photos, 'forest.png'), png(256, 256, 120));
    writeFileSync(join(photos, 'ocean.png'), png(400, 200, 220));
    writeFileSync(join(photos, 'broken.jpg'), Buffer.from('this is not a jpeg'));
    mkdirSync(join(data, 'to-review'));
    writeFileSync(join(data, 'to-review', 'first.png'), png(200, 150, 60));
    writeFileSync(join(data, 'to-review', 'second.png'), png(150, 200, 180));

    const motoPort = await freePort();
    motoServer = spawn(moto, ['-H', '127.0.0.1', '-p', String(motoPort)], { stdio: 'ignore' });
    s3 = `http://127.0.0.1:${motoPort}`;
    for (let i = 0; ; i++) {
      try {
        // moto takes unsigned requests: the bucket the export fills.
        if ((await fetch(`${s3}/${BUCKET}`, { method: 'PUT' })).ok) break;
      } catch {
        /* not listening yet */
      }
      if (i > 300) throw new Error('moto did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    // The Workflow view's "Export" downloads the file: WebKit saves it in the XDG download dir.
    mkdirSync(join(data, 'config'));
    mkdirSync(join(data, 'downloads'));
    writeFileSync(join(data, 'config', 'user-dirs.dirs'), `XDG_DOWNLOAD_DIR="${join(data, 'downloads')}"\n`);

    const port = await freePort();
    const nativePort = await freePort();
    // The app finds S3 credentials where the CLI does (no keychain here): the environment.
    const cloud = { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'us-east-1', AWS_SHARED_CREDENTIALS_FILE: join(data, 'none'), AWS_CONFIG_FILE: join(data, 'none') };
    tauriDriver = spawn(driver, ['--port', String(port), '--native-port', String(nativePort)], {
      env: { ...process.env, ...cloud, XDG_CONFIG_HOME: join(data, 'config'), PIXELFLOW_DATA_DIR: join(data, 'pixelflow'), PIXELFLOW_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    tauriDriver.stdout?.on('data', (d) => (driverLog += d));
    tauriDriver.stderr?.on('data', (d) => (driverLog += d));
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        await fetch(`${base}/status`);
        break;
      } catch {
        if (i > 100) throw new Error(`tauri-driver did not start:\n${driverLog}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    session = await Session.create(base, bin);
    try {
      await session.waitFor('the UI', 'return !!(window.__PIXELFLOW__ && document.querySelector("select[aria-label=Workflow] option"))');
    } catch (e) {
      // Say what the window shows, to tell a broken UI from a broken shell.
      await shot('startup-failure').catch(() => undefined);
      const page = await session.execute<string>('return location.href + " :: " + document.body.innerText').catch((x) => String(x));
      throw new Error(`${e}\nthe page: ${page}\ntauri-driver:\n${driverLog.slice(-4000)}`);
    }
  });

  afterEach(async (ctx) => {
    // A failed step leaves a picture of the window and what the Run view knew.
    if (ctx.task.result?.state === 'fail' && session) {
      await shot(`failure-${ctx.task.name.slice(0, 30).replace(/\W+/g, '-')}`).catch(() => undefined);
      const runs = await session.execute<string>('return JSON.stringify(window.__PIXELFLOW__.store.runs.map((r) => ({ phase: r.phase, workflow: r.workflow, error: r.error, items: r.items.map((i) => i.state + " " + (i.reason ?? "")) })))').catch(String);
      console.error(`the runs: ${runs}\ntauri-driver:\n${driverLog.slice(-3000)}`);
    }
  });

  afterAll(async () => {
    await session?.close();
    tauriDriver?.kill('SIGTERM');
    motoServer?.kill('SIGTERM');
    if (data && !process.env.PIXELFLOW_KEEP_E2E_DATA) rmSync(data, { recursive: true, force: true });
  });

  it('runs dropped images to the end and writes their outputs', async () => {
    expect(await session.execute<string>('return document.querySelector("select[aria-label=Workflow]").value')).toBe('image-pipeline');
    await session.execute('window.__PIXELFLOW__.drop(arguments[0]); return true', [photos]);
    // Thumbnails appear at once, before the run ends.
    await session.waitFor('thumbnails', 'return document.querySelectorAll("[data-run] .item").length === 4');
    await session.waitFor('the run to finish', 'const r = document.querySelector("[data-run]"); return r && r.dataset.phase !== "preparing" && r.dataset.phase !== "running" && r.dataset.phase', 120_000);
    expect(await session.execute('return document.querySelector("[data-run]").dataset.phase')).toBe('finished');
    // A real image loaded through the asset protocol (scope and CSP allow it).
    await session.waitFor('a thumbnail to load', 'return [...document.querySelectorAll("[data-run] img")].some((i) => i.complete && i.naturalWidth > 0)', 15_000);
    await shot('run');
    expect(await session.execute<string>('return document.querySelector("[data-testid=count]").textContent')).toContain('4 / 4 images');
    const failures = await session.execute<string>('return document.querySelector(".failures")?.textContent ?? ""');
    expect(failures).toContain('broken.jpg');
    expect(failures).toMatch(/Pixelflow\.\w+/);

    const out = readdirSync(join(data, 'pixelflow', 'output'));
    for (const stem of ['sunset', 'forest', 'ocean']) {
      expect(out.some((f) => f.startsWith(`${stem}-`) && f.includes(".min.")), `${stem} optimized, in ${out.join(", ")}`).toBe(true);
    }
    expect(out.some((f) => f.startsWith('broken'))).toBe(false);
  });

  it('opens the run in the history: status, graph, events, before/after', async () => {
    expect(await click('[data-run] button:last-of-type')).toBe(true);
    await session.waitFor('the execution', 'return document.querySelector("[data-testid=detail-status]")?.textContent');
    expect(await session.execute<string>('return document.querySelector("[data-testid=detail-status]").textContent')).toBe('SUCCEEDED');
    await session.waitFor('the graph', 'return document.querySelector("g.node[data-state=PixelflowBatch]")');
    expect(await session.execute('return document.querySelector("g.node[data-state=PixelflowBatch]").dataset.status')).toBe('succeeded');
    expect(await session.execute('return document.querySelector("g.node[data-state=OptimizeImage]").dataset.status')).toBe('succeeded');
    await shot('history');
    await click('button[role=tab]:nth-of-type(2)');
    const events = await session.waitFor<number>('the events', 'return document.querySelectorAll("table.timeline tbody tr").length');
    expect(events).toBeGreaterThan(20);
    await click('button[role=tab]:nth-of-type(4)');
    await session.waitFor('the before/after viewer', 'return document.querySelector("[data-testid=before-after]")');
    await session.waitFor('both images', 'const i = [...document.querySelectorAll("[data-testid=before-after] img")]; return i.length === 2 && i.every((x) => x.complete && x.naturalWidth > 0)', 15_000);
    expect(await session.execute<string>('return document.querySelector("[data-testid=saved]")?.textContent ?? ""')).toMatch(/% (smaller|larger)/);
    await shot('history-images');
  });

  it('saves a workflow that waits for a person, and answers its tasks in the review queue', async () => {
    const definition = JSON.stringify(
      { StartAt: 'Check', States: { Check: { Type: 'Task', Resource: 'pixelflow:review.waitForTaskToken', Parameters: { 'path.$': '$.path' }, End: true } } },
      null,
      2,
    );
    await click('nav [data-view=workflows]');
    await session.waitFor('the editor', 'return document.querySelector("textarea[aria-label^=Definition]")');
    const setValue = 'const e = document.querySelector(arguments[0]); e.value = arguments[1]; e.dispatchEvent(new Event("input", {bubbles: true})); return true';
    await session.execute(setValue, 'textarea[aria-label^=Definition]', definition);
    await session.execute(setValue, 'input[aria-label="Name to save as"]', 'review-flow');
    await session.waitFor('validation', 'return document.querySelector("[data-testid=diagnostics] .ok")');
    expect(await click('button.primary')).toBe(true);
    await session.waitFor('the saved workflow', 'return document.body.textContent.includes("Saved review-flow")');

    await click('nav [data-view=run]');
    const picked = await session.execute<boolean>(
      'const s = document.querySelector("select[aria-label=Workflow]"); const o = [...s.options].find((x) => x.textContent.startsWith("review-flow")); if (!o) return false; s.value = o.value; s.dispatchEvent(new Event("change", {bubbles: true})); return true',
    );
    expect(picked).toBe(true);
    await session.execute('window.__PIXELFLOW__.drop(arguments[0]); return true', [join(data, 'to-review')]);
    const started = await session.waitFor<string>('the review run', 'const r = document.querySelectorAll("[data-run]"); return r.length === 2 && r[0].querySelector("h2").textContent');
    expect(started).toMatch(/^review-flow/);
    await click('nav [data-view=review]');
    // Both images wait at once (2 jobs); with one job they would come one after the other,
    // so the test answers the first task it sees, then the next one.
    await session.waitFor('a task', 'return document.querySelectorAll("[data-token]").length >= 1', 90_000);
    await session.waitFor('its preview', 'return [...document.querySelectorAll("[data-token] img")].some((i) => i.complete && i.naturalWidth > 0)', 15_000);
    await shot('review');
    const first = await session.execute<string>('return document.querySelector("[data-token]").dataset.token');
    expect(await click('[data-token] button.primary')).toBe(true);
    await session.waitFor('the next task', 'const t = document.querySelector("[data-token]"); return t && t.dataset.token !== arguments[0]', 90_000, first);
    expect(await click('[data-token] button.danger')).toBe(true);
    await session.waitFor('an empty queue', 'return document.body.textContent.includes("Nothing to review")');
    await click('nav [data-view=run]');
    await session.waitFor('the review run to finish', 'const r = document.querySelector("[data-run]"); return r && r.dataset.phase === "finished"', 60_000);
    const failures = await session.execute<string>('return document.querySelector("[data-run] .failures")?.textContent ?? ""');
    expect(failures).toContain('Pixelflow.Rejected');
    expect(await session.execute<string>('return document.querySelector("[data-run] [data-testid=count]").textContent')).toContain('2 / 2 images');
  });

  it('shows the other views with real data', async () => {
    await click('nav [data-view=watch]');
    await session.waitFor('the watch view', 'return document.body.textContent.includes("No watch rules")');
    await shot('watch');
    await click('nav [data-view=workflows]');
    await session.waitFor('the workflow picker', 'return document.querySelector("select[aria-label=\'Open workflow\'] option[value=image-pipeline]")');
    await session.execute('const s = document.querySelector("select[aria-label=\'Open workflow\']"); s.value = "image-pipeline"; s.dispatchEvent(new Event("change", {bubbles: true})); return true');
    await session.waitFor('the workflow view', 'return document.querySelector("[data-testid=diagnostics] .ok") && document.querySelector("g.node[data-state=ValidateImage]")');
    await shot('workflows');
    await click('nav [data-view=settings]');
    await session.waitFor('the machine checks', 'return document.body.textContent.includes("schema version")');
    await shot('settings');
  });

  it('exports the outputs to S3 (moto) with a cloud profile: preview, progress, results', async () => {
    const setValue = 'const e = document.querySelector(arguments[0]); e.value = arguments[1]; e.dispatchEvent(new Event(e.tagName === "SELECT" ? "change" : "input", {bubbles: true})); return true';
    await click('nav [data-view=settings]');
    await session.waitFor('the profiles', 'return document.querySelector("[data-testid=profiles]")');
    // CI has no keychain: the app says so, and the profile is saved without a secret.
    expect(await click('[data-testid=profiles] button')).toBe(true);
    await session.waitFor('the profile form', 'return document.querySelector("form[aria-label=\'Cloud profile\'] input[name=name]")');
    for (const [field, value] of [['name', 'moto'], ['bucket', BUCKET], ['prefix', 'e2e/{variant}'], ['endpoint', s3], ['region', 'us-east-1'], ['accessKeyId', 'testing']]) {
      expect(await session.execute(setValue, `form[aria-label='Cloud profile'] input[name=${field}]`, value)).toBe(true);
    }
    await session.execute(setValue, "form[aria-label='Cloud profile'] input[type=password]", 'not-a-real-secret');
    expect(await click("form[aria-label='Cloud profile'] button.primary")).toBe(true);
    await session.waitFor('the saved profile', 'return document.querySelector("tr[data-profile=moto]")');
    const secretCell = await session.execute<string>('return document.querySelector("tr[data-profile=moto]").textContent');
    expect(secretCell).toMatch(/keychain unavailable|in the keychain/);
    await shot('settings-profiles');

    await click('nav [data-view=export]');
    await session.waitFor('the executions', 'return document.querySelectorAll("tr[data-export-row]").length >= 1');
    // The dropped batch: the one image-pipeline execution.
    const batch = await session.execute<string>('const r = [...document.querySelectorAll("tr[data-export-row]")].find((x) => x.textContent.includes("image-pipeline")); if (!r) return ""; r.click(); return r.dataset.exportRow');
    expect(batch).not.toBe('');
    await session.waitFor('the destination', 'return document.querySelector("[data-testid=destination]")?.textContent.includes("s3://pixelflow-e2e/e2e/{variant}")');
    expect(await click('.side .actions button:nth-of-type(1)')).toBe(true);
    const planned = await session.waitFor<number>('the preview', 'return document.querySelectorAll("[data-testid=preview] tr[data-key]").length');
    expect(planned).toBeGreaterThanOrEqual(3);
    expect(await session.execute<string>('return document.querySelector("[data-testid=export-summary]").textContent')).toBe(`${planned} to send`);
    expect(await click('.side .actions button.primary')).toBe(true);
    await session.waitFor('the export to finish', 'const e = document.querySelector("[data-export]"); return e && (e.dataset.phase === "finished" || e.dataset.phase === "failed") && e.dataset.phase', 60_000);
    const summary = await session.execute<string>('return document.querySelector("[data-testid=export-summary]").textContent + " | " + (document.querySelector("[data-export] .error-box")?.textContent ?? "")');
    expect(summary).toBe(`${planned} uploaded | `);
    expect(await session.execute('return document.querySelector("[data-export]").dataset.phase')).toBe('finished');
    await shot('export');
    // The objects are in the bucket, under the profile's prefix.
    const listing = await (await fetch(`${s3}/${BUCKET}?list-type=2&prefix=e2e/`)).text();
    const keys = [...listing.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]);
    expect(keys.length).toBe(planned);
    const shown = await session.execute<string[]>('return [...document.querySelectorAll("[data-testid=results] tr[data-key]")].map((r) => r.dataset.key)');
    expect([...shown].sort()).toEqual([...keys].sort());
    // Again: nothing changed, nothing is sent.
    expect(await click('.side .actions button.primary')).toBe(true);
    await session.waitFor('the second export', 'return document.querySelector("[data-testid=export-summary]")?.textContent.includes("unchanged")', 60_000);
    expect(await session.execute<string>('return document.querySelector("[data-testid=export-summary]").textContent')).toBe(`0 uploaded, ${planned} unchanged`);
    await session.execute('document.documentElement.dataset.theme = "dark"; return true');
    await shot('export-dark');
    await session.execute('document.documentElement.dataset.theme = "light"; return true');
  });

  it('downloads a workflow from the Workflow view (WebKit)', async () => {
    await click('nav [data-view=workflows]');
    await session.waitFor('the workflow picker', 'return document.querySelector("select[aria-label=\'Open workflow\'] option[value=thumbnail]")');
    await session.execute('const s = document.querySelector("select[aria-label=\'Open workflow\']"); s.value = "thumbnail"; s.dispatchEvent(new Event("change", {bubbles: true})); return true');
    await session.waitFor('the definition', 'return document.querySelector("[data-testid=diagnostics] .ok")');
    expect(await session.execute('const b = [...document.querySelectorAll("button")].find((x) => x.textContent.trim() === "Export"); if (!b) return false; b.click(); return true')).toBe(true);
    const downloads = join(data, 'downloads');
    for (let i = 0; i < 100 && !readdirSync(downloads).some((f) => f.endsWith('.asl.json')); i++) await new Promise((r) => setTimeout(r, 100));
    const saved = readdirSync(downloads).filter((f) => f.endsWith('.asl.json'));
    // Named after the editor's name field (a bundled workflow opens as its copy).
    expect(saved, `in ${downloads}: ${readdirSync(downloads).join(', ')}`).toEqual(['thumbnail-copy.asl.json']);
    expect(JSON.parse(readFileSync(join(downloads, saved[0]), 'utf8')).StartAt).toBeTruthy();
  });

  it('refuses commands the capability does not grant', async () => {
    const refused = await session.execute<string>(
      'return window.__TAURI_INTERNALS__.invoke("plugin:dialog|save", {options: {}}).then(() => "allowed", (e) => "refused: " + String(e))',
    );
    expect(refused).toMatch(/^refused: .*not allowed/i);
  });
});
