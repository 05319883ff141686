// The reference interpreter of the differential fidelity tests (tests/fidelity.rs).
//
// Reads a JSON array of cases `[{definition, input}]` on stdin, runs every case with
// aws-local-stepfunctions, and prints one JSON array on stdout with a result per case, in order:
//
//   {"ok": <output>}                 the execution succeeded
//   {"error": <name>, "cause": <c>}  the execution failed (`cause` is the error's message)
//   {"invalid": <message>}           the definition was refused by the validator
//   {"timeout": <ms>}                the case ran longer than the per-case limit and was aborted
//
// A case that throws anything unexpected is reported as an error of that case; it never stops
// the others. Wait states and Retry intervals are overridden to take no time, and every case runs
// with the same fixed context object (see CONTEXT), matching `pixelflow_engine::run_in_memory`.
//
// Usage: node tests/oracle/oracle.mjs < cases.json > results.json
//   ORACLE_CONCURRENCY (default 8) cases run at once; ORACLE_TIMEOUT_MS (default 10000) per case.

import { StateMachine } from 'aws-local-stepfunctions';

const CONCURRENCY = Math.max(1, Number(process.env.ORACLE_CONCURRENCY ?? 8));
const TIMEOUT_MS = Math.max(1, Number(process.env.ORACLE_TIMEOUT_MS ?? 10000));

// The parts of the context object that run_in_memory fills the same way. aws-local-stepfunctions
// sets Execution.Input and Execution.StartTime itself; it has no State.* or RetryCount.
const CONTEXT = {
  Execution: {
    Id: 'arn:pixelflow:execution:local:in-memory',
    Name: 'in-memory',
    RedriveCount: 0,
  },
  StateMachine: { Id: 'local', Name: 'local' },
};

// A timed-out or aborted execution rejects promises nobody awaits any more; they must not take
// the process down.
process.on('unhandledRejection', () => {});

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** Every state (at any nesting depth) by name, to override its waits and retry intervals. */
function collectOverrides(definition, overrides) {
  const states = definition && typeof definition === 'object' ? definition.States : undefined;
  if (!states || typeof states !== 'object') return overrides;
  for (const [name, state] of Object.entries(states)) {
    if (!state || typeof state !== 'object') continue;
    if (state.Type === 'Wait') overrides.waitTimeOverrides[name] = 0;
    if (Array.isArray(state.Retry)) overrides.retryIntervalOverrides[name] = 0;
    if (Array.isArray(state.Branches)) state.Branches.forEach((b) => collectOverrides(b, overrides));
    if (state.ItemProcessor) collectOverrides(state.ItemProcessor, overrides);
    if (state.Iterator) collectOverrides(state.Iterator, overrides);
  }
  return overrides;
}

function describeError(err) {
  // ExecutionError wraps the state's error in `cause`; that one carries the ASL error name
  // (`name`) and the cause (`message`).
  if (err && err.name === 'ExecutionError' && err.cause) err = err.cause;
  if (err && err.name === 'ExecutionTimeoutError') return { error: 'States.Timeout', cause: String(err.message) };
  const name = err && typeof err.name === 'string' ? err.name : 'Error';
  const cause = err && err.message !== undefined ? String(err.message) : String(err);
  return { error: name, cause };
}

async function runCase(c) {
  let machine;
  try {
    machine = new StateMachine(c.definition, { validationOptions: { checkArn: false } });
  } catch (e) {
    return { invalid: String(e && e.message ? e.message : e) };
  }
  let execution;
  let timer;
  try {
    const overrides = collectOverrides(c.definition, { waitTimeOverrides: {}, retryIntervalOverrides: {} });
    execution = machine.run(c.input, { overrides, context: structuredClone(CONTEXT) });
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve({ timeout: TIMEOUT_MS }), TIMEOUT_MS);
    });
    const outcome = await Promise.race([
      execution.result.then((output) => ({ ok: output === undefined ? null : output })),
      timeout,
    ]);
    if (outcome.timeout !== undefined) {
      try {
        execution.abort();
      } catch {
        // already settled
      }
    }
    return outcome;
  } catch (e) {
    return describeError(e);
  } finally {
    clearTimeout(timer);
  }
}

async function main() {
  const text = await readStdin();
  const cases = JSON.parse(text);
  if (!Array.isArray(cases)) throw new Error('stdin must hold a JSON array of {definition, input}');
  const results = new Array(cases.length);
  let next = 0;
  async function worker() {
    while (next < cases.length) {
      const i = next++;
      try {
        results[i] = await runCase(cases[i]);
      } catch (e) {
        results[i] = describeError(e);
      }
      // A result that JSON cannot carry (undefined, a cycle) must not spoil the whole array.
      try {
        JSON.stringify(results[i]);
      } catch (e) {
        results[i] = { error: 'OracleCrash', cause: `unserializable result: ${e}` };
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, cases.length) }, worker));
  process.stdout.write(JSON.stringify(results));
  process.stdout.write('\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`oracle: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  },
);
