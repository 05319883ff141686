import { describe, expect, it } from 'vitest';
import { applyRunMessage, newRun, runStats } from './run';

const inputs = [
  { path: '/in/a.jpg', bytes: 100 },
  { path: '/in/b.png', bytes: 200 },
  { path: '/in/c.jpg', bytes: 300 },
];

describe('run reduction', () => {
  it('goes from preparing to finished, per image and overall', () => {
    let s = newRun('run-1', 'image-pipeline', inputs);
    expect(s.phase).toBe('preparing');
    expect(s.items.map((i) => i.state)).toEqual(['queued', 'queued', 'queued']);
    s = applyRunMessage(s, { kind: 'started', toRun: 2, cached: 1 }, 1000);
    expect(s.phase).toBe('running');
    s = applyRunMessage(s, { kind: 'progress', executionId: 'e1', done: 1, failed: 0, toRun: 2, items: [{ path: '/in/a.jpg', ok: true }] }, 3000);
    expect(s.items[0].state).toBe('done');
    expect(s.executionId).toBe('e1');
    const mid = runStats(s, 3000);
    expect(mid).toMatchObject({ done: 1, total: 2, fraction: 0.5, perSecond: 0.5, etaMs: 2000 });
    s = applyRunMessage(s, {
      kind: 'finished',
      report: {
        executionId: 'e1', bytesIn: 600, bytesOut: 250, elapsedMs: 4000, interrupted: false,
        items: [
          { path: '/in/a.jpg', bytes: 100, status: 'processed', output: {} },
          { path: '/in/b.png', bytes: 200, status: 'failed', error: 'Pixelflow.InvalidImage', cause: 'not an image' },
          { path: '/in/c.jpg', bytes: 300, status: 'cached', output: {}, executionId: 'e0' },
        ],
      },
    }, 5000);
    expect(s.phase).toBe('finished');
    expect(s.items.map((i) => i.state)).toEqual(['done', 'failed', 'cached']);
    expect(s.items[1].reason).toBe('Pixelflow.InvalidImage: not an image');
    expect(runStats(s, 9999)).toMatchObject({ done: 2, total: 2, fraction: 1, perSecond: 0.5, etaMs: null });
  });

  it('keeps the reason of a run that could not start', () => {
    const s = applyRunMessage(newRun('run-2', 'w', inputs), { kind: 'failed', message: 'disk full' }, 10);
    expect(s.phase).toBe('failed');
    expect(s.error).toBe('disk full');
  });

  it('marks an interrupted batch', () => {
    const s = applyRunMessage(newRun('run-3', 'w', inputs), {
      kind: 'finished',
      report: { executionId: null, bytesIn: 0, bytesOut: 0, elapsedMs: 10, interrupted: true, items: [{ path: '/in/a.jpg', bytes: 100, status: 'pending' }] },
    }, 10);
    expect(s.phase).toBe('interrupted');
    expect(s.items[0].state).toBe('queued');
  });
});
