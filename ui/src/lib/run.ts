// The state of one batch in the drop zone, reduced from the shell's run messages.
import { etaMs, rate } from './format';
import type { InputFile, RunMessage, RunReport } from './types';

export type ItemState = 'queued' | 'done' | 'cached' | 'failed';

export interface RunItem {
  path: string;
  bytes: number;
  state: ItemState;
  /** Why it failed (`Error: cause`), once the run reports it. */
  reason?: string;
}

export type Phase = 'preparing' | 'running' | 'finished' | 'interrupted' | 'failed';

export interface RunState {
  runId: string;
  workflow: string;
  phase: Phase;
  items: RunItem[];
  /** Index of each item by path. */
  index: Record<string, number>;
  toRun: number;
  cached: number;
  done: number;
  failed: number;
  /** When the batch started running (after hashing), client clock. */
  runningSince: number | null;
  finishedAt: number | null;
  executionId: string | null;
  report: RunReport | null;
  error: string | null;
}

export function newRun(runId: string, workflow: string, inputs: InputFile[]): RunState {
  const index: Record<string, number> = {};
  inputs.forEach((f, i) => (index[f.path] = i));
  return {
    runId, workflow, phase: 'preparing',
    items: inputs.map((f) => ({ path: f.path, bytes: f.bytes, state: 'queued' })),
    index, toRun: inputs.length, cached: 0, done: 0, failed: 0,
    runningSince: null, finishedAt: null, executionId: null, report: null, error: null,
  };
}

/** Applies one message; returns a new state (the items array is copied when it changes). */
export function applyRunMessage(s: RunState, m: RunMessage, now: number): RunState {
  switch (m.kind) {
    case 'started':
      return { ...s, phase: 'running', toRun: m.toRun, cached: m.cached, runningSince: now };
    case 'progress': {
      const items = s.items.slice();
      for (const it of m.items) {
        const i = s.index[it.path];
        if (i !== undefined) items[i] = { ...items[i], state: it.ok ? 'done' : 'failed' };
      }
      return {
        ...s, items, done: m.done, failed: m.failed, toRun: m.toRun || s.toRun,
        executionId: m.executionId ?? s.executionId,
        runningSince: s.runningSince ?? now,
        phase: s.phase === 'preparing' ? 'running' : s.phase,
      };
    }
    case 'finished': {
      const items = s.items.slice();
      let done = 0;
      let failed = 0;
      for (const r of m.report.items) {
        const i = s.index[r.path];
        if (i === undefined) continue;
        if (r.status === 'failed') {
          items[i] = { ...items[i], state: 'failed', reason: `${r.error}${r.cause ? `: ${r.cause}` : ''}` };
          failed++;
          done++;
        } else if (r.status === 'processed') {
          items[i] = { ...items[i], state: 'done' };
          done++;
        } else if (r.status === 'cached') {
          items[i] = { ...items[i], state: 'cached' };
        }
      }
      return {
        ...s, items, done, failed, report: m.report, finishedAt: now,
        executionId: m.report.executionId ?? s.executionId,
        phase: m.report.interrupted ? 'interrupted' : 'finished',
      };
    }
    case 'failed':
      return { ...s, phase: 'failed', error: m.message, finishedAt: now };
  }
}

export interface RunStats {
  done: number;
  total: number;
  fraction: number;
  perSecond: number;
  etaMs: number | null;
  elapsedMs: number;
}

/** Overall progress: images done of those that had to run, speed and time left. */
export function runStats(s: RunState, now: number): RunStats {
  const total = s.toRun;
  const end = s.finishedAt ?? now;
  const elapsedMs = s.report ? s.report.elapsedMs : s.runningSince ? end - s.runningSince : 0;
  const fraction = total > 0 ? Math.min(s.done / total, 1) : s.phase === 'finished' ? 1 : 0;
  return {
    done: s.done, total, fraction, elapsedMs,
    perSecond: rate(s.done, elapsedMs),
    etaMs: s.phase === 'running' ? etaMs(s.done, total, elapsedMs) : null,
  };
}
