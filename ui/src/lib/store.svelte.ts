// App-wide state: the views, what the shell told us at start, the runs of this session.
import { api, errorMessage } from './api';
import { applyRunMessage, newRun, type RunState } from './run';
import type { AppInfo, RunMessage, WorkflowEntry } from './types';

export type View = 'run' | 'history' | 'export' | 'review' | 'watch' | 'workflows' | 'settings';
export const VIEWS: { id: View; label: string; icon: string }[] = [
  { id: 'run', label: 'Run', icon: '⇪' },
  { id: 'history', label: 'History', icon: '☰' },
  { id: 'export', label: 'Export', icon: '⇧' },
  { id: 'review', label: 'Review', icon: '✓' },
  { id: 'watch', label: 'Watch folders', icon: '◎' },
  { id: 'workflows', label: 'Workflows', icon: '⎇' },
  { id: 'settings', label: 'Settings', icon: '⚙' },
];

export type Theme = 'system' | 'light' | 'dark';
interface Toast { id: number; text: string; kind: 'ok' | 'fail' | 'info' }

const saved = <T>(key: string, fallback: T): T => {
  try {
    const v = localStorage.getItem(`pixelflow.${key}`);
    return v == null ? fallback : (JSON.parse(v) as T);
  } catch {
    return fallback;
  }
};
const save = (key: string, v: unknown) => {
  try {
    localStorage.setItem(`pixelflow.${key}`, JSON.stringify(v));
  } catch {
    /* private mode: settings last for the session */
  }
};

class Store {
  view = $state<View>('run');
  info = $state<AppInfo | null>(null);
  loadError = $state<string | null>(null);
  workflows = $state<WorkflowEntry[]>([]);
  /** The workflow the drop zone runs (a bundled name or a saved file's path). */
  workflow = $state<string>('');
  /** The execution History shows. */
  selectedExecution = $state<string | null>(null);
  /** The executions the Export view sends. */
  exportSelection = $state<string[]>([]);
  /** This session's batches, newest first. */
  runs = $state.raw<RunState[]>([]);
  toasts = $state<Toast[]>([]);
  theme = $state<Theme>(saved<Theme>('theme', 'system'));
  jobs = $state<number | null>(saved<number | null>('jobs', null));
  out = $state<string>(saved('out', ''));
  force = $state<boolean>(false);
  pendingReviews = $state(0);
  #toastId = 0;

  async load() {
    try {
      const [info, workflows] = await Promise.all([api.appInfo(), api.listWorkflows()]);
      this.info = info;
      this.workflows = workflows;
      if (!this.workflow || !workflows.some((w) => w.id === this.workflow)) this.workflow = info.defaultWorkflow;
    } catch (e) {
      this.loadError = errorMessage(e);
    }
  }

  async reloadWorkflows() {
    this.workflows = await api.listWorkflows();
  }

  setTheme(t: Theme) {
    this.theme = t;
    save('theme', t);
  }

  setDefaults(jobs: number | null, out: string) {
    this.jobs = jobs;
    this.out = out;
    save('jobs', jobs);
    save('out', out);
  }

  toast(text: string, kind: Toast['kind'] = 'info') {
    const id = ++this.#toastId;
    this.toasts.push({ id, text, kind });
    setTimeout(() => (this.toasts = this.toasts.filter((t) => t.id !== id)), kind === 'fail' ? 8000 : 4000);
  }

  /** Opens the Export view with these executions chosen. */
  exportExecutions(ids: string[]) {
    this.exportSelection = [...new Set(ids)];
    this.view = 'export';
  }

  openExecution(id: string) {
    this.selectedExecution = id;
    this.view = 'history';
  }

  /** What a drop (or the paths field) does: starts a batch of the chosen workflow. */
  async drop(paths: string[]): Promise<string | null> {
    if (!paths.length) return null;
    const workflow = this.workflow || this.info?.defaultWorkflow || null;
    const early: RunMessage[] = [];
    let runId: string | null = null;
    const onMessage = (m: RunMessage) => {
      if (runId === null) early.push(m);
      else this.#apply(runId, m);
    };
    try {
      const started = await api.startRun({ paths, workflow, jobs: this.jobs, force: this.force, out: this.out || null }, onMessage);
      const name = this.workflows.find((w) => w.id === workflow)?.name ?? workflow ?? '';
      let run = newRun(started.runId, name, started.inputs);
      for (const m of early) run = applyRunMessage(run, m, Date.now());
      runId = started.runId;
      this.runs = [run, ...this.runs];
      this.view = 'run';
      return started.runId;
    } catch (e) {
      this.toast(errorMessage(e), 'fail');
      return null;
    }
  }

  async cancel(runId: string) {
    await api.cancelRun(runId);
  }

  #apply(runId: string, m: RunMessage) {
    const i = this.runs.findIndex((r) => r.runId === runId);
    if (i < 0) return;
    const next = applyRunMessage(this.runs[i], m, Date.now());
    this.runs = this.runs.map((r, j) => (j === i ? next : r));
    if (m.kind === 'finished') {
      const failed = next.failed;
      const done = next.done - failed;
      this.toast(
        `${next.workflow}: ${done} processed${next.cached ? `, ${next.cached} already done` : ''}${failed ? `, ${failed} failed` : ''}`,
        failed ? 'fail' : 'ok',
      );
    } else if (m.kind === 'failed') {
      this.toast(m.message, 'fail');
    }
  }
}

export const store = new Store();
