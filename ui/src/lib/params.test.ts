import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findState, leaves, pathLabel, setParameter } from './params';

const pipeline = JSON.parse(readFileSync(new URL('../../../workflows/image-pipeline.asl.json', import.meta.url), 'utf8'));

describe('step parameters as fields', () => {
  it('finds states inside Parallel branches', () => {
    expect(findState(pipeline, 'ResizeImage')?.Resource).toBe('pixelflow:resize');
    expect(findState(pipeline, 'Nope')).toBeNull();
  });

  it('lists scalar leaves without JSONPath keys', () => {
    const fields = leaves(findState(pipeline, 'ResizeImage')!.Parameters);
    const labels = fields.map((f) => pathLabel(f.path));
    expect(labels).toContain('variants[0].width');
    expect(labels).toContain('variants[1].fit');
    expect(labels.some((l) => l.includes('path'))).toBe(false);
    expect(fields.find((f) => pathLabel(f.path) === 'variants[0].width')?.value).toBe(320);
  });

  it('writes a field back without touching the original', () => {
    const changed = setParameter(pipeline, 'OptimizeImage', ['quality'], 70);
    expect(findState(changed, 'OptimizeImage')!.Parameters).toMatchObject({ quality: 70 });
    expect(findState(pipeline, 'OptimizeImage')!.Parameters).toMatchObject({ quality: 80 });
    const nested = setParameter(pipeline, 'ResizeImage', ['variants', 0, 'width'], 256);
    expect((findState(nested, 'ResizeImage')!.Parameters as { variants: { width: number }[] }).variants[0].width).toBe(256);
  });
});
