// SPDX-License-Identifier: Apache-2.0
//
// MQTT over WebSocket as a web page speaks it: MQTT.js (its browser bundle) running in
// headless Chromium (Debian's, driven by playwright-core) against the real sluice binary,
// over plain ws and over TLS (wss), with MQTT 3.1.1 and 5.0. For each, the page connects
// and subscribes at QoS 1, receives exactly what mosquitto_pub sent over plain TCP,
// publishes at QoS 1 (its PUBACK awaited) what a mosquitto_sub on TCP must get, and ends
// with a DISCONNECT and a clean WebSocket close. One sluice (no database) serves the file
// and must exit 0 on SIGTERM at the end.
//
// TLS: a throwaway CA and a server certificate for localhost (EC P-256) are made with the
// openssl CLI. Chromium does not get --ignore-certificate-errors; it gets the server key's
// SPKI hash (--ignore-certificate-errors-spki-list), which overrides certificate errors only
// for a chain with exactly that key: without it, or with another hash, the wss connection
// fails with net::ERR_CERT_AUTHORITY_INVALID. This file checks the transport; certificate
// trust and verification belong to the TLS tests.
// Putting the CA into Chromium's NSS store instead would need certutil (libnss3-tools), one
// more prerequisite for no more coverage here.
// Environment: SLUICE_BIN (default build/bin/sluice), CHROMIUM (default /usr/bin/chromium).
// Run through tests/browser/run.sh websocket.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium, chromiumBin, repo, sleep, sluiceBin, waitFor } from './harness.mjs';

const mqttBundle = path.join(repo, 'tests', 'node_modules', 'mqtt', 'dist', 'mqtt.min.js');  // defines `mqtt`

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-browser-ws-'));
const dataDir = path.join(tmp, 'data');
const logPath = path.join(tmp, 'sluice.log');
let sluice = null;
let sluiceExit = null;  // resolves to { code, signal } once sluice has exited
let browser = null;
let ports = null;
let pageServer = null;
let pageUrl = null;
let cleaned = false;
const children = new Set();  // mosquitto_* still running, killed on the way out

// Bounds a promise that has no timeout of its own (page.evaluate has none).
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function sluiceLog() {
  try {
    return fs.readFileSync(logPath, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '(no log)';
  }
}

function cleanupSync() {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (sluice && sluice.exitCode === null && sluice.signalCode === null) sluice.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanupSync);

// Runs a command with a hard deadline; resolves to { code, signal, stdout, stderr }.
// onStdout sees the output so far as it grows.
function run(cmd, args, { timeoutMs = 15000, onStdout } = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    stdout += d;
    if (onStdout) onStdout(stdout);
  });
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

function makeCertificates() {
  const ossl = (...args) => execFileSync('openssl', args, { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  ossl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Sluice browser test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  ossl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
  fs.writeFileSync(path.join(tmp, 'server.ext'), [
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
  ].join('\n') + '\n');
  ossl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2',
    '-extfile', 'server.ext', '-out', 'server.pem');
  ossl('verify', '-CAfile', 'ca.pem', 'server.pem');
  // Chromium's pin format: base64 of the SHA-256 of the DER SubjectPublicKeyInfo.
  const spki = crypto.createPublicKey(fs.readFileSync(path.join(tmp, 'server.pem')))
    .export({ type: 'spki', format: 'der' });
  return {
    cert: path.join(tmp, 'server.pem'),
    key: path.join(tmp, 'server.key'),
    spkiHash: crypto.createHash('sha256').update(spki).digest('base64'),
  };
}

before(async () => {
  assert.ok(fs.existsSync(sluiceBin), `sluice binary not found at ${sluiceBin} (set SLUICE_BIN)`);
  assert.ok(fs.existsSync(chromiumBin), `chromium not found at ${chromiumBin} (apt-get install chromium)`);
  const tls = makeCertificates();

  const log = fs.openSync(logPath, 'w');
  sluice = spawn(sluiceBin, ['serve', '--bind', '127.0.0.1', '--mqtt-port', '0', '--http-port', '0',
    '--ws-port', '0', '--wss-port', '0', '--tls-cert', tls.cert, '--tls-key', tls.key, '--threads', '2',
    '--data-dir', dataDir], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  sluiceExit = new Promise((resolve) => sluice.once('exit', (code, signal) => resolve({ code, signal })));
  try {
    const readPort = (name) => {
      const p = path.join(dataDir, `${name}.port`);
      return fs.existsSync(p) && Number(fs.readFileSync(p, 'utf8').trim());
    };
    ports = {};
    for (const name of ['mqtt', 'ws', 'wss']) {
      ports[name] = await waitFor(`${name}.port`, () => {
        if (sluice.exitCode !== null) throw new Error(`sluice exited (${sluice.exitCode})`);
        return readPort(name);
      }, 15000);
    }
  } catch (e) {
    console.error('--- sluice log (tail) ---\n' + sluiceLog());
    throw e;
  }

  // The page must come from a loopback origin: Chromium's Local Network Access checks stop
  // any other page, about:blank included, from opening ws://127.0.0.1
  // (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS). This serves it an empty page.
  pageServer = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end('<!doctype html><meta charset="utf-8"><title>sluice websocket test</title>');
  });
  await new Promise((resolve, reject) => {
    pageServer.once('error', reject);
    pageServer.listen(0, '127.0.0.1', resolve);
  });
  pageUrl = `http://127.0.0.1:${pageServer.address().port}/`;

  browser = await chromium.launch({
    executablePath: chromiumBin,
    timeout: 30000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--ignore-certificate-errors-spki-list=${tls.spkiHash}`],
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (pageServer) {
    pageServer.closeAllConnections();
    pageServer.close();
  }
  cleanupSync();  // kills sluice only if the last test did not stop it
});

// In the page, before MQTT.js loads: keep a record of each WebSocket (its negotiated
// subprotocol and how it closed), and a timeout helper, since page.evaluate has none.
function pageSetup() {
  window.sockets = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const rec = { url: String(url), protocol: null, close: null };
      window.sockets.push(rec);
      this.addEventListener('open', () => { rec.protocol = this.protocol; });
      this.addEventListener('close', (e) => { rec.close = { code: e.code, reason: e.reason, wasClean: e.wasClean }; });
    }
  };
  window.within = (ms, what, promise) => {
    let timer;
    return Promise.race([promise, new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms in the page: ${what}`)), ms);
    })]).finally(() => clearTimeout(timer));
  };
  window.hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const transports = [
  { scheme: 'ws', host: '127.0.0.1', port: () => ports.ws },
  { scheme: 'wss', host: 'localhost', port: () => ports.wss },
];
const versions = [
  { name: 'MQTT 3.1.1', protocolVersion: 4, mosquitto: 'mqttv311' },
  { name: 'MQTT 5.0', protocolVersion: 5, mosquitto: 'mqttv5' },
];

for (const t of transports) {
  for (const v of versions) {
    test(`MQTT.js in Chromium over ${t.scheme} with ${v.name}`, { timeout: 60000 }, async () => {
      const id = `${t.scheme}-v${v.protocolVersion}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
      const toPage = `browser-test/${id}/to-page`;
      const fromPage = `browser-test/${id}/from-page`;
      const url = `${t.scheme}://${t.host}:${t.port()}/mqtt`;
      // Non-ASCII and spaces, so the bytes must come through untouched.
      const inbound = `tcp→browser ${id} ✓ {"n":1}`;
      const outbound = `browser→tcp ${id} ✓ {"n":2}`;

      const context = await browser.newContext();
      const page = await context.newPage();
      page.setDefaultTimeout(15000);
      const pageErrors = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      try {
        await page.goto(pageUrl);
        await page.evaluate(pageSetup);
        await page.addScriptTag({ path: mqttBundle });
        assert.equal(await page.evaluate(() => typeof mqtt.connect), 'function', 'the MQTT.js bundle did not load');

        // 1. Connect and subscribe at QoS 1.
        const granted = await within(20000, 'connect and subscribe', page.evaluate(async ({ url, clientId, protocolVersion, topic }) => {
          window.received = [];
          window.clientErrors = [];
          window.closes = 0;
          const c = mqtt.connect(url, { clientId, protocolVersion, reconnectPeriod: 0, connectTimeout: 10000, clean: true });
          window.client = c;
          c.on('error', (e) => window.clientErrors.push(String(e && e.message || e)));
          c.on('close', () => { window.closes++; });
          c.on('message', (topic, payload, packet) => {
            window.received.push({ topic, hex: hex(payload), qos: packet.qos });
          });
          await within(12000, 'CONNACK', new Promise((resolve, reject) => {
            c.once('connect', resolve);
            c.once('error', reject);
            c.once('close', () => reject(new Error('connection closed before CONNACK')));
          }));
          const g = await within(8000, 'SUBACK', c.subscribeAsync(topic, { qos: 1 }));
          return g.map((x) => ({ topic: x.topic, qos: x.qos }));
        }, { url, clientId: `page-${id}`, protocolVersion: v.protocolVersion, topic: toPage }));
        assert.deepEqual(granted, [{ topic: toPage, qos: 1 }], 'SUBACK must grant QoS 1');
        const socket = await page.evaluate(() => window.sockets.map((s) => ({ url: s.url, protocol: s.protocol })));
        assert.deepEqual(socket, [{ url, protocol: 'mqtt' }], 'one WebSocket, subprotocol "mqtt"');

        // 2. mosquitto_pub over TCP; the page must get exactly those bytes, once.
        const pub = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(ports.mqtt), '-V', v.mosquitto,
          '-i', `pub-${id}`, '-q', '1', '-t', toPage, '-m', inbound]).done;
        assert.equal(pub.code, 0, `mosquitto_pub failed (${pub.signal || pub.code}): ${pub.stderr}`);
        await page.waitForFunction(() => window.received.length >= 1, null, { timeout: 10000 });
        await sleep(200);  // a duplicate would show up in this time
        assert.deepEqual(await page.evaluate(() => window.received),
          [{ topic: toPage, hex: Buffer.from(inbound).toString('hex'), qos: 1 }]);

        // 3. mosquitto_sub over TCP, subscribed (SUBACK seen) before the page publishes at QoS 1.
        let subscribed;
        const subackSeen = new Promise((r) => { subscribed = r; });
        // -d prints "received SUBACK"; stdbuf makes it line-buffered so it is seen when printed.
        const sub = run('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(ports.mqtt), '-V', v.mosquitto,
          '-i', `sub-${id}`, '-q', '1', '-t', fromPage, '-C', '1', '-W', '10', '-d', '-F', 'PAYLOAD %t %x'],
        { timeoutMs: 15000, onStdout: (out) => { if (/received SUBACK/.test(out)) subscribed(); } });
        await within(10000, 'mosquitto_sub to be subscribed', Promise.race([subackSeen,
          sub.done.then((r) => { throw new Error(`mosquitto_sub ended before SUBACK (${r.code}): ${r.stdout}${r.stderr}`); })]));
        await within(12000, 'the PUBACK of the page\'s publish', page.evaluate(async ({ topic, payload }) => {
          await within(10000, 'PUBACK', window.client.publishAsync(topic, payload, { qos: 1 }));
        }, { topic: fromPage, payload: outbound }));
        const got = await sub.done;
        assert.equal(got.code, 0, `mosquitto_sub failed (${got.signal || got.code}): ${got.stdout}${got.stderr}`);
        const lines = got.stdout.split('\n').filter((l) => l.startsWith('PAYLOAD '));
        assert.deepEqual(lines, [`PAYLOAD ${fromPage} ${Buffer.from(outbound).toString('hex')}`]);

        // 4. A clean end: DISCONNECT sent, the WebSocket closed with a completed close handshake.
        const end = await within(12000, 'the client to end', page.evaluate(async () => {
          const c = window.client;
          await within(8000, 'client.endAsync()', c.endAsync());
          const s = window.sockets[0];
          await within(3000, 'the WebSocket close event', new Promise(function poll(resolve) {
            if (s.close) resolve(); else setTimeout(() => poll(resolve), 20);
          }));
          return { connected: c.connected, disconnected: c.disconnected, closes: window.closes,
            errors: window.clientErrors, received: window.received.length, close: s.close };
        }));
        assert.equal(end.connected, false);
        assert.equal(end.disconnected, true, 'MQTT.js must have ended by DISCONNECT');
        assert.equal(end.closes, 1);
        assert.deepEqual(end.errors, []);
        assert.equal(end.received, 1, 'nothing more arrives on the page\'s topic');
        assert.equal(end.close.wasClean, true, `WebSocket close not clean: ${JSON.stringify(end.close)}`);
        assert.deepEqual(pageErrors, []);
      } catch (e) {
        console.error('--- sluice log (tail) ---\n' + sluiceLog());
        throw e;
      } finally {
        await context.close().catch(() => {});
      }
    });
  }
}

test('sluice stops on SIGTERM with exit code 0', { timeout: 20000 }, async () => {
  assert.ok(sluice, 'sluice was not started');
  assert.equal(sluice.exitCode, null, `sluice exited early (${sluice.exitCode})`);
  sluice.kill('SIGTERM');
  let exit;
  try {
    exit = await within(15000, 'sluice to exit after SIGTERM', sluiceExit);
  } finally {
    if (!exit || exit.code !== 0) console.error('--- sluice log (tail) ---\n' + sluiceLog());
  }
  assert.deepEqual(exit, { code: 0, signal: null }, 'sluice must exit 0 on SIGTERM');
});
