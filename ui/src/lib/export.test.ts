import { describe, expect, it } from 'vitest';
import { applyExportMessage, cleanProfile, credentialsSource, emptyProfile, exportPercent, exportSummary, newExport, objectStatus, profileDestination, profileErrors } from './export';
import type { ExportReport } from './types';

const report = (over: Partial<ExportReport> = {}): ExportReport => ({
  id: 'x', destination: 's3://photos', dryRun: false, total: 3, uploaded: 2, unchanged: 0, kept: 0, failed: 1,
  error: { error: 'Pixelflow.SyncFailed', cause: 'gone' },
  objects: [
    { source: '/o/a.jpg', key: 'web/a.jpg', executionId: 'e', action: 'uploaded', etag: '"1"', error: null },
    { source: '/o/b.jpg', key: 'web/b.jpg', executionId: 'e', action: 'uploaded', etag: '"2"', error: null },
    { source: '/o/c.jpg', key: 'web/c.jpg', executionId: 'e', action: null, etag: null, error: { error: 'Pixelflow.SyncFailed', cause: 'gone' } },
  ],
  ...over,
});

describe('export reduction', () => {
  it('goes from planned to finished with per-object results', () => {
    let s = newExport('export-1');
    expect(exportPercent(s)).toBe(0);
    s = applyExportMessage(s, { kind: 'planned', total: 3 });
    expect(s.phase).toBe('running');
    s = applyExportMessage(s, { kind: 'progress', done: 2, total: 3, bytes: 2048, objects: [{ key: 'web/a.jpg', unchanged: false }, { key: 'web/b.jpg', unchanged: true }] });
    expect(exportPercent(s)).toBe(67);
    expect(s.recent.map((o) => o.key)).toEqual(['web/a.jpg', 'web/b.jpg']);
    s = applyExportMessage(s, { kind: 'finished', report: report() });
    expect(s.phase).toBe('finished');
    expect(exportPercent(s)).toBe(100);
    expect(s.error).toBe('Pixelflow.SyncFailed: gone');
    expect(exportSummary(s.report!)).toBe('2 uploaded, 1 failed');
    expect(s.report!.objects.map((o) => objectStatus(o).kind)).toEqual(['ok', 'ok', 'fail']);
  });

  it('fails when nothing went up, and on a failed message', () => {
    const none = applyExportMessage(newExport('e'), { kind: 'finished', report: report({ uploaded: 0, failed: 3 }) });
    expect(none.phase).toBe('failed');
    const failed = applyExportMessage(newExport('e'), { kind: 'failed', message: 'no execution' });
    expect([failed.phase, failed.error]).toEqual(['failed', 'no execution']);
  });

  it('keeps a bounded list of recent objects', () => {
    let s = applyExportMessage(newExport('e'), { kind: 'planned', total: 1000 });
    for (let i = 0; i < 5; i++) {
      s = applyExportMessage(s, { kind: 'progress', done: (i + 1) * 100, total: 1000, bytes: 0, objects: Array.from({ length: 100 }, (_, j) => ({ key: `k${i * 100 + j}`, unchanged: false })) });
    }
    expect(s.recent.length).toBe(200);
    expect(s.recent.at(-1)?.key).toBe('k499');
  });

  it('summarises a dry run as what would be sent', () => {
    expect(exportSummary(report({ dryRun: true, uploaded: 0, failed: 0, error: null }))).toBe('3 to send');
    expect(objectStatus({ source: 's', key: 'k', executionId: 'e', action: null, etag: null, error: null }).label).toBe('would upload');
  });
});

describe('cloud profile form', () => {
  it('names the fields that are wrong', () => {
    const p = { ...emptyProfile(), name: 'work', bucket: 'photos' };
    expect(profileErrors(p)).toEqual({});
    expect(Object.keys(profileErrors({ ...p, name: '../x', bucket: 'No_Such', endpoint: 'http://u:p@host' })).sort()).toEqual(['bucket', 'endpoint', 'name']);
    // Dots are S3-only.
    expect(profileErrors({ ...p, bucket: 'my.bucket' })).toEqual({});
    expect(profileErrors({ ...p, service: 'azure', bucket: 'my.bucket' }).bucket).toContain('container');
  });

  it('makes the destination and drops the other service’s fields', () => {
    const p = { ...emptyProfile(), name: ' work ', bucket: 'photos', prefix: '/web/{variant}/', endpoint: ' ', region: 'eu-west-1', account: 'acme' };
    expect(profileDestination(p)).toBe('s3://photos/web/{variant}');
    const clean = cleanProfile(p);
    expect([clean.name, clean.endpoint, clean.region, clean.account]).toEqual(['work', null, 'eu-west-1', null]);
    expect(profileDestination({ ...p, service: 'azure', prefix: '' })).toBe('az://photos');
    expect(cleanProfile({ ...p, service: 'azure' }).region).toBeNull();
  });
});

describe('credentials of a profile', () => {
  const entry = (over: object, hasSecret: boolean | null) => ({
    profile: { ...emptyProfile(), name: 'p', bucket: 'photos', ...over },
    destination: 's3://photos',
    hasSecret,
    keychainNote: null,
  });
  it('says the keychain secret is used only with its other half', () => {
    expect(credentialsSource(entry({ service: 's3', accessKeyId: 'AKID' }, true))).toContain('access key id AKID');
    expect(credentialsSource(entry({ service: 's3', accessKeyId: null }, true))).toContain('~/.aws (profile default)');
    expect(credentialsSource(entry({ service: 's3', accessKeyId: 'AKID', awsProfile: 'work' }, null))).toContain('~/.aws (profile work)');
    expect(credentialsSource(entry({ service: 'azure', account: 'acme', azureSecret: 'sas' }, true))).toBe("the keychain's SAS for account acme");
    expect(credentialsSource(entry({ service: 'azure', account: 'acme' }, false))).toBe('the Azure environment variables');
  });
});
