// SPDX-License-Identifier: Apache-2.0
//
// What every browser test here shares: where the repository, the sluice binary and
// Chromium are, playwright-core from tests/node_modules, and bounded waiting.
// Environment: SLUICE_BIN (default build/bin/sluice), CHROMIUM (default /usr/bin/chromium).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'package.json'));

export const { chromium } = require('playwright-core');
export const repo = path.resolve(here, '..', '..');
export const sluiceBin = process.env.SLUICE_BIN || path.join(repo, 'build', 'bin', 'sluice');
export const chromiumBin = process.env.CHROMIUM || '/usr/bin/chromium';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() until it returns something truthy (returned) or timeoutMs pass; a throw counts
// as "not yet". The error names `what` and the last value or error seen.
export async function waitFor(what, fn, timeoutMs = 20000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}
