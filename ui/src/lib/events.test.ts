import { describe, expect, it } from 'vitest';
import { describeEvent, executionGraph, reduceEvents } from './events';
import type { ExecutionDetail, ExecutionStatus, StoredEvent } from './types';

let seq = 0;
const ev = (kind: string, state: string | null, key: string, detail: Record<string, unknown> = {}): StoredEvent => ({
  seq: ++seq, timestampMs: seq, kind, state, key, detail,
});

describe('reduceEvents', () => {
  it('follows visits: succeeded, caught, running, and a retried task', () => {
    const { states } = reduceEvents([
      ev('ExecutionStarted', null, ''),
      ev('TaskStateEntered', 'Validate', '/0:Validate'),
      ev('TaskFailed', 'Validate', '/0:Validate', { error: 'Pixelflow.Busy', cause: 'x' }),
      ev('TaskStateExited', 'Validate', '/0:Validate', { output: {} }),
      ev('TaskStateEntered', 'Resize', '/1:Resize'),
      ev('TaskStateExited', 'Resize', '/1:Resize', { output: {}, caught: { error: 'E', cause: 'c' } }),
      ev('TaskStateEntered', 'Notify', '/2:Notify'),
    ], 'RUNNING');
    expect(states.Validate).toMatchObject({ status: 'succeeded', succeeded: 1, lastError: 'Pixelflow.Busy' });
    expect(states.Resize).toMatchObject({ status: 'caught', caught: 1 });
    expect(states.Notify).toMatchObject({ status: 'running', running: 1 });
  });

  it('counts Map items and fails the visits of a failed item', () => {
    const { states, maps } = reduceEvents([
      ev('MapStateEntered', 'Batch', '/0:Batch'),
      ev('MapStateStarted', 'Batch', '/0:Batch', { length: 4 }),
      ev('MapIterationStarted', 'Batch', '/0:Batch#0/i0', { index: 0 }),
      ev('TaskStateEntered', 'Work', '/0:Batch#0/i0/0:Work'),
      ev('TaskStateExited', 'Work', '/0:Batch#0/i0/0:Work'),
      ev('MapIterationSucceeded', 'Batch', '/0:Batch#0/i0', { index: 0 }),
      ev('MapIterationStarted', 'Batch', '/0:Batch#0/i1', { index: 1 }),
      ev('TaskStateEntered', 'Work', '/0:Batch#0/i1/0:Work'),
      ev('TaskFailed', 'Work', '/0:Batch#0/i1/0:Work', { error: 'Pixelflow.InvalidImage' }),
      ev('MapIterationFailed', 'Batch', '/0:Batch#0/i1', { index: 1, error: 'Pixelflow.InvalidImage' }),
      ev('MapIterationStarted', 'Batch', '/0:Batch#0/i2', { index: 2 }),
      ev('TaskStateEntered', 'Work', '/0:Batch#0/i2/0:Work'),
    ], 'RUNNING');
    expect(maps.Batch).toEqual({ total: 4, pending: 1, running: 1, succeeded: 1, failed: 1 });
    expect(states.Work).toMatchObject({ status: 'running', running: 1, succeeded: 1, failed: 1, lastError: 'Pixelflow.InvalidImage' });
    expect(states.Batch.status).toBe('running');
  });

  it('fails what was still open when the execution ended', () => {
    const { states, maps } = reduceEvents([
      ev('MapStateEntered', 'Batch', '/0:Batch'),
      ev('MapStateStarted', 'Batch', '/0:Batch', { length: 2 }),
      ev('MapIterationStarted', 'Batch', '/0:Batch#0/i0', { index: 0 }),
      ev('TaskStateEntered', 'Work', '/0:Batch#0/i0/0:Work'),
    ], 'FAILED');
    expect(states.Work.status).toBe('failed');
    expect(states.Batch.status).toBe('failed');
    expect(maps.Batch.running).toBe(0);
  });

  it('describes events for the timeline', () => {
    expect(describeEvent(ev('TaskFailed', 'A', '/0:A', { error: 'E', cause: 'why' }))).toBe('E: why');
    expect(describeEvent(ev('MapIterationStarted', 'M', '/0:M#0/i3', { index: 3 }))).toBe('item 3');
    expect(describeEvent(ev('TaskStateExited', 'A', '/0:A', { caught: { error: 'E' } }))).toBe('caught E');
  });
});

describe('execution graph of a paged execution', () => {
  const detail = (status: ExecutionStatus): ExecutionDetail => ({
    execution: {
      id: 'e', name: 'e', workflowName: 'w', status, startedAtMs: 0, stoppedAtMs: null, error: null,
      workflowHash: 'h', definition: '{"StartAt":"Batch","States":{}}', input: {}, output: null, cause: null,
    } as ExecutionDetail['execution'],
    // Only the first page: one iteration seen.
    events: [
      { seq: 1, timestampMs: 0, kind: 'MapStateStarted', state: 'Batch', key: '/0:Batch#0', detail: { length: 40000 } },
      { seq: 2, timestampMs: 0, kind: 'MapIterationStarted', state: 'Batch', key: '/0:Batch#0/i0', detail: {} },
    ],
    eventsTotal: 200000,
    mapProgress: [{ state: 'Batch', total: 40000, started: 30002, succeeded: 29990, failed: 10 }],
    files: [],
  });
  it('takes the Map counts from the shell, not from the loaded page', () => {
    expect(executionGraph(detail('RUNNING')).maps.Batch).toEqual({ total: 40000, pending: 9998, running: 2, succeeded: 29990, failed: 10 });
    expect(executionGraph(detail('FAILED')).maps.Batch).toEqual({ total: 40000, pending: 10000, running: 0, succeeded: 29990, failed: 10 });
  });
});
