// The built UI in headless Chromium (Debian's), with the shell replaced by Tauri's IPC mock
// (e2e/mock-backend.ts): every view, driven as a person would, screenshots in test-output/.
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { build } from 'vite';
import { chromium, type Browser, type Page } from 'playwright-core';
import { serveDist } from './serve';

const ui = join(dirname(fileURLToPath(import.meta.url)), '..');
const shots = join(ui, 'test-output', 'browser');
const CHROMIUM = process.env.PIXELFLOW_CHROMIUM ?? '/usr/bin/chromium';

let browser: Browser;
let server: { url: string; close: () => Promise<void> };
let mock = '';
let page: Page;
let pageErrors: string[] = [];

async function buildMock(): Promise<string> {
  const out = await build({
    configFile: false,
    logLevel: 'silent',
    build: { write: false, minify: false, lib: { entry: join(ui, 'e2e/mock-backend.ts'), formats: ['iife'], name: 'PixelflowMock' } },
  });
  const outputs = (Array.isArray(out) ? out : [out]) as { output: { type: string; code?: string }[] }[];
  const chunk = outputs.flatMap((o) => o.output).find((c) => c.type === 'chunk');
  if (!chunk?.code) throw new Error('the IPC mock did not build');
  return chunk.code;
}

const calls = () => page.evaluate(() => (window as unknown as { __MOCK_CALLS__: { cmd: string; args: Record<string, unknown> }[] }).__MOCK_CALLS__);
const view = (id: string) => page.click(`nav [data-view="${id}"]`);

beforeAll(async () => {
  mkdirSync(shots, { recursive: true });
  mock = await buildMock();
  server = await serveDist(join(ui, 'dist'));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

beforeEach(async () => {
  pageErrors = [];
  page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  page.setDefaultTimeout(8000);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  await page.addInitScript({ content: mock });
  await page.goto(server.url);
  await page.waitForSelector('nav [data-view="run"]');
  await page.waitForFunction(() => document.querySelectorAll('select[aria-label="Workflow"] option').length > 0);
});

describe('the UI with a mocked shell', () => {
  it('runs dropped images: thumbnails at once, progress, failures with their reason', async () => {
    expect(await page.inputValue('select[aria-label="Workflow"]')).toBe('image-pipeline');
    await page.evaluate(() => (window as unknown as { __PIXELFLOW__: { drop: (p: string[]) => Promise<unknown> } }).__PIXELFLOW__.drop(['/photos']));
    await page.waitForSelector('[data-run="run-1"] .item >> nth=2');
    await page.waitForSelector('[data-run="run-1"][data-phase="finished"]');
    const run = page.locator('[data-run="run-1"]');
    expect(await run.locator('[data-testid="count"]').textContent()).toContain('3 / 3 images');
    expect(await run.locator('.failures').textContent()).toContain('Pixelflow.InvalidImage: the file is not an image');
    expect(await run.locator('.item.failed').count()).toBe(1);
    expect(await run.textContent()).toContain('images/s');
    const start = (await calls()).find((c) => c.cmd === 'start_run');
    expect(start?.args).toMatchObject({ paths: ['/photos'], workflow: 'image-pipeline', onProgress: expect.stringMatching(/^__CHANNEL__:\d+$/) });
    await page.screenshot({ path: join(shots, 'run.png') });
    // The run's graph, coloured by its execution's events.
    await run.locator('button', { hasText: 'Graph' }).click();
    await page.waitForSelector('[data-testid="live-graph"] g.node[data-state="OptimizeImage"][data-status="succeeded"]');
    // The run links to its execution.
    await run.locator('button', { hasText: 'Open in history' }).click();
    await page.waitForSelector('[data-testid="detail-status"]');
    expect(pageErrors).toEqual([]);
  });

  it('reports a drop that cannot run', async () => {
    await page.evaluate(() => {
      const w = window as unknown as { __TAURI_INTERNALS__: { invoke: (c: string, a: unknown) => Promise<unknown> } };
      const real = w.__TAURI_INTERNALS__.invoke;
      w.__TAURI_INTERNALS__.invoke = (cmd, args) =>
        cmd === 'start_run' ? Promise.reject({ code: 'invalid', message: 'no images found in what was dropped', diagnostics: [] }) : real(cmd, args);
    });
    await page.evaluate(() => (window as unknown as { __PIXELFLOW__: { drop: (p: string[]) => Promise<unknown> } }).__PIXELFLOW__.drop(['/empty']));
    await page.waitForSelector('.toast.fail');
    expect(await page.textContent('.toast.fail')).toContain('no images found');
  });

  it('filters the history and shows an execution: graph, events, images', async () => {
    await view('history');
    await page.waitForSelector('tr[data-id]');
    expect(await page.locator('tr[data-id]').count()).toBe(3);
    await page.selectOption('select[aria-label="Status"]', 'FAILED');
    await page.waitForFunction(() => document.querySelectorAll('tr[data-id]').length === 1);
    expect(await page.textContent('tr[data-id]')).toContain('Pixelflow.InvalidImage');
    await page.selectOption('select[aria-label="Status"]', '');
    await page.fill('input[aria-label="Search"]', 'thumbnail');
    await page.waitForFunction(() => document.querySelectorAll('tr[data-id]').length === 1);
    await page.fill('input[aria-label="Search"]', '');
    await page.waitForFunction(() => document.querySelectorAll('tr[data-id]').length === 3);
    // Keyboard: down to the first row, Enter opens it.
    await page.focus('[role="listbox"][aria-label="Executions"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-testid="detail-status"]');
    expect(await page.textContent('[data-testid="detail-status"]')).toBe('SUCCEEDED');
    await page.waitForSelector('g.node[data-state="OptimizeImage"]');
    expect(await page.getAttribute('g.node[data-state="ValidateImage"]', 'data-status')).toBe('succeeded');
    expect(await page.getAttribute('g.node[data-state="ResizeImage"]', 'data-status')).toBe('succeeded');
    expect(await page.getAttribute('g.node[data-state="NotifyError"]', 'data-status')).toBe('idle');
    await page.screenshot({ path: join(shots, 'history-graph.png') });
    await page.click('button[role="tab"]:has-text("Events")');
    expect(await page.locator('table.timeline tbody tr').count()).toBe(18);
    await page.click('button[role="tab"]:has-text("Images")');
    await page.waitForSelector('[data-testid="before-after"]');
    expect(await page.textContent('[data-testid="saved"]')).toBe('75.0% smaller');
    await page.click('[data-testid="before-after"] button:has-text("Slider")');
    await page.waitForSelector('input[aria-label="Before/after split"]');
    await page.screenshot({ path: join(shots, 'history-images.png') });
    // A long timeline comes in pages (the mock's page for this one: 10 events), the rest on demand.
    await page.click('tr[data-id="3333cccc-0000-4000-8000-000000000003"]');
    await page.waitForSelector('[data-testid="detail-status"]');
    await page.click('button[role="tab"]:has-text("Events")');
    await page.waitForSelector('[data-testid="events-shown"]');
    expect(await page.locator('table.timeline tbody tr').count()).toBe(10);
    expect(await page.textContent('[data-testid="events-shown"]')).toBe('10 of 18 events');
    await page.click('button:has-text("Load more")');
    await page.waitForFunction(() => document.querySelectorAll('table.timeline tbody tr').length === 18);
    expect(await page.locator('button:has-text("Load more")').count()).toBe(0);
    expect((await calls()).find((c) => c.cmd === 'execution_events')?.args).toMatchObject({ id: '3333cccc-0000-4000-8000-000000000003', offset: 10 });
    // Its input, 3.3 MB of JSON, comes as its start and its size.
    await page.click('button[role="tab"]:has-text("Input / output")');
    await page.waitForSelector('[data-testid="input-cut"]');
    expect(await page.textContent('[data-testid="input-cut"]')).toContain('3.3 MiB of JSON');
    expect(await page.textContent('.io pre')).toContain('"path": "/photos/IMG_00000.png"');
    expect(await page.locator('[data-testid="output-cut"]').count()).toBe(0);
    expect(pageErrors).toEqual([]);
  });

  it('approves one review task and rejects the rest in bulk', async () => {
    await view('review');
    await page.waitForSelector('[data-token="tok-2"]');
    await page.screenshot({ path: join(shots, 'review.png') });
    await page.click('[data-token="tok-1"] button:has-text("Approve")');
    await page.waitForFunction(() => !document.querySelector('[data-token="tok-1"]'));
    await page.check('[data-token="tok-2"] input[type="checkbox"]');
    await page.fill('input[aria-label="Rejection reason"]', 'blurry');
    await page.click('button:has-text("Reject selected")');
    await page.waitForSelector('text=Nothing to review');
    const answers = (await calls()).filter((c) => c.cmd === 'answer_tasks').map((c) => c.args);
    expect(answers).toEqual([
      { tokens: ['tok-1'], approve: true, output: null, cause: null },
      { tokens: ['tok-2'], approve: false, output: null, cause: 'blurry' },
    ]);
  });

  it('lists, pauses, adds and removes watch folders', async () => {
    await view('watch');
    await page.waitForSelector('tr[data-rule="1"]');
    expect(await page.textContent('tr[data-rule="1"]')).toContain('active');
    expect(await page.textContent('tr[data-rule="1"]')).toContain('17');
    await page.screenshot({ path: join(shots, 'watch.png') });
    await page.click('tr[data-rule="1"] button:has-text("Pause")');
    await page.waitForSelector('tr[data-rule="1"] .badge.paused');
    await page.click('button:has-text("Add folder")');
    await page.click('form.add button:has-text("Browse…") >> nth=0');
    await page.waitForFunction(() => (document.querySelector('form.add input') as HTMLInputElement).value === '/picked/folder');
    await page.click('form.add button[type="submit"]');
    await page.waitForSelector('tr[data-rule="2"]');
    await page.click('tr[data-rule="2"] button:has-text("Remove")');
    await page.click('tr[data-rule="2"] button:has-text("Confirm remove")');
    await page.waitForFunction(() => !document.querySelector('tr[data-rule="2"]'));
    const cmds = (await calls()).map((c) => c.cmd);
    expect(cmds).toEqual(expect.arrayContaining(['watch_set_paused', 'watch_add', 'watch_remove', 'plugin:dialog|open']));
    expect((await calls()).find((c) => c.cmd === 'watch_add')?.args).toMatchObject({ rule: { folder: '/picked/folder', recursive: true } });
  });

  it('edits a workflow: live graph, validation errors, parameter fields, save', async () => {
    await view('workflows');
    await page.waitForSelector('g.node[data-state="ValidateImage"]');
    await page.waitForSelector('[data-testid="diagnostics"] .ok');
    await page.click('g.node[data-state="OptimizeImage"]');
    const quality = page.locator('.form label', { hasText: 'quality' }).locator('input');
    expect(await quality.inputValue()).toBe('80');
    await quality.fill('65');
    await quality.press('Enter');
    await quality.blur();
    await page.waitForFunction(() => (document.querySelector('textarea[aria-label="Definition (JSON)"]') as HTMLTextAreaElement).value.includes('"quality": 65'));
    await page.screenshot({ path: join(shots, 'workflow.png') });
    const editor = page.locator('textarea[aria-label="Definition (JSON)"]');
    const text = await editor.inputValue();
    await editor.fill(text.replace('"StartAt": "ValidateImage"', '"StartAt": "Nowhere"'));
    await page.waitForSelector('[data-testid="diagnostics"] .diag');
    expect(await page.textContent('[data-testid="diagnostics"]')).toContain("/StartAt StartAt 'Nowhere' names no state");
    await editor.fill('{ not json');
    await page.waitForSelector('[data-testid="diagnostics"] .diag:has-text("JSON")');
    await editor.fill(text);
    await page.waitForSelector('[data-testid="diagnostics"] .ok');
    await page.fill('input[aria-label="Name to save as"]', 'my-pipeline');
    await page.click('button:has-text("Save")');
    await page.waitForSelector('.toast.ok:has-text("Saved my-pipeline")');
    expect(pageErrors).toEqual([]);
  });

  it('exports an execution from the history: preview, progress, each object’s result', async () => {
    await view('history');
    await page.click('tr[data-id="1111aaaa-0000-4000-8000-000000000001"]');
    await page.click('button:has-text("Export…")');
    await page.waitForSelector('h1:has-text("Export")');
    await page.waitForSelector('tr[data-export-row]');
    expect(await page.isChecked('tr[data-export-row="1111aaaa-0000-4000-8000-000000000001"] input[type=checkbox]')).toBe(true);
    // Only SUCCEEDED executions are offered.
    expect((await calls()).filter((c) => c.cmd === 'list_executions').at(-1)?.args).toMatchObject({ filter: { status: 'SUCCEEDED' } });
    await page.click('tr[data-export-row="3333cccc-0000-4000-8000-000000000003"]');
    expect(await page.textContent('[data-testid="selected-count"]')).toBe('2 executions selected');
    expect(await page.textContent('[data-testid="destination"]')).toBe('s3://photos/web/{variant} at http://127.0.0.1:9000');
    expect(await page.textContent('[data-testid="credentials"]')).toContain('~/.aws (profile default)');
    await page.click('button:has-text("Preview")');
    await page.waitForSelector('[data-testid="preview"] tr[data-key]');
    expect(await page.locator('[data-testid="preview"] tr[data-key]').count()).toBe(4);
    expect(await page.textContent('[data-testid="export-summary"]')).toBe('4 to send');
    expect(await page.textContent('[data-testid="preview"]')).toContain('would upload');
    await page.screenshot({ path: join(shots, 'export-preview.png') });
    await page.click('button.primary:has-text("Export")');
    await page.waitForSelector('[data-export="export-1"][data-phase="finished"]');
    expect(await page.textContent('[data-testid="export-count"]')).toContain('4 / 4 files');
    expect(await page.textContent('[data-testid="export-summary"]')).toBe('3 uploaded, 1 unchanged');
    expect(await page.locator('[data-testid="results"] .badge.ok').count()).toBe(3);
    const start = (await calls()).find((c) => c.cmd === 'start_export');
    expect(start?.args).toMatchObject({ request: { executions: ['1111aaaa-0000-4000-8000-000000000001', '3333cccc-0000-4000-8000-000000000003'], profile: 'photos-s3', dryRun: false, overwrite: 'ifChanged' }, onProgress: expect.stringMatching(/^__CHANNEL__:\d+$/) });
    await page.waitForSelector('.toast.ok:has-text("3 uploaded")');
    await page.screenshot({ path: join(shots, 'export-light.png') });
    await page.evaluate(() => (document.documentElement.dataset.theme = 'dark'));
    await page.screenshot({ path: join(shots, 'export-dark.png') });
    expect(pageErrors).toEqual([]);
  });

  it('deletes old history only once confirmed', async () => {
    await view('settings');
    const section = page.locator('[data-testid="history-retention"]');
    await section.locator('input[aria-label="Days to keep"]').fill('30');
    await section.locator('button:has-text("Delete…")').click();
    expect((await calls()).some((c) => c.cmd === 'prune_history')).toBe(false);
    await section.locator('button:has-text("Delete them for good")').click();
    await page.waitForSelector('.toast.ok:has-text("Deleted 12 executions older than 30 days")');
    expect((await calls()).find((c) => c.cmd === 'prune_history')?.args).toEqual({ days: 30 });
    expect(pageErrors).toEqual([]);
  });

  it('sets the GPU and adds, checks and removes a cloud profile without a keychain', async () => {
    await view('settings');
    await page.waitForSelector('[data-testid="adapter"]');
    expect(await page.textContent('[data-testid="adapter"]')).toContain('llvmpipe');
    expect(await page.isChecked('input[name="device"][value="auto"]')).toBe(true);
    await page.check('input[name="device"][value="cpu"]');
    await page.waitForSelector('.toast.ok:has-text("CPU")');
    expect((await calls()).find((c) => c.cmd === 'set_settings')?.args).toEqual({ settings: { device: 'cpu' } });
    await page.waitForSelector('tr[data-profile="photos-s3"]');
    expect(await page.textContent('[data-testid="keychain-note"]')).toContain('environment and ~/.aws');
    await page.click('button:has-text("Add profile")');
    const form = page.locator('form[aria-label="Cloud profile"]');
    await form.locator('input[name="name"]').fill('bad name/');
    await form.locator('input[name="bucket"]').fill('No_Such');
    await form.locator('button:has-text("Save profile")').click();
    expect(await form.locator('.fault').count()).toBe(2);
    expect((await calls()).some((c) => c.cmd === 'save_profile')).toBe(false);
    await form.locator('input[name="name"]').fill('archive');
    await form.locator('select[name="service"]').selectOption('azure');
    await form.locator('input[name="bucket"]').fill('archive');
    await form.locator('input[name="account"]').fill('acme');
    await form.locator('select[name="azureSecret"]').selectOption('sas');
    await form.locator('input[type=password]').fill('sv=2024&sig=SECRET');
    expect(await form.textContent()).toContain('az://archive');
    await page.screenshot({ path: join(shots, 'settings-profile-form.png') });
    await form.locator('button:has-text("Save profile")').click();
    await page.waitForSelector('tr[data-profile="archive"]');
    const saved = (await calls()).find((c) => c.cmd === 'save_profile');
    // The secret travels apart from the settings, which hold none.
    expect(saved?.args).toMatchObject({ profile: { name: 'archive', service: 'azure', bucket: 'archive', account: 'acme', azureSecret: 'sas', region: null, accessKeyId: null }, secret: 'sv=2024&sig=SECRET' });
    expect(JSON.stringify((saved?.args as { profile: unknown }).profile)).not.toContain('SECRET');
    await page.waitForSelector('.toast:has-text("saved without a secret")');
    expect(await page.textContent('tr[data-profile="archive"]')).toContain('keychain unavailable');
    await page.screenshot({ path: join(shots, 'settings-light.png') });
    await page.evaluate(() => (document.documentElement.dataset.theme = 'dark'));
    await page.screenshot({ path: join(shots, 'settings-profiles-dark.png') });
    await page.click('tr[data-profile="archive"] button:has-text("Remove")');
    await page.waitForFunction(() => !document.querySelector('tr[data-profile="archive"]'));
    expect(pageErrors).toEqual([]);
  });

  it('switches theme and shows the machine checks; keyboard switches views', async () => {
    await page.keyboard.press('Control+7');
    await page.waitForSelector('h1:has-text("Settings")');
    await page.check('input[name="theme"][value="dark"]');
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    await page.waitForSelector('text=schema version');
    await page.screenshot({ path: join(shots, 'settings-dark.png') });
    await page.keyboard.press('Control+2');
    await page.waitForSelector('h1:has-text("History")');
    await page.keyboard.press('?');
    await page.waitForSelector('[role="dialog"][aria-label="Keyboard shortcuts"]');
    await page.keyboard.press('Escape');
    expect(await page.locator('[role="dialog"]').count()).toBe(0);
  });
});
