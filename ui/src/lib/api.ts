// The only place that talks to the shell: one typed function per command.
import { Channel, convertFileSrc, invoke } from '@tauri-apps/api/core';
import type {
  Answered, AppInfo, Check, CommandError, Diagnostic, ExecutionDetail, ExecutionSummary, ListFilter,
  NewRule, PendingToken, RunMessage, RunStarted, WatchOverview, WatchRule, WorkflowEntry,
  CloudProfile, DesktopSettings, ExportMessage, ExportReport, ExportRequest, ExportStarted, ProfileEntry,
  SavedProfile, SettingsView, StoredEvent,
} from './types';

export const api = {
  appInfo: () => invoke<AppInfo>('app_info'),
  listWorkflows: () => invoke<WorkflowEntry[]>('list_workflows'),
  validateWorkflow: (text: string) => invoke<Diagnostic[]>('validate_workflow', { text }),
  saveWorkflow: (name: string, text: string) => invoke<WorkflowEntry>('save_workflow', { name, text }),
  startRun: (
    args: { paths: string[]; workflow: string | null; jobs: number | null; force: boolean; out: string | null },
    onMessage: (m: RunMessage) => void,
  ) => {
    const onProgress = new Channel<RunMessage>();
    onProgress.onmessage = onMessage;
    return invoke<RunStarted>('start_run', { ...args, onProgress });
  },
  cancelRun: (runId: string) => invoke<boolean>('cancel_run', { runId }),
  listExecutions: (filter: ListFilter) => invoke<ExecutionSummary[]>('list_executions', { filter }),
  executionDetail: (id: string) => invoke<ExecutionDetail>('execution_detail', { id }),
  pendingTasks: () => invoke<PendingToken[]>('pending_tasks'),
  answerTasks: (tokens: string[], approve: boolean, cause?: string) =>
    invoke<Answered[]>('answer_tasks', { tokens, approve, output: null, cause: cause ?? null }),
  watchRules: () => invoke<WatchOverview>('watch_rules'),
  watchAdd: (rule: NewRule) => invoke<WatchRule>('watch_add', { rule }),
  watchSetPaused: (id: number, paused: boolean) => invoke<WatchRule>('watch_set_paused', { id, paused }),
  watchRemove: (id: number) => invoke<void>('watch_remove', { id }),
  doctor: () => invoke<Check[]>('doctor'),
  pruneHistory: (days: number) => invoke<number>('prune_history', { days }),
  executionEvents: (id: string, offset: number, limit?: number) => invoke<StoredEvent[]>('execution_events', { id, offset, limit: limit ?? null }),
  getSettings: () => invoke<SettingsView>('get_settings'),
  setSettings: (settings: DesktopSettings) => invoke<DesktopSettings>('set_settings', { settings }),
  listProfiles: () => invoke<ProfileEntry[]>('list_profiles'),
  saveProfile: (profile: CloudProfile, secret: string | null) => invoke<SavedProfile>('save_profile', { profile, secret }),
  removeProfile: (name: string) => invoke<void>('remove_profile', { name }),
  exportPreview: (request: ExportRequest) => invoke<ExportReport>('export_preview', { request }),
  startExport: (request: ExportRequest, onMessage: (m: ExportMessage) => void) => {
    const onProgress = new Channel<ExportMessage>();
    onProgress.onmessage = onMessage;
    return invoke<ExportStarted>('start_export', { request, onProgress });
  },
  cancelExport: (exportId: string) => invoke<boolean>('cancel_export', { exportId }),
};

/** A local file as an image source (the shell allows only the files the UI was given). */
export function fileSrc(path: string): string {
  return convertFileSrc(path);
}

/** A readable message from whatever a command rejected with (`{code, message, diagnostics}`;
 * an invalid definition's message already lists every diagnostic). */
export function errorMessage(e: unknown): string {
  if (e && typeof e === 'object' && 'message' in e) return String((e as CommandError).message);
  return String(e);
}
