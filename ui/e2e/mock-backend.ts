// A stand-in for the Rust shell in the browser tests: Tauri's own IPC mock (mockIPC) answering
// every command the UI calls with small, consistent fake data. Built to an IIFE and injected
// before the app's scripts; each call is recorded in window.__MOCK_CALLS__.
import { mockConvertFileSrc, mockIPC, mockWindows } from '@tauri-apps/api/mocks';
import pipeline from '../../workflows/image-pipeline.asl.json?raw';
import thumbnail from '../../workflows/thumbnail.asl.json?raw';

type Args = Record<string, unknown>;
const calls: { cmd: string; args: Args }[] = [];
(window as unknown as { __MOCK_CALLS__: typeof calls }).__MOCK_CALLS__ = calls;

const now = Date.now();
const exec = (id: string, status: string, error: string | null, startedAtMs: number) => ({
  id, name: id, workflowName: 'image-pipeline', status, startedAtMs, stoppedAtMs: startedAtMs + 2300, error,
});
const executions = [
  exec('1111aaaa-0000-4000-8000-000000000001', 'SUCCEEDED', null, now - 60_000),
  exec('2222bbbb-0000-4000-8000-000000000002', 'FAILED', 'Pixelflow.InvalidImage', now - 120_000),
  { ...exec('3333cccc-0000-4000-8000-000000000003', 'SUCCEEDED', null, now - 180_000), workflowName: 'thumbnail' },
];

let seq = 0;
const ev = (kind: string, state: string | null, key: string, detail: Args = {}) => ({ seq: ++seq, timestampMs: now - 60_000 + seq * 40, kind, state, key, detail });
const events = [
  ev('ExecutionStarted', null, ''),
  ev('TaskStateEntered', 'ValidateImage', '/0:ValidateImage'),
  ev('TaskScheduled', 'ValidateImage', '/0:ValidateImage'),
  ev('TaskSucceeded', 'ValidateImage', '/0:ValidateImage'),
  ev('TaskStateExited', 'ValidateImage', '/0:ValidateImage'),
  ev('ChoiceStateEntered', 'ImageValid', '/1:ImageValid'),
  ev('ChoiceStateExited', 'ImageValid', '/1:ImageValid'),
  ev('ParallelStateEntered', 'ProcessImage', '/2:ProcessImage'),
  ev('TaskStateEntered', 'ResizeImage', '/2:ProcessImage#0/b0/0:ResizeImage'),
  ev('TaskStateExited', 'ResizeImage', '/2:ProcessImage#0/b0/0:ResizeImage'),
  ev('TaskStateEntered', 'ApplyFilters', '/2:ProcessImage#0/b1/0:ApplyFilters'),
  ev('TaskStateExited', 'ApplyFilters', '/2:ProcessImage#0/b1/0:ApplyFilters'),
  ev('ParallelStateExited', 'ProcessImage', '/2:ProcessImage'),
  ev('TaskStateEntered', 'OptimizeImage', '/3:OptimizeImage'),
  ev('TaskStateExited', 'OptimizeImage', '/3:OptimizeImage'),
  ev('TaskStateEntered', 'NotifySuccess', '/4:NotifySuccess'),
  ev('TaskStateExited', 'NotifySuccess', '/4:NotifySuccess'),
  ev('ExecutionSucceeded', null, ''),
];

let tasks = [
  { token: 'tok-1', executionId: '4444dddd-0000-4000-8000-000000000004', key: '/1:Review', state: 'Review', payload: { path: '/photos/cat.jpg' }, createdAtMs: now - 5000 },
  { token: 'tok-2', executionId: '5555eeee-0000-4000-8000-000000000005', key: '/1:Review', state: 'Review', payload: { path: '/photos/dog.jpg' }, createdAtMs: now - 4000 },
];

let nextRule = 2;
let rules = [
  { id: 1, folder: '/home/me/Drop', recursive: true, include: [], exclude: [], workflow: 'thumbnail', output: '/home/me/Thumbs', concurrency: 2, onSuccess: 'leave', onFailure: 'move', paused: false, lastError: null, createdAtMs: now },
];

const definitions: Record<string, string> = { 'image-pipeline': pipeline, thumbnail };

let device = 'auto';
// The mock has no keychain, as CI has none: profiles are saved without their secret.
const NO_KEYCHAIN = 'no keychain is available (no Secret Service): secrets are not saved; exports use the environment and ~/.aws credentials';
type Profile = Record<string, unknown> & { name: string; service: string; bucket: string; prefix: string; endpoint: string | null };
const destinationOf = (p: Profile) => `${p.service === 's3' ? 's3' : 'az'}://${p.bucket}${p.prefix ? `/${p.prefix.replace(/^\/+|\/+$/g, '')}` : ''}`;
const entryOf = (p: Profile) => ({ profile: p, destination: destinationOf(p), hasSecret: null, keychainNote: NO_KEYCHAIN });
let profiles: Profile[] = [
  { name: 'photos-s3', service: 's3', bucket: 'photos', prefix: 'web/{variant}', endpoint: 'http://127.0.0.1:9000', region: 'us-east-1', accessKeyId: 'AKIDEXAMPLE', awsProfile: null, account: null, azureSecret: null },
];
const exportObjects = (ids: string[], dryRun: boolean) =>
  ids.flatMap((id, i) => [
    { source: `/data/output/a${i}.min.jpg`, key: `web/optimized/a${i}.min.jpg`, executionId: id, action: dryRun ? null : 'uploaded', etag: dryRun ? null : '"e1"', error: null },
    { source: `/data/output/a${i}.webp`, key: `web/filtered/a${i}.webp`, executionId: id, action: dryRun ? null : i === 0 ? 'unchanged' : 'uploaded', etag: null, error: null },
  ]);

function validate(text: string) {
  let def: Record<string, unknown>;
  try {
    def = JSON.parse(text);
  } catch (e) {
    return [{ pointer: '', message: `not JSON: ${(e as Error).message}` }];
  }
  const states = (def.States ?? {}) as Record<string, unknown>;
  return typeof def.StartAt === 'string' && def.StartAt in states ? [] : [{ pointer: '/StartAt', message: `StartAt '${String(def.StartAt)}' names no state` }];
}

function emit(channel: { id: number }, messages: unknown[]) {
  const internals = (window as unknown as { __TAURI_INTERNALS__: { runCallback: (id: number, data: unknown) => void } }).__TAURI_INTERNALS__;
  messages.forEach((message, index) => setTimeout(() => internals.runCallback(channel.id, { index, message }), 150 * (index + 1)));
}

mockWindows('main');
mockConvertFileSrc('linux');
mockIPC((cmd, raw) => {
  const args = (raw ?? {}) as Args;
  // A Channel serialises as `__CHANNEL__:<id>`, as it does over the real IPC.
  calls.push({ cmd, args: JSON.parse(JSON.stringify(args)) });
  switch (cmd) {
    case 'app_info':
      return { version: '0.1.0', dataDir: '/data', outputDir: '/data/output', watchDir: '/data/watch', defaultWorkflow: 'image-pipeline', jobs: 2, watchServiceNote: null };
    case 'list_workflows':
      return Object.entries(definitions).map(([name, text]) => ({ name, id: name, bundled: true, text }));
    case 'validate_workflow':
      return validate(String(args.text));
    case 'save_workflow':
      definitions[String(args.name)] = String(args.text);
      return { name: args.name, id: `/data/workflows/${args.name}.asl.json`, bundled: false, text: args.text };
    case 'start_run': {
      const inputs = [
        { path: '/photos/a.jpg', bytes: 120_000 },
        { path: '/photos/b.png', bytes: 80_000 },
        { path: '/photos/broken.jpg', bytes: 10 },
      ];
      emit(args.onProgress as { id: number }, [
        { kind: 'started', toRun: 3, cached: 0 },
        { kind: 'progress', executionId: executions[0].id, done: 2, failed: 1, toRun: 3, items: [{ path: '/photos/a.jpg', ok: true }, { path: '/photos/broken.jpg', ok: false }] },
        {
          kind: 'finished',
          report: {
            executionId: executions[0].id, bytesIn: 200_010, bytesOut: 90_000, elapsedMs: 1500, interrupted: false,
            items: [
              { path: '/photos/a.jpg', bytes: 120_000, status: 'processed', output: {} },
              { path: '/photos/b.png', bytes: 80_000, status: 'processed', output: {} },
              { path: '/photos/broken.jpg', bytes: 10, status: 'failed', error: 'Pixelflow.InvalidImage', cause: 'the file is not an image (unknown format)' },
            ],
          },
        },
      ]);
      return { runId: 'run-1', inputs };
    }
    case 'cancel_run':
      return true;
    case 'list_executions': {
      const f = (args.filter ?? {}) as Args;
      return executions.filter((e) =>
        (!f.status || e.status === f.status) && (!f.workflow || e.workflowName === f.workflow) && (!f.text || e.id.includes(String(f.text)) || e.workflowName.includes(String(f.text))));
    }
    case 'execution_detail': {
      const e = executions.find((x) => x.id.startsWith(String(args.id)));
      if (!e) throw { code: 'notFound', message: `no execution '${args.id}'`, diagnostics: [] };
      // The thumbnail one is a batch whose input is too large to send whole.
      const batch = e.workflowName === 'thumbnail';
      return {
        execution: { ...e, workflowHash: 'h', definition: definitions[e.workflowName], input: batch ? null : { path: '/photos/a.jpg', outputDir: '/data/output' }, output: { optimized: [{ path: '/data/output/a.min.jpg' }] }, cause: e.error ? 'the file is not an image' : null },
        inputPreview: batch ? { text: '{\n  "items": [\n    {\n      "path": "/photos/IMG_00000.png"', bytes: 3_460_000 } : null,
        outputPreview: null,
        // The thumbnail one pages its timeline: 10 of its events come first.
        events: e.status !== 'SUCCEEDED' ? events.slice(0, 3) : e.workflowName === 'thumbnail' ? events.slice(0, 10) : events,
        eventsTotal: e.status === 'SUCCEEDED' ? events.length : 3,
        mapProgress: [],
        files: [{ input: { path: '/photos/a.jpg', bytes: 120_000 }, outputs: [{ path: '/data/output/a.min.jpg', bytes: 30_000 }] }],
      };
    }
    case 'execution_events':
      return events.slice(Number(args.offset), Number(args.offset) + Number(args.limit ?? 2000));
    case 'prune_history':
      return 12;
    case 'get_settings':
      return { settings: { device }, gpu: { part: 'gpu', status: 'warn', detail: 'llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu): a software adapter; filters run on the CPU unless a workflow asks for device: gpu' } };
    case 'set_settings':
      device = String((args.settings as Args).device);
      return { device };
    case 'list_profiles':
      return profiles.map(entryOf);
    case 'save_profile': {
      const p = args.profile as Profile;
      if (!p.bucket) throw { code: 'invalid', message: 'at /bucket: the bucket is empty', diagnostics: [] };
      profiles = [...profiles.filter((x) => x.name !== p.name), p].sort((a, b) => a.name.localeCompare(b.name));
      return { entry: entryOf(p), secretStored: false };
    }
    case 'remove_profile':
      profiles = profiles.filter((x) => x.name !== args.name);
      return null;
    case 'export_preview':
    case 'start_export': {
      const r = args.request as { executions: string[]; profile: string; dryRun: boolean };
      const p = profiles.find((x) => x.name === r.profile);
      if (!p) throw { code: 'notFound', message: `no cloud profile '${r.profile}'`, diagnostics: [] };
      const dryRun = cmd === 'export_preview';
      const objects = exportObjects(r.executions, dryRun);
      const report = {
        id: dryRun ? null : 'exp-1', destination: destinationOf(p), dryRun, total: objects.length,
        uploaded: dryRun ? 0 : objects.filter((o) => o.action === 'uploaded').length, unchanged: dryRun ? 0 : objects.filter((o) => o.action === 'unchanged').length,
        kept: 0, failed: 0, error: null, objects,
      };
      if (dryRun) return report;
      emit(args.onProgress as { id: number }, [
        { kind: 'planned', total: objects.length },
        { kind: 'progress', done: 1, total: objects.length, bytes: 30_000, objects: [{ key: objects[0].key, unchanged: false }] },
        { kind: 'progress', done: objects.length, total: objects.length, bytes: 90_000, objects: objects.slice(1).map((o) => ({ key: o.key, unchanged: o.action === 'unchanged' })) },
        { kind: 'finished', report },
      ]);
      return { exportId: 'export-1' };
    }
    case 'cancel_export':
      return true;
    case 'pending_tasks':
      return tasks;
    case 'answer_tasks': {
      const tokens = args.tokens as string[];
      tasks = tasks.filter((t) => !tokens.includes(t.token));
      return tokens.map((token) => ({ token, executionId: 'x', error: null }));
    }
    case 'watch_rules':
      return {
        rules,
        statuses: rules.map((r) => ({ id: r.id, folder: r.folder, state: r.paused ? 'paused' : 'active', lastError: null, servicePid: 42, queued: 3, inFlight: 1, processed: 17, failed: 1 })),
        defaultFolder: '/data/watch',
      };
    case 'watch_add': {
      const r = args.rule as Args;
      const rule = { ...rules[0], id: nextRule++, folder: String(r.folder), workflow: String(r.workflow ?? 'image-pipeline'), output: String(r.out ?? '/data/output'), paused: false };
      rules = [...rules, rule];
      return rule;
    }
    case 'watch_set_paused':
      rules = rules.map((r) => (r.id === args.id ? { ...r, paused: Boolean(args.paused) } : r));
      return rules.find((r) => r.id === args.id);
    case 'watch_remove':
      rules = rules.filter((r) => r.id !== args.id);
      return null;
    case 'doctor':
      return [{ part: 'database', status: 'ok', detail: '/data/history.sqlite (schema version 5)' }];
    case 'plugin:dialog|open':
      return '/picked/folder';
    case 'plugin:event|listen':
      return 1;
    case 'plugin:event|unlisten':
      return null;
    default:
      throw { code: 'internal', message: `the mock has no command ${cmd}`, diagnostics: [] };
  }
});
