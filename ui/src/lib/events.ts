// Event reduction: an execution's recorded events -> the status of each state (for the graph)
// and, for Map states, how many items are pending, running, succeeded and failed.
import type { ExecutionDetail, ExecutionStatus, StoredEvent } from './types';

export type StateStatus = 'running' | 'succeeded' | 'failed' | 'caught';

export interface StateRun {
  status: StateStatus;
  /** Visits by outcome (a state inside a Map is visited once per item). */
  running: number;
  succeeded: number;
  failed: number;
  caught: number;
  /** The last error a visit of it raised (a failed attempt, even one retried). */
  lastError?: string;
}

export interface MapCounts {
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
}

interface Visit {
  state: string;
  status: StateStatus;
}

/**
 * Reduces the events to per-state runs. A visit opens at `<Type>StateEntered` and closes at
 * `<Type>StateExited` (succeeded, or caught when a Catch took it). A visit still open when its
 * Map item or Parallel failed, or when the execution ended other than RUNNING, failed.
 */
export function reduceEvents(events: StoredEvent[], execution?: ExecutionStatus): { states: Record<string, StateRun>; maps: Record<string, MapCounts> } {
  const visits = new Map<string, Visit>();
  const lastError = new Map<string, string>();
  const maps: Record<string, MapCounts> = {};
  const map = (name: string) => (maps[name] ??= { total: 0, pending: 0, running: 0, succeeded: 0, failed: 0 });
  const failUnder = (prefix: string) => {
    for (const [key, v] of visits) if (v.status === 'running' && (key === prefix || key.startsWith(prefix + '/'))) v.status = 'failed';
  };

  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    const state = e.state ?? '';
    if (e.kind.endsWith('StateEntered')) {
      visits.set(e.key, { state, status: 'running' });
    } else if (e.kind.endsWith('StateExited')) {
      const v = visits.get(e.key) ?? { state, status: 'running' };
      v.status = e.detail && 'caught' in e.detail ? 'caught' : 'succeeded';
      visits.set(e.key, v);
    } else if (e.kind === 'TaskFailed' || e.kind === 'TaskTimedOut') {
      const err = e.detail?.error;
      if (typeof err === 'string') lastError.set(state, err);
    } else if (e.kind === 'MapStateStarted') {
      const len = Number(e.detail?.length ?? 0);
      map(state).total += Number.isFinite(len) ? len : 0;
    } else if (e.kind === 'MapIterationStarted') {
      map(state).running++;
    } else if (e.kind === 'MapIterationSucceeded') {
      const m = map(state);
      m.running = Math.max(m.running - 1, 0);
      m.succeeded++;
    } else if (e.kind === 'MapIterationFailed') {
      const m = map(state);
      m.running = Math.max(m.running - 1, 0);
      m.failed++;
      failUnder(e.key);
    } else if (e.kind === 'MapStateFailed' || e.kind === 'ParallelStateFailed') {
      failUnder(e.key);
      const v = visits.get(e.key);
      if (v) v.status = 'failed';
    }
  }
  if (execution && execution !== 'RUNNING') {
    for (const v of visits.values()) if (v.status === 'running') v.status = 'failed';
    for (const m of Object.values(maps)) m.running = 0;
  }
  for (const m of Object.values(maps)) m.pending = Math.max(m.total - m.running - m.succeeded - m.failed, 0);

  const states: Record<string, StateRun> = {};
  for (const v of visits.values()) {
    const s = (states[v.state] ??= { status: 'succeeded', running: 0, succeeded: 0, failed: 0, caught: 0 });
    s[v.status]++;
  }
  for (const [name, s] of Object.entries(states)) {
    s.status = s.running ? 'running' : s.failed ? 'failed' : s.caught ? 'caught' : 'succeeded';
    const err = lastError.get(name);
    if (err) s.lastError = err;
  }
  return { states, maps };
}

/** A one-line description of an event for the timeline. */
export function describeEvent(e: StoredEvent): string {
  const d = e.detail ?? {};
  if (typeof d.error === 'string') return `${d.error}${typeof d.cause === 'string' && d.cause ? `: ${d.cause}` : ''}`;
  if (d.caught && typeof d.caught === 'object') {
    const c = d.caught as { error?: string; cause?: string };
    return `caught ${c.error ?? ''}${c.cause ? `: ${c.cause}` : ''}`;
  }
  if (typeof d.index === 'number') return `item ${d.index}`;
  if (typeof d.length === 'number') return `${d.length} items`;
  return '';
}

/** What an execution's graph shows: its definition (null when not valid JSON) and the status of
 *  each state and Map from its events. Shared by the history view and the live run graph. */
export function executionGraph(detail: ExecutionDetail | null): {
  definition: unknown;
  states: Record<string, StateRun>;
  maps: Record<string, MapCounts>;
} {
  if (!detail) return { definition: null, states: {}, maps: {} };
  let definition: unknown = null;
  try {
    definition = JSON.parse(detail.execution.definition);
  } catch {
    definition = null;
  }
  const reduced = reduceEvents(detail.events, detail.execution.status);
  // The shell counts every Map iteration in SQL: right even when only a page of events is loaded.
  for (const p of detail.mapProgress ?? []) {
    const running = detail.execution.status === 'RUNNING' ? Math.max(p.started - p.succeeded - p.failed, 0) : 0;
    const pending = Math.max(p.total - running - p.succeeded - p.failed, 0);
    reduced.maps[p.state] = { total: p.total, pending, running, succeeded: p.succeeded, failed: p.failed };
  }
  return { definition, ...reduced };
}
