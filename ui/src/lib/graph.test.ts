import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { aslToGraph, END, layoutGraph, START } from './graph';

const pipeline = JSON.parse(readFileSync(new URL('../../../workflows/image-pipeline.asl.json', import.meta.url), 'utf8'));
const edge = (g: ReturnType<typeof aslToGraph>, from: string, to: string) => g.edges.find((e) => e.from === from && e.to === to);

describe('aslToGraph', () => {
  it('draws the reference pipeline: choice, parallel branches joined at Next, catches', () => {
    const g = aslToGraph(pipeline);
    const ids = g.nodes.map((n) => n.id);
    for (const s of ['ValidateImage', 'ImageValid', 'ProcessImage', 'ResizeImage', 'ApplyFilters', 'OptimizeImage', 'NotifyError', 'ImageFailed']) {
      expect(ids).toContain(s);
    }
    expect(edge(g, START, 'ValidateImage')?.kind).toBe('next');
    expect(edge(g, 'ImageValid', 'ProcessImage')?.kind).toBe('choice');
    expect(edge(g, 'ImageValid', 'InvalidImage')?.kind).toBe('default');
    expect(edge(g, 'ValidateImage', 'NotifyError')?.kind).toBe('catch');
    // The Parallel fans out to its branches, whose ends join at its Next.
    expect(edge(g, 'ProcessImage', 'ResizeImage')?.kind).toBe('branch');
    expect(edge(g, 'ProcessImage', 'ApplyFilters')?.kind).toBe('branch');
    expect(edge(g, 'ResizeImage', 'OptimizeImage')).toBeTruthy();
    expect(edge(g, 'ApplyFilters', 'OptimizeImage')).toBeTruthy();
    expect(edge(g, 'ProcessImage', 'OptimizeImage')).toBeUndefined();
    expect(g.clusters.map((c) => c.id)).toEqual(['ProcessImage::branch0', 'ProcessImage::branch1']);
    expect(g.nodes.find((n) => n.id === 'ResizeImage')?.parent).toBe('ProcessImage::branch0');
    expect(g.nodes.find((n) => n.id === 'ResizeImage')?.detail).toBe('resize');
    expect(edge(g, 'NotifySuccess', END)).toBeTruthy();
    // A Fail state ends the run: nothing leaves it.
    expect(g.edges.filter((e) => e.from === 'ImageFailed')).toEqual([]);
  });

  it('puts a Map item processor in a cluster and shows transitions to missing states', () => {
    const g = aslToGraph({
      StartAt: 'Each',
      States: {
        Each: { Type: 'Map', ItemProcessor: { StartAt: 'Work', States: { Work: { Type: 'Task', Resource: 'pixelflow:echo', End: true } } }, Next: 'Nope' },
      },
    });
    expect(g.clusters).toEqual([{ id: 'Each::items', label: 'each item', parent: undefined }]);
    expect(edge(g, 'Each', 'Work')?.kind).toBe('branch');
    const ghost = g.nodes.find((n) => n.kind === 'unknown');
    expect(ghost?.label).toBe('Nope');
    expect(edge(g, 'Work', ghost!.id)).toBeTruthy();
  });

  it('gives nothing but start and end for something that is not a definition', () => {
    expect(aslToGraph('nope').nodes).toEqual([]);
    expect(aslToGraph({}).nodes.map((n) => n.id)).toEqual([START, END]);
  });
});

describe('layoutGraph', () => {
  it('places every node, top to bottom, clusters around their states', () => {
    const laid = layoutGraph(aslToGraph(pipeline));
    const at = (id: string) => laid.nodes.find((n) => n.id === id)!;
    expect(laid.width).toBeGreaterThan(0);
    expect(laid.height).toBeGreaterThan(0);
    expect(at(START).y).toBeLessThan(at('ValidateImage').y);
    expect(at('ValidateImage').y).toBeLessThan(at('ProcessImage').y);
    expect(at('ProcessImage').y).toBeLessThan(at('OptimizeImage').y);
    const branch = laid.clusters.find((c) => c.id === 'ProcessImage::branch0')!;
    const resize = at('ResizeImage');
    expect(Math.abs(resize.x - branch.x)).toBeLessThanOrEqual(branch.width / 2);
    expect(Math.abs(resize.y - branch.y)).toBeLessThanOrEqual(branch.height / 2);
    for (const e of laid.edges) {
      expect(e.points.length).toBeGreaterThanOrEqual(2);
      // Every bend lies inside the drawing.
      for (const p of e.points) {
        expect(p.x).toBeGreaterThanOrEqual(0);
        expect(p.y).toBeGreaterThanOrEqual(0);
        expect(p.x).toBeLessThanOrEqual(laid.width);
        expect(p.y).toBeLessThanOrEqual(laid.height);
      }
    }
    for (const n of laid.nodes) expect(n.x - n.width / 2).toBeGreaterThanOrEqual(0);
  });
});
