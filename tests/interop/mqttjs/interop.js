// SPDX-License-Identifier: Apache-2.0
//
// Interoperability with MQTT.js (npm `mqtt`, the client most web dashboards and Node
// services use), MQTT 3.1.1 or 5.0: QoS 0/1/2, retained messages, wills and persistent
// sessions. Driven by tests/interop/test_mqttjs.py, which owns the broker.
// Usage: node interop.js PORT VERSION(4|5) [TRANSPORT [CA_FILE]], TRANSPORT one of mqtt
// (TCP, the default), mqtts (TLS), ws (WebSocket) or wss (WebSocket over TLS); CA_FILE
// verifies the broker's certificate. Exit status 0 only if every check passed; the whole
// run is bounded by a watchdog.
'use strict';

const assert = require('assert');
const fs = require('fs');
const mqtt = require('mqtt');

const port = Number(process.argv[2]);
const version = Number(process.argv[3] || 5);
const transport = process.argv[4] || 'mqtt';
const caFile = process.argv[5];
assert(port > 0 && (version === 4 || version === 5), 'usage: interop.js PORT 4|5 [mqtt|mqtts|ws|wss [CA_FILE]]');
assert(['mqtt', 'mqtts', 'ws', 'wss'].includes(transport), `unknown transport ${transport}`);
// TLS: the broker's certificate is checked against CA_FILE (its name is localhost).
const transportOpts = { protocol: transport, ...(transport.startsWith('ws') ? { path: '/mqtt' } : {}),
  ...(caFile ? { ca: fs.readFileSync(caFile), servername: 'localhost', rejectUnauthorized: true } : {}) };
const run = `js${version}${transport}-${process.pid}`;
const STEP_MS = 10000;

setTimeout(() => {
  console.error('watchdog: interop run took too long');
  process.exit(2);
}, 60000).unref();

function withTimeout(promise, what, ms = STEP_MS) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Connects and resolves with [client, connack]. Never reconnects on its own.
function connect(clientId, opts = {}) {
  const client = mqtt.connect({
    host: '127.0.0.1', port, protocolVersion: version, clientId, reconnectPeriod: 0,
    connectTimeout: STEP_MS, keepalive: 30, ...transportOpts, ...opts,
  });
  const messages = [];
  const waiters = [];
  client.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain });
    while (waiters.length && waiters[0].n <= messages.length) waiters.shift().resolve();
  });
  client.nextMessages = (n) => withTimeout(new Promise((resolve) => {
    if (messages.length >= n) resolve(); else waiters.push({ n, resolve });
  }).then(() => messages.splice(0, n)), `${clientId}: ${n} message(s)`);
  client.pending = messages;
  return withTimeout(new Promise((resolve, reject) => {
    client.once('connect', (connack) => resolve([client, connack]));
    client.once('error', reject);
  }), `${clientId}: connect`);
}

const subscribe = (c, topic, qos) => withTimeout(c.subscribeAsync(topic, { qos }), `subscribe ${topic}`)
  .then((granted) => assert.deepStrictEqual(granted.map((g) => g.qos), [qos]));
const publish = (c, topic, payload, opts) => withTimeout(c.publishAsync(topic, payload, opts), `publish ${topic}`);
const end = (c) => withTimeout(c.endAsync(), 'end');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const persistentOpts = () => (version === 5
  ? { clean: false, properties: { sessionExpiryInterval: 300 } }
  : { clean: false });

async function qosLevels() {
  const topic = `${run}/qos`;
  const [sub] = await connect(`${run}-qs`);
  await subscribe(sub, topic, 2);
  const [pub] = await connect(`${run}-qp`);
  for (const qos of [0, 1, 2]) await publish(pub, topic, `m${qos}`, { qos });
  const got = await sub.nextMessages(3);
  assert.deepStrictEqual(got.map((m) => [m.payload, m.qos, m.retain]),
    [['m0', 0, false], ['m1', 1, false], ['m2', 2, false]]);
  await end(pub);
  await end(sub);
}

async function retained() {
  const topic = `${run}/retained`;
  const [pub] = await connect(`${run}-rp`);
  await publish(pub, topic, 'kept', { qos: 1, retain: true });
  const [sub] = await connect(`${run}-rs`);
  await subscribe(sub, topic, 1);
  const [m] = await sub.nextMessages(1);
  assert.deepStrictEqual([m.payload, m.retain, m.qos], ['kept', true, 1]);
  await publish(pub, topic, '', { qos: 1, retain: true });
  const [cleared] = await sub.nextMessages(1);
  assert.strictEqual(cleared.payload, '');
  const [late] = await connect(`${run}-rl`);
  await subscribe(late, topic, 1);
  await sleep(500);
  assert.strictEqual(late.pending.length, 0, 'retained message was not cleared');
  await Promise.all([end(pub), end(sub), end(late)]);
}

async function wills() {
  const topic = `${run}/will`;
  const [watcher] = await connect(`${run}-ww`);
  await subscribe(watcher, topic, 1);
  const [polite] = await connect(`${run}-wp`, { will: { topic, payload: 'never', qos: 1 } });
  await end(polite); // DISCONNECT: no will
  const [victim] = await connect(`${run}-wv`, { will: { topic, payload: 'gone', qos: 1 } });
  victim.stream.destroy(); // the network fails: will
  const [m] = await watcher.nextMessages(1);
  assert.deepStrictEqual([m.topic, m.payload, m.qos], [topic, 'gone', 1]);
  await sleep(500);
  assert.strictEqual(watcher.pending.length, 0, 'will sent on normal disconnect');
  victim.end(true);
  await end(watcher);
}

async function persistentSession() {
  const topic = `${run}/session`;
  const id = `${run}-ps`;
  const [first] = await connect(id, { ...persistentOpts(), clean: version === 5 });
  await subscribe(first, topic, 2);
  await end(first);
  const [pub] = await connect(`${run}-pp`);
  for (const [i, qos] of [1, 2, 1, 2].entries()) await publish(pub, topic, `q${i}`, { qos });
  await end(pub);
  const [again, connack] = await connect(id, persistentOpts());
  assert.strictEqual(connack.sessionPresent, true, 'session not present');
  const got = await again.nextMessages(4);
  assert.deepStrictEqual(got.map((m) => m.payload).sort(), ['q0', 'q1', 'q2', 'q3']);
  assert.deepStrictEqual(got.filter((m) => m.qos === 1).map((m) => m.payload), ['q0', 'q2']);
  assert.deepStrictEqual(got.filter((m) => m.qos === 2).map((m) => m.payload), ['q1', 'q3']);
  await end(again);
}

(async () => {
  for (const [name, fn] of Object.entries({ qosLevels, retained, wills, persistentSession })) {
    await fn();
    console.log(`ok ${name} (MQTT ${version === 5 ? '5.0' : '3.1.1'} over ${transport})`);
  }
  process.exit(0);
})().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
