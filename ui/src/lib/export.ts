// The state of one export in the Export view, reduced from the shell's export messages, and
// the checks of the cloud profile form.
import type { CloudProfile, ExportItem, ExportMessage, ExportReport, ProfileEntry } from './types';

export type ExportPhase = 'starting' | 'running' | 'finished' | 'failed';

export interface ExportState {
  exportId: string;
  phase: ExportPhase;
  total: number;
  done: number;
  bytes: number;
  /** The keys confirmed so far, newest last (at most `RECENT`, for the live list). */
  recent: { key: string; unchanged: boolean }[];
  report: ExportReport | null;
  error: string | null;
}

export const RECENT = 200;

export function newExport(exportId: string): ExportState {
  return { exportId, phase: 'starting', total: 0, done: 0, bytes: 0, recent: [], report: null, error: null };
}

/** Applies one message; returns a new state. */
export function applyExportMessage(s: ExportState, m: ExportMessage): ExportState {
  switch (m.kind) {
    case 'planned':
      return { ...s, phase: 'running', total: m.total };
    case 'progress':
      return { ...s, phase: 'running', total: m.total || s.total, done: m.done, bytes: m.bytes, recent: [...s.recent, ...m.objects].slice(-RECENT) };
    case 'finished': {
      const r = m.report;
      const failed = r.failed > 0 || r.error != null;
      return { ...s, phase: failed && r.uploaded + r.unchanged + r.kept === 0 ? 'failed' : 'finished', total: r.total, done: r.total - r.failed, report: r, error: r.error ? `${r.error.error}: ${r.error.cause}` : null };
    }
    case 'failed':
      return { ...s, phase: 'failed', error: m.message };
  }
}

/** 0..100 */
export function exportPercent(s: ExportState): number {
  if (s.phase === 'finished') return 100;
  return s.total ? Math.min(100, Math.round((100 * s.done) / s.total)) : 0;
}

/** "3 uploaded, 1 unchanged, 2 failed" */
export function exportSummary(r: ExportReport): string {
  const parts = [
    r.dryRun ? `${r.total} to send` : `${r.uploaded} uploaded`,
    r.unchanged ? `${r.unchanged} unchanged` : '',
    r.kept ? `${r.kept} kept (already there)` : '',
    r.failed ? `${r.failed} failed` : '',
  ];
  return parts.filter(Boolean).join(', ');
}

/** What happened to one object, for its row. */
export function objectStatus(o: ExportItem): { label: string; kind: 'ok' | 'fail' | 'info' } {
  if (o.error) return { label: `${o.error.error}: ${o.error.cause}`, kind: 'fail' };
  if (o.action === 'uploaded') return { label: 'uploaded', kind: 'ok' };
  if (o.action === 'unchanged') return { label: 'unchanged', kind: 'info' };
  if (o.action === 'kept') return { label: 'kept (already there)', kind: 'info' };
  return { label: 'would upload', kind: 'info' };
}

export function emptyProfile(): CloudProfile {
  return { name: '', service: 's3', bucket: '', prefix: '', endpoint: null, region: null, accessKeyId: null, awsProfile: null, account: null, azureSecret: null };
}

/** `s3://bucket/prefix` or `az://container/prefix`, as the shell makes it. */
export function profileDestination(p: CloudProfile): string {
  const prefix = p.prefix.replace(/^\/+|\/+$/g, '');
  return `${p.service === 's3' ? 's3' : 'az'}://${p.bucket}${prefix ? `/${prefix}` : ''}`;
}

/** The form's faults by field (empty when it can be saved); the shell checks again. */
export function profileErrors(p: CloudProfile): Record<string, string> {
  const e: Record<string, string> = {};
  if (!/^[A-Za-z0-9 ._-]{1,64}$/.test(p.name)) e.name = 'Letters, digits, spaces, “-”, “_” and “.”';
  const what = p.service === 's3' ? 'bucket' : 'container';
  const dot = p.service === 's3' ? '.' : '';
  if (!new RegExp(`^[a-z0-9][a-z0-9${dot}-]{1,61}[a-z0-9]$`).test(p.bucket)) e.bucket = `A ${what} name: 3-63 lowercase letters, digits and hyphens`;
  if (p.endpoint && !/^https?:\/\/[^\s?#@]+$/.test(p.endpoint)) e.endpoint = 'http(s)://host[:port], without credentials';
  return e;
}

/** A profile with empty text fields as null, as the shell expects. */
export function cleanProfile(p: CloudProfile): CloudProfile {
  const opt = (s: string | null) => (s && s.trim() ? s.trim() : null);
  const s3 = p.service === 's3';
  return {
    name: p.name.trim(), service: p.service, bucket: p.bucket.trim(), prefix: p.prefix.trim(), endpoint: opt(p.endpoint),
    region: s3 ? opt(p.region) : null, accessKeyId: s3 ? opt(p.accessKeyId) : null, awsProfile: s3 ? opt(p.awsProfile) : null,
    account: s3 ? null : opt(p.account), azureSecret: s3 ? null : p.azureSecret,
  };
}

/** Where an export with this profile takes its credentials from (as the shell decides: the
 * keychain's secret with the profile's key id or account, else what the CLI would use). */
export function credentialsSource(e: ProfileEntry): string {
  const p = e.profile;
  const half = p.service === 's3' ? p.accessKeyId : p.account;
  if (e.hasSecret && half) {
    return p.service === 's3' ? `the keychain's secret for access key id ${half}` : `the keychain's ${p.azureSecret === 'sas' ? 'SAS' : 'account key'} for account ${half}`;
  }
  return p.service === 's3' ? `the environment or ~/.aws (profile ${p.awsProfile || 'default'})` : 'the Azure environment variables';
}
