// SPDX-License-Identifier: Apache-2.0
//
// The dashboard's login (issue 12, auth.http_login) as a person meets it, in headless
// Chromium against the real sluice binary (no database: the overview tiles need none).
// A user is made with `sluice passwd`; the page must ask for a login instead of showing
// data, refuse a wrong password with a message, show live tiles after the right one
// (the session cookie is HttpOnly: the page's script cannot read it), and ask again after
// logging out. /health stays open throughout.
// Environment: SLUICE_BIN (default build/bin/sluice), CHROMIUM (default /usr/bin/chromium).
// Run through tests/browser/run.sh login.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, chromiumBin, repo, sleep, sluiceBin, waitFor } from './harness.mjs';


const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-browser-login-'));
const dataDir = path.join(tmp, 'data');
let sluice = null;
let browser = null;
let base = null;

process.on('exit', () => {
  if (sluice && sluice.exitCode === null && sluice.signalCode === null) sluice.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
});

before(async () => {
  const pw = path.join(tmp, 'passwd');
  execFileSync(sluiceBin, ['passwd', '-c', '-b', pw, 'operator', 'correct horse'], { stdio: 'ignore' });
  fs.mkdirSync(dataDir);
  sluice = spawn(sluiceBin, ['serve', '--mqtt-port', '0', '--http-port', '0', '--bind', '127.0.0.1',
    '--data-dir', dataDir, '--password-file', pw, '--http-login', '--web-root', path.join(repo, 'web')],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await waitFor('http.port', () => {
    const text = fs.readFileSync(path.join(dataDir, 'http.port'), 'utf8').trim();
    return text ? Number(text) : 0;
  });
  base = `http://127.0.0.1:${port}`;
  browser = await chromium.launch({ executablePath: chromiumBin, args: ['--no-sandbox'] });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (sluice && sluice.exitCode === null) {
    sluice.kill('SIGTERM');
    let timer;
    await Promise.race([new Promise((r) => sluice.once('exit', r)), new Promise((r) => { timer = setTimeout(r, 10000); })]);
    clearTimeout(timer);
  }
});

test('the dashboard asks for a login, refuses a wrong password and shows data after the right one', { timeout: 60000 }, async () => {
  const health = await fetch(`${base}/health`);
  assert.equal(health.status, 200, '/health stays open');
  assert.equal((await fetch(`${base}/api/overview`)).status, 401, 'the API is closed without a login');

  const page = await browser.newPage();
  await page.goto(base + '/', { timeout: 15000 });
  const dialog = page.locator('#login');
  await dialog.waitFor({ state: 'visible', timeout: 15000 });
  assert.equal(await page.locator('#tile-connections .value').textContent(), '–', 'no data before the login');

  await page.fill('#login-user', 'operator');
  await page.fill('#login-password', 'wrong');
  await page.click('#login-submit');
  await waitFor('the refusal message', async () => (await page.locator('#login-error').textContent()).includes('wrong'));
  assert.ok(await dialog.isVisible(), 'the form stays up after a wrong password');

  await page.fill('#login-password', 'correct horse');
  await page.click('#login-submit');
  await dialog.waitFor({ state: 'hidden', timeout: 15000 });
  await waitFor('live tiles', async () => (await page.locator('#status').getAttribute('data-state')) === 'live');
  assert.match(await page.locator('#tile-connections .value').textContent(), /^\d+$/);
  assert.equal(await page.locator('#user').textContent(), 'operator');
  assert.equal(await page.evaluate(() => document.cookie), '', 'the session cookie is HttpOnly');

  await page.click('#logout');
  await dialog.waitFor({ state: 'visible', timeout: 15000 });
  await page.close();
});

test('sluice stops cleanly', { timeout: 20000 }, async () => {
  const exited = new Promise((r) => sluice.once('exit', (code, signal) => r({ code, signal })));
  sluice.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0);
});
