// The workflow graph: ASL -> nodes, edges and clusters (Parallel branches, Map item
// processors), then an automatic layered layout (dagre) for the SVG view.
import { Graph, layout } from '@dagrejs/dagre';

export type NodeKind = 'Task' | 'Pass' | 'Choice' | 'Wait' | 'Succeed' | 'Fail' | 'Parallel' | 'Map' | 'start' | 'end' | 'unknown';
export type EdgeKind = 'next' | 'choice' | 'default' | 'catch' | 'branch' | 'join';

export interface GNode {
  /** The state's name (unique in a definition), or `__start__` / `__end__`. */
  id: string;
  label: string;
  kind: NodeKind;
  /** The cluster it sits in (a branch or item processor), if any. */
  parent?: string;
  /** The step of a Task (`resize`), shown under its name. */
  detail?: string;
}

export interface GEdge {
  from: string;
  to: string;
  kind: EdgeKind;
  label?: string;
}

export interface GCluster {
  id: string;
  label: string;
  parent?: string;
}

export interface WorkflowGraph {
  nodes: GNode[];
  edges: GEdge[];
  clusters: GCluster[];
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export const START = '__start__';
export const END = '__end__';

/**
 * Builds the graph of an ASL definition. A Parallel (or Map) state points at each branch's
 * (or its item processor's) start; the ends of its branches join at the state's `Next` (or the
 * end of the enclosing scope). States named but not defined are drawn as `unknown`, so an
 * invalid definition still shows what it has.
 */
export function aslToGraph(definition: unknown): WorkflowGraph {
  const g: WorkflowGraph = { nodes: [], edges: [], clusters: [] };
  if (!isObj(definition)) return g;
  const seen = new Set<string>();
  g.nodes.push({ id: START, label: 'Start', kind: 'start' });
  g.nodes.push({ id: END, label: 'End', kind: 'end' });

  const scope = (machine: Json, parent: string | undefined, entry: string, entryKind: EdgeKind, exit: string) => {
    const states = isObj(machine.States) ? machine.States : {};
    const startAt = typeof machine.StartAt === 'string' ? machine.StartAt : undefined;
    const ids = new Map<string, string>();
    for (const name of Object.keys(states)) {
      const id = seen.has(name) ? `${parent ?? ''}/${name}` : name;
      seen.add(id);
      ids.set(name, id);
    }
    const target = (name: unknown): string | undefined => {
      if (typeof name !== 'string') return undefined;
      const id = ids.get(name);
      if (id) return id;
      // A transition to a state that does not exist: show it, marked unknown.
      const ghost = `${parent ?? ''}?${name}`;
      if (!seen.has(ghost)) {
        seen.add(ghost);
        g.nodes.push({ id: ghost, label: name, kind: 'unknown', parent });
      }
      return ghost;
    };
    const first = target(startAt);
    if (first) g.edges.push({ from: entry, to: first, kind: entryKind });

    for (const [name, raw] of Object.entries(states)) {
      const id = ids.get(name)!;
      const s = isObj(raw) ? raw : {};
      const type = typeof s.Type === 'string' ? s.Type : 'unknown';
      const kind: NodeKind = (['Task', 'Pass', 'Choice', 'Wait', 'Succeed', 'Fail', 'Parallel', 'Map'] as string[]).includes(type)
        ? (type as NodeKind)
        : 'unknown';
      const node: GNode = { id, label: name, kind, parent };
      if (kind === 'Task' && typeof s.Resource === 'string') node.detail = s.Resource.replace(/^pixelflow:/, '');
      g.nodes.push(node);

      // Where this state goes when it is done.
      const after = s.End === true || kind === 'Succeed' ? exit : target(s.Next);
      if (kind === 'Parallel' || kind === 'Map') {
        const branches = kind === 'Parallel'
          ? (Array.isArray(s.Branches) ? s.Branches : [])
          : [isObj(s.ItemProcessor) ? s.ItemProcessor : isObj(s.Iterator) ? s.Iterator : {}];
        branches.forEach((b, i) => {
          const cid = kind === 'Parallel' ? `${id}::branch${i}` : `${id}::items`;
          g.clusters.push({ id: cid, label: kind === 'Parallel' ? `branch ${i + 1}` : 'each item', parent });
          scope(isObj(b) ? b : {}, cid, id, 'branch', after ?? exit);
        });
        if (!branches.length && after) g.edges.push({ from: id, to: after, kind: 'next' });
      } else if (kind === 'Choice') {
        const choices = Array.isArray(s.Choices) ? s.Choices : [];
        choices.forEach((c, i) => {
          const to = isObj(c) ? target(c.Next) : undefined;
          if (to) g.edges.push({ from: id, to, kind: 'choice', label: `rule ${i + 1}` });
        });
        const def = target(s.Default);
        if (def) g.edges.push({ from: id, to: def, kind: 'default', label: 'default' });
      } else if (kind !== 'Fail' && after) {
        g.edges.push({ from: id, to: after, kind: 'next' });
      }
      const catches = Array.isArray(s.Catch) ? s.Catch : [];
      for (const c of catches) {
        const to = isObj(c) ? target(c.Next) : undefined;
        if (to) {
          const errors = isObj(c) && Array.isArray(c.ErrorEquals) ? c.ErrorEquals.filter((x) => x !== 'States.ALL').join(', ') : '';
          g.edges.push({ from: id, to, kind: 'catch', label: errors ? `catch ${errors}` : 'catch' });
        }
      }
    }
  };
  scope(definition, undefined, START, 'next', END);
  // The join of a Parallel/Map is drawn from the ends of its branches; a Parallel's own
  // edge to its Next would duplicate it.
  const seenEdges = new Set<string>();
  g.edges = g.edges.filter((e) => {
    const k = `${e.from}\u0000${e.to}\u0000${e.kind}\u0000${e.label ?? ''}`;
    if (seenEdges.has(k)) return false;
    seenEdges.add(k);
    return true;
  });
  return g;
}

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface LaidOut {
  nodes: (GNode & Box)[];
  clusters: (GCluster & Box)[];
  edges: (GEdge & { points: { x: number; y: number }[] })[];
  width: number;
  height: number;
}

/** Node size from its label: wide enough for the name, taller when it shows a step. */
export function nodeSize(n: GNode): { width: number; height: number } {
  if (n.kind === 'start' || n.kind === 'end') return { width: 64, height: 28 };
  const chars = Math.max(n.label.length, (n.detail?.length ?? 0) + 2);
  return { width: Math.min(Math.max(chars * 7.5 + 32, 110), 260), height: n.detail ? 46 : 36 };
}

/** Lays the graph out top to bottom. Positions are box centres, as dagre gives them. */
export function layoutGraph(g: WorkflowGraph): LaidOut {
  const dg = new Graph({ compound: true, multigraph: true });
  dg.setGraph({ rankdir: 'TB', nodesep: 36, ranksep: 52, marginx: 16, marginy: 16 });
  dg.setDefaultEdgeLabel(() => ({}));
  for (const c of g.clusters) dg.setNode(c.id, { label: c.label, clusterLabelPos: 'top', paddingTop: 20 });
  for (const c of g.clusters) if (c.parent) dg.setParent(c.id, c.parent);
  for (const n of g.nodes) {
    dg.setNode(n.id, { ...nodeSize(n) });
    if (n.parent) dg.setParent(n.id, n.parent);
  }
  g.edges.forEach((e, i) => dg.setEdge(e.from, e.to, { minlen: 1 }, String(i)));
  layout(dg);
  const box = (id: string): Box => {
    const n = dg.node(id) as unknown as Box;
    return { x: n?.x ?? 0, y: n?.y ?? 0, width: n?.width ?? 0, height: n?.height ?? 0 };
  };
  const nodes = g.nodes.map((n) => ({ ...n, ...box(n.id) }));
  const clusters = g.clusters.map((c) => ({ ...c, ...box(c.id) }));
  const edges = g.edges.map((e, i) => {
    const label = dg.edge(e.from, e.to, String(i)) as { points?: { x: number; y: number }[] } | undefined;
    return { ...e, points: (label?.points ?? []).map((p) => ({ ...p })) };
  });
  // dagre fits the boxes, not the edges' bends: shift everything so both fit, with a margin.
  const M = 16;
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  const grow = (x0: number, y0: number, x1: number, y1: number) => {
    minX = Math.min(minX, x0); minY = Math.min(minY, y0); maxX = Math.max(maxX, x1); maxY = Math.max(maxY, y1);
  };
  for (const b of [...nodes, ...clusters]) grow(b.x - b.width / 2, b.y - b.height / 2, b.x + b.width / 2, b.y + b.height / 2);
  for (const e of edges) for (const p of e.points) grow(p.x, p.y, p.x, p.y);
  if (!Number.isFinite(minX)) return { nodes, clusters, edges, width: 0, height: 0 };
  const dx = M - minX;
  const dy = M - minY;
  for (const b of [...nodes, ...clusters]) { b.x += dx; b.y += dy; }
  for (const e of edges) for (const p of e.points) { p.x += dx; p.y += dy; }
  return { nodes, clusters, edges, width: maxX - minX + 2 * M, height: maxY - minY + 2 * M };
}
