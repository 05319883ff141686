// Formatting for people: sizes, durations, rates, times, savings.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 -> "1.5 KiB" (the CLI's units). */
export function formatBytes(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '—';
  let v = n;
  let unit = 0;
  while (Math.abs(v) >= 1024 && unit < UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${v.toFixed(1)} ${UNITS[unit]}`;
}

/** 65_000 -> "1m 05s"; under a minute "12.3s"; hours "1h 02m". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  return h > 0 ? `${h}h ${String(m).padStart(2, '0')}m` : `${m}m ${String(sec).padStart(2, '0')}s`;
}

/** Images per second over an elapsed time; 0 when nothing is known yet. */
export function rate(done: number, elapsedMs: number): number {
  return elapsedMs > 0 && done > 0 ? (done * 1000) / elapsedMs : 0;
}

/** Time left at the current rate, or null when it cannot be told yet. */
export function etaMs(done: number, total: number, elapsedMs: number): number | null {
  const r = rate(done, elapsedMs);
  if (r <= 0 || total <= 0) return null;
  return (Math.max(total - done, 0) / r) * 1000;
}

export function formatRate(perSecond: number): string {
  if (!perSecond) return '—';
  return perSecond >= 10 ? `${Math.round(perSecond)} images/s` : `${perSecond.toFixed(1)} images/s`;
}

/** Percentage saved from `before` to `after` bytes: 1000 -> 250 is 75 (can be negative). */
export function percentSaved(before: number | null, after: number | null): number | null {
  if (before == null || after == null || before <= 0) return null;
  return ((before - after) / before) * 100;
}

export function formatSaved(before: number | null, after: number | null): string {
  const p = percentSaved(before, after);
  if (p == null) return '—';
  return p >= 0 ? `${p.toFixed(1)}% smaller` : `${(-p).toFixed(1)}% larger`;
}

/** ms since the epoch as a local date and time, "2026-11-23 14:05:09". */
export function formatTime(ms: number | null | undefined): string {
  if (ms == null) return '—';
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The last part of a path. */
export function baseName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}

export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id;
}

/**
 * The output to compare with the original: the largest optimized file (`.min.`), else the
 * largest image, among the files still on disk.
 */
export function mainOutput<T extends { path: string; bytes: number | null }>(outputs: T[]): T | null {
  const images = outputs.filter((o) => o.bytes != null && /\.(jpe?g|png|webp|gif|avif)$/i.test(o.path));
  const optimized = images.filter((o) => /\.min\./.test(o.path));
  const pool = optimized.length ? optimized : images;
  return pool.reduce<T | null>((best, o) => (!best || (o.bytes ?? 0) > (best.bytes ?? 0) ? o : best), null);
}

/** A compact time for lists: the time of day for today, else the date and minutes. */
export function formatWhen(ms: number, now: number = Date.now()): string {
  const full = formatTime(ms);
  return full.slice(0, 10) === formatTime(now).slice(0, 10) ? full.slice(11) : full.slice(0, 16);
}
