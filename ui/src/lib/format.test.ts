import { describe, expect, it } from 'vitest';
import { baseName, etaMs, formatWhen, mainOutput, formatBytes, formatDuration, formatRate, formatSaved, percentSaved, rate } from './format';

describe('format', () => {
  it('sizes use the CLI units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.0 MiB');
    expect(formatBytes(null)).toBe('—');
  });

  it('durations read naturally', () => {
    expect(formatDuration(250)).toBe('250 ms');
    expect(formatDuration(12_340)).toBe('12.3s');
    expect(formatDuration(65_000)).toBe('1m 05s');
    expect(formatDuration(3_720_000)).toBe('1h 02m');
    expect(formatDuration(-1)).toBe('—');
  });

  it('rate and ETA come from what is done so far', () => {
    expect(rate(0, 1000)).toBe(0);
    expect(rate(50, 10_000)).toBe(5);
    expect(etaMs(50, 100, 10_000)).toBe(10_000);
    expect(etaMs(0, 100, 10_000)).toBeNull();
    expect(etaMs(100, 100, 10_000)).toBe(0);
    expect(formatRate(0)).toBe('—');
    expect(formatRate(2.345)).toBe('2.3 images/s');
    expect(formatRate(42.4)).toBe('42 images/s');
  });

  it('savings are relative to the original', () => {
    expect(percentSaved(1000, 250)).toBe(75);
    expect(percentSaved(1000, 1100)).toBeCloseTo(-10);
    expect(percentSaved(0, 10)).toBeNull();
    expect(formatSaved(1000, 250)).toBe('75.0% smaller');
    expect(formatSaved(1000, 1100)).toBe('10.0% larger');
    expect(formatSaved(null, 5)).toBe('—');
  });

  it('base names work for both separators', () => {
    expect(baseName('/a/b/c.jpg')).toBe('c.jpg');
    expect(baseName('C:\\x\\y.png')).toBe('y.png');
  });

  it('compares the original with its main optimized output', () => {
    const outs = [
      { path: '/o/a-thumb.png', bytes: 4 },
      { path: '/o/a-web.min.png', bytes: 15 },
      { path: '/o/a-thumb.min.png', bytes: 2 },
      { path: '/o/a-web.png', bytes: 50 },
      { path: '/o/gone.min.png', bytes: null },
    ];
    expect(mainOutput(outs)?.path).toBe('/o/a-web.min.png');
    expect(mainOutput(outs.slice(0, 1))?.path).toBe('/o/a-thumb.png');
    expect(mainOutput([{ path: '/o/report.json', bytes: 9 }])).toBeNull();
  });

  it('lists today by time of day and older runs by date', () => {
    const now = new Date(2026, 10, 23, 15, 0, 0).getTime();
    expect(formatWhen(new Date(2026, 10, 23, 9, 5, 7).getTime(), now)).toBe('09:05:07');
    expect(formatWhen(new Date(2026, 10, 20, 9, 5, 7).getTime(), now)).toBe('2026-11-20 09:05');
  });
});
