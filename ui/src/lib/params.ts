// Step parameters as form fields: the scalar leaves of a Task's `Parameters`, editable one by
// one, written back into the definition.

type Json = unknown;
type Obj = Record<string, Json>;
const isObj = (v: Json): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export type Leaf = { path: (string | number)[]; value: string | number | boolean };

/** The state named `name` anywhere in the definition (inside branches and item processors too). */
export function findState(def: Json, name: string): Obj | null {
  if (!isObj(def) || !isObj(def.States)) return null;
  for (const [n, s] of Object.entries(def.States)) {
    if (!isObj(s)) continue;
    if (n === name) return s;
    const inner = [...(Array.isArray(s.Branches) ? s.Branches : []), s.ItemProcessor, s.Iterator];
    for (const b of inner) {
      const found = findState(b, name);
      if (found) return found;
    }
  }
  return null;
}

/** Scalar values under `params` with their paths; JSONPath-valued keys (`x.$`) are left out. */
export function leaves(params: Json, prefix: (string | number)[] = []): Leaf[] {
  const out: Leaf[] = [];
  if (Array.isArray(params)) params.forEach((v, i) => out.push(...leaves(v, [...prefix, i])));
  else if (isObj(params)) {
    for (const [k, v] of Object.entries(params)) {
      if (k.endsWith('.$')) continue;
      out.push(...leaves(v, [...prefix, k]));
    }
  } else if (typeof params === 'string' || typeof params === 'number' || typeof params === 'boolean') {
    out.push({ path: prefix, value: params });
  }
  return out;
}

/** `variants[0].width` */
export function pathLabel(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i ? `.${p}` : p)).join('');
}

/** A copy of `def` with the Parameters leaf of state `name` at `path` set to `value`. */
export function setParameter(def: Json, name: string, path: (string | number)[], value: string | number | boolean): Json {
  const copy = JSON.parse(JSON.stringify(def)) as Json;
  const state = findState(copy, name);
  if (!state || !path.length) return copy;
  let at: Json = state.Parameters;
  for (const p of path.slice(0, -1)) {
    if (at == null || typeof at !== 'object') return copy;
    at = (at as Record<string | number, Json>)[p];
  }
  if (at != null && typeof at === 'object') (at as Record<string | number, Json>)[path[path.length - 1]] = value;
  return copy;
}
