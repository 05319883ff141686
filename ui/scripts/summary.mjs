// Prints a Vitest JSON report as one cargo-style line ("test result: ok. N passed; N failed;
// N ignored; ...") so scripts/test.sh adds the UI suites to its total. A missing report (the
// run crashed before writing it) counts as one failure.
import { existsSync, readFileSync } from 'node:fs';

const [file, name] = process.argv.slice(2);
let passed = 0;
let failed = 1;
let skipped = 0;
if (file && existsSync(file)) {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed = r.numPassedTests ?? 0;
  failed = (r.numFailedTests ?? 0) + (r.success === false && !r.numFailedTests ? 1 : 0);
  skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
}
console.log(`test result: ${failed ? 'FAILED' : 'ok'}. ${passed} passed; ${failed} failed; ${skipped} ignored; 0 measured; 0 filtered out (${name})`);
process.exit(failed ? 1 : 0);
