// A minimal W3C WebDriver client (fetch), enough to drive the real app through tauri-driver.

export class Session {
  constructor(readonly base: string, readonly id: string) {}

  static async create(base: string, application: string): Promise<Session> {
    const res = await call(base, 'POST', '/session', { capabilities: { alwaysMatch: { 'tauri:options': { application } } } });
    const id = (res as { sessionId: string }).sessionId;
    if (!id) throw new Error(`no WebDriver session: ${JSON.stringify(res)}`);
    return new Session(base, id);
  }

  /** Runs `script` (a function body; `arguments` holds `args`) in the page and returns its value. */
  execute<T>(script: string, ...args: unknown[]): Promise<T> {
    return call(this.base, 'POST', `/session/${this.id}/execute/sync`, { script, args }) as Promise<T>;
  }

  /** A PNG screenshot of the window. */
  async screenshot(): Promise<Buffer> {
    return Buffer.from((await call(this.base, 'GET', `/session/${this.id}/screenshot`)) as string, 'base64');
  }

  /** Waits until `script` returns something truthy; returns it. */
  async waitFor<T>(what: string, script: string, timeoutMs = 60_000, ...args: unknown[]): Promise<T> {
    const end = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        last = await this.execute<T>(script, ...args);
        if (last) return last as T;
      } catch (e) {
        last = e;
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${String(last)})`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async close(): Promise<void> {
    await call(this.base, 'DELETE', `/session/${this.id}`).catch(() => undefined);
  }
}

async function call(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(base + path, {
    method,
    headers: body ? { 'content-type': 'application/json' } : undefined,
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = (await res.json().catch(() => ({}))) as { value?: { error?: string; message?: string } & unknown };
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.value?.error ?? ''} ${json.value?.message ?? ''}`);
  return json.value;
}
