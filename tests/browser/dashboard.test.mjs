// SPDX-License-Identifier: Apache-2.0
//
// The dashboard as a person sees it: a private PostgreSQL, the real sluice binary,
// readings published with mosquitto_pub, and headless Chromium (Debian's, driven by
// playwright-core) looking at the page. It checks that the tiles count the messages,
// the device shows up and its chart draws, the dead letter is listed, the cluster panel
// lists the partitions with their owner and lag, and that stopping the database makes the
// bus lag visible (amber) before it recovers to zero.
// Environment: SLUICE_BIN (default build/bin/sluice), CHROMIUM (default /usr/bin/chromium),
// SCREENSHOT (default /tmp/dashboard.png). Run through tests/browser/run.sh.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, chromiumBin, repo, sleep, sluiceBin, waitFor } from './harness.mjs';

const screenshot = process.env.SCREENSHOT || '/tmp/dashboard.png';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-browser-'));
fs.chmodSync(tmp, 0o755);  // PostgreSQL runs as `postgres` under root and must traverse it
const pgDir = path.join(tmp, 'pg');
const dataDir = path.join(tmp, 'data');
let sluice = null;
let browser = null;
let cleaned = false;

function pgStart() {
  return execFileSync(path.join(repo, 'scripts', 'pg-start'), [pgDir], { encoding: 'utf8' }).trim();
}

function pgStop() {
  spawnSync(path.join(repo, 'scripts', 'pg-stop'), [pgDir], { stdio: 'ignore' });
}

function cleanupSync() {
  if (cleaned) return;
  cleaned = true;
  if (sluice && sluice.exitCode === null) sluice.kill('SIGKILL');
  pgStop();
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanupSync);

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (sluice && sluice.exitCode === null) {
    sluice.kill('SIGTERM');
    let timer;
    await Promise.race([new Promise((r) => sluice.once('exit', r)),
      new Promise((r) => { timer = setTimeout(r, 10000); })]);
    clearTimeout(timer);  // a pending timer would keep Node running for its full 10 s
  }
  if (sluice && sluice.exitCode === null && sluice.signalCode === null) sluice.kill('SIGKILL');
  cleanupSync();
});

function publish(port, lines) {
  const r = spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-q', '1', '-i', 'browser-test',
    '-t', 'devices/press-7/telemetry', '-l'], { input: lines.join('\n') + '\n', encoding: 'utf8', timeout: 15000 });
  assert.equal(r.status, 0, `mosquitto_pub failed: ${r.stderr}`);
}

async function overview(httpPort) {
  const res = await fetch(`http://127.0.0.1:${httpPort}/api/overview`);
  return res.json();
}

test('dashboard shows traffic, devices, a chart, dead letters and lag', { timeout: 85000 }, async () => {
  assert.ok(fs.existsSync(sluiceBin), `sluice binary not found at ${sluiceBin} (set SLUICE_BIN)`);
  assert.ok(fs.existsSync(chromiumBin), `chromium not found at ${chromiumBin} (apt-get install chromium)`);
  const dbUrl = pgStart();

  const log = fs.openSync(path.join(tmp, 'sluice.log'), 'w');
  sluice = spawn(sluiceBin, ['serve', '--bind', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0', '--threads', '1',
    '--data-dir', dataDir, '--db', dbUrl, '--web-root', path.join(repo, 'web')], { stdio: ['ignore', log, log] });
  const sluiceLog = () => fs.readFileSync(path.join(tmp, 'sluice.log'), 'utf8').split('\n').slice(-30).join('\n');
  try {
    const readPort = (name) => Number(fs.readFileSync(path.join(dataDir, name), 'utf8').trim());
    const mqttPort = await waitFor('mqtt.port', () => fs.existsSync(path.join(dataDir, 'mqtt.port')) && readPort('mqtt.port'));
    const httpPort = await waitFor('http.port', () => fs.existsSync(path.join(dataDir, 'http.port')) && readPort('http.port'));
    await waitFor('the pipeline to reach the database', async () => (await overview(httpPort)).database_up === true, 30000);

    // Ten readings one minute apart over the last ten minutes, then one that cannot decode.
    const now = Date.now();
    const readings = [];
    for (let i = 0; i < 10; i++) {
      readings.push(JSON.stringify({ ts: now - (10 - i) * 60000, temperature: 70 + 2 * Math.sin(i / 2) }));
    }
    publish(mqttPort, readings);
    publish(mqttPort, ['this is not a payload {']);
    await waitFor('11 messages in and 10 rows stored', async () => {
      const o = await overview(httpPort);
      return o.messages_in >= 11 && o.rows >= 10 && o.dead_letters >= 1 && o.lag_messages === 0;
    });

    browser = await chromium.launch({
      executablePath: chromiumBin,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // A low amber threshold for lag so the database outage below must colour the tile.
    await page.goto(`http://127.0.0.1:${httpPort}/?lag_messages=2,100000`);

    // Tiles: the message total and a live status.
    await page.waitForFunction(() => Number(document.querySelector('#tile-messages-in').dataset.value) >= 11);
    assert.match(await page.textContent('#tile-messages-in .sub'), /total 11/);
    assert.match(await page.textContent('#tile-rows .sub'), /total 10/);
    assert.equal(await page.textContent('#tile-database .value'), 'up');
    assert.equal(await page.textContent('#tile-lag-messages .value'), '0');
    assert.equal(await page.getAttribute('#tile-lag-messages', 'data-level'), 'ok');
    assert.match(await page.textContent('#tile-lag-seconds .value'), /^\d+\.\d s$/);
    assert.equal(await page.getAttribute('#status', 'data-state'), 'live');

    // The device appears; selecting it draws the chart.
    const row = page.locator('#devices tbody tr[data-key="press-7"]');
    await row.waitFor({ timeout: 10000 });
    await row.click();
    await page.waitForFunction(() => Number(document.querySelector('#chart').dataset.points) === 10, null,
      { timeout: 10000 });
    assert.equal(await page.inputValue('#chart-metric'), 'temperature');
    const drawn = await page.evaluate(() => {
      const c = document.querySelector('#chart');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let line = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i + 2] > 200 && d[i] < 140) line++;
      return line;
    });
    assert.ok(drawn > 500, `chart looks blank (${drawn} series pixels)`);

    // The undecodable payload is listed as a dead letter, with its text.
    await page.waitForFunction(() => document.querySelector('#dead-letters tbody').textContent.includes('this is not a payload'));
    // The cluster panel, from /api/cluster: with the WAL this node owns every partition,
    // and with everything stored each partition's lag is 0.
    const cluster = await (await fetch(`http://127.0.0.1:${httpPort}/api/cluster`)).json();
    assert.equal(cluster.bus, 'wal');
    assert.ok(cluster.partitions.length >= 1, JSON.stringify(cluster));
    await page.waitForFunction((n) => document.querySelectorAll('#cluster tbody tr[data-partition]').length === n,
      cluster.partitions.length, { timeout: 10000 });
    const clusterRows = await page.$$eval('#cluster tbody tr', (trs) => trs.map((tr) =>
      Array.from(tr.children).map((td) => td.textContent)));
    for (const [partition, owner, , end, stored, lag] of clusterRows) {
      const p = cluster.partitions.find((x) => String(x.partition) === partition);
      assert.ok(p, `row for partition ${partition}`);
      assert.ok(owner.includes(p.owner), `owner of ${partition}: ${owner}`);
      assert.equal(end, p.end_offset.toLocaleString('en-US'));
      assert.equal(stored, p.stored_offset.toLocaleString('en-US'));
      assert.equal(lag, '0');
    }
    assert.ok(cluster.partitions.some((p) => p.end_offset > 0), 'no partition has records');
    assert.match(await page.textContent('#cluster-info'), /^wal · .*1 member/);

    // Rates need two overview samples; wait for them so the screenshot shows numbers.
    await page.waitForFunction(() => document.querySelector('#tile-messages-in .value').textContent !== '–');
    await page.screenshot({ path: screenshot, fullPage: true });

    // Database down: new readings stay in the bus and the lag tile must show them.
    pgStop();
    publish(mqttPort, [1, 2, 3].map((i) => JSON.stringify({ temperature: 80 + i })));
    await page.waitForFunction(() => Number(document.querySelector('#tile-lag-messages').dataset.value) >= 3, null,
      { timeout: 20000 });
    assert.equal(await page.getAttribute('#tile-lag-messages', 'data-level'), 'warn');
    await page.waitForFunction(() => document.querySelector('#tile-database .value').textContent === 'down', null,
      { timeout: 20000 });
    await page.waitForFunction(() => document.querySelector('#cluster-info').textContent.includes('database down'),
      null, { timeout: 20000 });
    await page.screenshot({ path: screenshot.replace(/\.png$/, '-lag.png'), fullPage: true });

    // Database back: the backlog drains and the lag returns to zero.
    pgStart();
    await page.waitForFunction(() => document.querySelector('#tile-lag-messages').dataset.value === '0', null,
      { timeout: 30000 });
    await page.waitForFunction(() => document.querySelector('#tile-rows .sub').textContent === 'total 13', null,
      { timeout: 10000 });
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#cluster td.lag'))
      .every((td) => td.textContent === '0' && td.dataset.level === 'ok'), null, { timeout: 15000 });
    assert.deepEqual(pageErrors, []);
  } catch (e) {
    console.error('--- sluice log (tail) ---\n' + sluiceLog());
    throw e;
  }
});
