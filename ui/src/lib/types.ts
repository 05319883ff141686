// The DTOs of the shell's commands (src-tauri/src/commands.rs), camelCase as serde writes them.

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
export const STATUSES: ExecutionStatus[] = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'];

export interface Diagnostic {
  pointer: string;
  message: string;
}

export interface CommandError {
  code: 'invalid' | 'notFound' | 'busy' | 'io' | 'internal';
  message: string;
  diagnostics: Diagnostic[];
}

export interface AppInfo {
  version: string;
  dataDir: string;
  outputDir: string;
  watchDir: string;
  defaultWorkflow: string;
  jobs: number;
  watchServiceNote: string | null;
}

export interface WorkflowEntry {
  name: string;
  id: string;
  bundled: boolean;
  text: string;
}

export interface InputFile {
  path: string;
  bytes: number;
}

export interface RunStarted {
  runId: string;
  inputs: InputFile[];
}

export type ItemReport = { path: string; bytes: number } & (
  | { status: 'processed'; output: unknown }
  | { status: 'cached'; output: unknown; executionId: string }
  | { status: 'failed'; error: string; cause: string }
  | { status: 'pending' }
);

export interface RunReport {
  executionId: string | null;
  items: ItemReport[];
  bytesIn: number;
  bytesOut: number;
  elapsedMs: number;
  interrupted: boolean;
}

export type RunMessage =
  | { kind: 'started'; toRun: number; cached: number }
  | { kind: 'progress'; executionId: string | null; done: number; failed: number; toRun: number; items: { path: string; ok: boolean }[] }
  | { kind: 'finished'; report: RunReport }
  | { kind: 'failed'; message: string };

export interface ExecutionSummary {
  id: string;
  name: string;
  workflowName: string;
  status: ExecutionStatus;
  startedAtMs: number;
  stoppedAtMs: number | null;
  error: string | null;
}

export interface ExecutionRecord extends ExecutionSummary {
  workflowHash: string;
  definition: string;
  input: unknown;
  output: unknown | null;
  cause: string | null;
}

export interface StoredEvent {
  seq: number;
  timestampMs: number;
  kind: string;
  state: string | null;
  key: string;
  detail: Record<string, unknown>;
}

export interface FileInfo {
  path: string;
  bytes: number | null;
}

export interface ImageFiles {
  input: FileInfo;
  outputs: FileInfo[];
}

export interface ExecutionDetail {
  /** Its `input` or `output` is null when too large to send whole: see the previews. */
  execution: ExecutionRecord;
  inputPreview?: Preview | null;
  outputPreview?: Preview | null;
  /** The first events; `execution_events` pages on. */
  events: StoredEvent[];
  /** How many events the execution recorded. */
  eventsTotal: number;
  /** Each Map state's iteration counts over all the events, loaded or not. */
  mapProgress: MapProgress[];
  files: ImageFiles[];
}

/** The start of a payload too large to send whole (pretty-printed), and the size of the whole. */
export interface Preview {
  text: string;
  bytes: number;
}

export interface MapProgress {
  state: string;
  total: number;
  started: number;
  succeeded: number;
  failed: number;
}

export interface PendingToken {
  token: string;
  executionId: string;
  key: string;
  state: string;
  payload: unknown;
  createdAtMs: number;
}

export interface Answered {
  token: string;
  executionId: string | null;
  error: string | null;
}

export interface WatchRule {
  id: number;
  folder: string;
  recursive: boolean;
  include: string[];
  exclude: string[];
  workflow: string;
  output: string;
  concurrency: number;
  onSuccess: 'leave' | 'move';
  onFailure: 'leave' | 'move';
  paused: boolean;
  lastError: string | null;
  createdAtMs: number;
}

export interface RuleStatus {
  id: number;
  folder: string | null;
  state: 'active' | 'paused' | 'error' | 'stopped';
  lastError: string | null;
  servicePid: number | null;
  queued: number;
  inFlight: number;
  processed: number;
  failed: number;
}

export interface WatchOverview {
  rules: WatchRule[];
  statuses: RuleStatus[];
  defaultFolder: string;
}

export interface NewRule {
  folder: string;
  recursive: boolean;
  include: string[];
  exclude: string[];
  workflow: string | null;
  out: string | null;
  jobs: number | null;
  onSuccess: 'leave' | 'move';
  onFailure: 'leave' | 'move';
}

export interface Check {
  part: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
}

export interface ListFilter {
  status?: string;
  workflow?: string;
  since?: string;
  text?: string;
  limit?: number;
}

export type Device = 'auto' | 'gpu' | 'cpu';

export interface DesktopSettings {
  device: Device;
}

export interface SettingsView {
  settings: DesktopSettings;
  /** The `gpu` line of doctor: the adapter in use. */
  gpu: Check | null;
}

export type CloudService = 's3' | 'azure';

/** A cloud profile's settings: never its secret (that is in the OS keychain). */
export interface CloudProfile {
  name: string;
  service: CloudService;
  bucket: string;
  prefix: string;
  endpoint: string | null;
  region: string | null;
  accessKeyId: string | null;
  awsProfile: string | null;
  account: string | null;
  azureSecret: 'key' | 'sas' | null;
}

export interface ProfileEntry {
  profile: CloudProfile;
  destination: string;
  /** Whether the keychain holds its secret (null: the keychain could not be asked). */
  hasSecret: boolean | null;
  keychainNote: string | null;
}

export interface SavedProfile {
  entry: ProfileEntry;
  secretStored: boolean;
}

export type Overwrite = 'always' | 'never' | 'ifChanged';

export interface ExportRequest {
  executions: string[];
  profile: string | null;
  destination: string | null;
  dryRun: boolean;
  overwrite: Overwrite | null;
}

export interface Failure {
  error: string;
  cause: string;
}

export interface ExportItem {
  source: string;
  key: string;
  executionId: string;
  action: 'uploaded' | 'unchanged' | 'kept' | null;
  etag: string | null;
  error: Failure | null;
}

export interface ExportReport {
  id: string | null;
  destination: string;
  dryRun: boolean;
  total: number;
  uploaded: number;
  unchanged: number;
  kept: number;
  failed: number;
  error: Failure | null;
  objects: ExportItem[];
}

export type ExportMessage =
  | { kind: 'planned'; total: number }
  | { kind: 'progress'; done: number; total: number; bytes: number; objects: { key: string; unchanged: boolean }[] }
  | { kind: 'finished'; report: ExportReport }
  | { kind: 'failed'; message: string };

export interface ExportStarted {
  exportId: string;
}
