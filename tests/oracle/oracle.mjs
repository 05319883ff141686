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
// the others. Every case runs with the same fixed context object (see CONTEXT), matching
// `pixelflow_engine::run_in_memory`, and timers fire at once (see below), so Wait states and
// Retry intervals take no time.
//
// Usage: node tests/oracle/oracle.mjs < cases.json > results.json
//   ORACLE_CONCURRENCY (default 8) cases run at once; ORACLE_TIMEOUT_MS (default 10000) per case.

import { createRequire } from 'node:module';
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

// Speed: asl-validator builds a new Ajv instance and compiles the whole ASL JSON schema for every
// definition it checks (about 50 ms, most of the oracle's time). Its options are the same for
// every case here, so one instance serves them all; the validation itself is unchanged.
{
  const requireFromValidator = createRequire(createRequire(import.meta.url).resolve('asl-validator'));
  const ajvModule = requireFromValidator('ajv');
  const RealAjv = ajvModule.default;
  let shared = null;
  let reuse = null;
  // The first construction is the real one; later ones get the same instance, with the set-up
  // calls (formats, keywords) that it already had made no-ops.
  const setup = new Set(['addFormat', 'addKeyword', 'addVocabulary', 'addSchema', 'addMetaSchema']);
  ajvModule.default = function SharedAjv(options) {
    if (shared === null) {
      shared = new RealAjv(options);
      reuse = new Proxy(shared, {
        get(target, prop) {
          if (setup.has(prop)) return () => reuse;
          const value = Reflect.get(target, prop, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
      return shared;
    }
    return reuse;
  };
}

// Time: every timer of the library fires at once, so Wait states and Retry intervals take no
// time while still evaluating their fields (SecondsPath, TimestampPath) as they would. The
// engine under test runs on a manual clock, which has the same effect. A definition's
// TimeoutSeconds is therefore meaningless here; the fidelity cases do not use it.
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = (fn, _ms, ...args) => realSetTimeout(fn, 0, ...args);

// A timed-out or aborted execution rejects promises nobody awaits any more; they must not take
// the process down.
process.on('unhandledRejection', () => {});

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
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
    execution = machine.run(c.input, { context: structuredClone(CONTEXT) });
    const timeout = new Promise((resolve) => {
      timer = realSetTimeout(() => resolve({ timeout: TIMEOUT_MS }), TIMEOUT_MS);
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
  // Exit only once the output is flushed: a pipe takes it asynchronously.
  await new Promise((resolve) => process.stdout.write(`${JSON.stringify(results)}\n`, resolve));
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`oracle: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  },
);
