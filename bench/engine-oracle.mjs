// The aws-local-stepfunctions half of bench/engine.sh: runs one definition on one input RUNS
// times (default 1) in this process and prints {"seconds": [<run time>, ...], "ok": true} (or
// {"seconds", "error", "cause"}) as one JSON line. The first run is the cold one.
//
// Only the run is timed: node's start, loading the library and validating the definition are not.
// The library comes from tests/oracle (run `npm ci` there first).
//
// Usage: node bench/engine-oracle.mjs <definition.json> <input.json> [RUNS]

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const requireFromOracle = createRequire(join(repo, 'tests', 'oracle', 'package.json'));
const { StateMachine } = requireFromOracle('aws-local-stepfunctions');

const [definitionFile, inputFile, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 1);
if (!definitionFile || !inputFile) {
  process.stderr.write('usage: node bench/engine-oracle.mjs <definition.json> <input.json>\n');
  process.exit(2);
}
const definition = JSON.parse(readFileSync(definitionFile, 'utf8'));
const input = JSON.parse(readFileSync(inputFile, 'utf8'));

const machine = new StateMachine(definition, { validationOptions: { checkArn: false } });
const seconds = [];
let outcome = { ok: true };
for (let run = 0; run < runs && outcome.ok; run++) {
  const started = process.hrtime.bigint();
  try {
    await machine.run(input).result;
  } catch (e) {
    const err = e && e.name === 'ExecutionError' && e.cause ? e.cause : e;
    outcome = { error: String(err && err.name), cause: String(err && err.message) };
  }
  seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
}
process.stdout.write(`${JSON.stringify({ seconds, ...outcome })}\n`);
process.exit(outcome.ok ? 0 : 1);
