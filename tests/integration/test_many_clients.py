# SPDX-License-Identifier: Apache-2.0
#
# 1,000 concurrent clients (half MQTT 3.1.1, half 5.0) on one broker, publishing and
# subscribing at the same time, and every message accounted for: each client sends QoS 1
# messages to its neighbour's topic and receives exactly its predecessor's messages, in
# order, plus every broadcast, with no duplicates and nothing missing. A second test is a
# reconnect storm: 1,000 persistent sessions get a backlog while offline and all come back
# at once. asyncio over raw sockets keeps it in one process with bounded memory; every
# wait has a deadline.

import asyncio
import resource
import time

from mqtt_raw import (V311, V5, CONNACK, SUBACK, PUBLISH, PUBACK, decode_packet, gen_connect,
                      gen_subscribe, gen_publish, gen_puback, gen_disconnect)

N_CLIENTS = 1000
PER_CLIENT = 5
BROADCASTS = 3
DEADLINE = 90.0


async def read_packet(reader, proto):
    header = (await reader.readexactly(1))[0]
    length, mult = 0, 1
    for _ in range(4):
        b = (await reader.readexactly(1))[0]
        length += (b & 0x7F) * mult
        if not b & 0x80:
            break
        mult *= 128
    body = await reader.readexactly(length) if length else b""
    return decode_packet(header, body, proto)


class Stats:
    def __init__(self):
        self.received = {}   # client index -> list of payloads from the neighbour
        self.broadcast = {}  # client index -> list of broadcast payloads
        self.acked = {}      # client index -> PUBACKs received


async def run_client(i, port, run, subscribed, go, stats):
    proto = V5 if i % 2 else V311
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(gen_connect("%s-%d" % (run, i), proto_ver=proto, keepalive=120))
        ack = await read_packet(reader, proto)
        assert ack.type == CONNACK and ack.reason == 0, (i, ack)
        writer.write(gen_subscribe(1, [("mc/%s/c/%d" % (run, i), 1), ("mc/%s/all" % run, 1)],
                                   proto))
        sub = await read_packet(reader, proto)
        assert sub.type == SUBACK and sub.reasons == [1, 1], (i, sub)
        subscribed.release()
        await go.wait()
        target = (i + 1) % N_CLIENTS
        for k in range(PER_CLIENT):
            writer.write(gen_publish("mc/%s/c/%d" % (run, target), 1, b"%d:%d" % (i, k),
                                     mid=10 + k, proto_ver=proto))
        await writer.drain()
        got, bcast, acks = [], [], 0
        while len(got) < PER_CLIENT or len(bcast) < BROADCASTS or acks < PER_CLIENT:
            p = await read_packet(reader, proto)
            if p.type == PUBLISH:
                assert p.qos == 1 and p.dup is False, (i, p)
                writer.write(gen_puback(p.mid, proto))
                (bcast if p.topic.endswith("/all") else got).append(p.payload)
            elif p.type == PUBACK:
                assert 10 <= p.mid < 10 + PER_CLIENT, (i, p)
                acks += 1
            else:
                raise AssertionError("client %d: unexpected %r" % (i, p))
        stats.received[i], stats.broadcast[i], stats.acked[i] = got, bcast, acks
        # Anything more would be a duplicate.
        try:
            extra = await asyncio.wait_for(read_packet(reader, proto), 0.05)
            raise AssertionError("client %d: extra packet %r" % (i, extra))
        except asyncio.TimeoutError:
            pass
        writer.write(gen_disconnect(proto_ver=proto))
        await writer.drain()
    finally:
        writer.close()


async def run_all(port, run):
    stats = Stats()
    subscribed = asyncio.Semaphore(0)
    go = asyncio.Event()
    tasks = []
    for i in range(N_CLIENTS):
        tasks.append(asyncio.ensure_future(run_client(i, port, run, subscribed, go, stats)))
        if i % 50 == 49:
            await asyncio.sleep(0.01)  # do not flood the accept backlog

    async def coordinator():
        for _ in range(N_CLIENTS):
            await subscribed.acquire()
        # Broadcasts from a separate publisher before anyone publishes, then release all.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(gen_connect(run + "-bcast", proto_ver=V5))
        assert (await read_packet(reader, V5)).type == CONNACK
        for k in range(BROADCASTS):
            writer.write(gen_publish("mc/%s/all" % run, 1, b"b%d" % k, mid=k + 1))
            assert (await read_packet(reader, V5)).type == PUBACK
        writer.write(gen_disconnect())
        writer.close()
        go.set()

    await asyncio.wait_for(asyncio.gather(coordinator(), *tasks), DEADLINE)
    return stats


def test_thousand_clients(broker, uid):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < N_CLIENTS + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    start = time.monotonic()
    stats = asyncio.run(run_all(broker.port, "mc" + uid[-12:]))
    elapsed = time.monotonic() - start
    assert len(stats.received) == N_CLIENTS
    for i in range(N_CLIENTS):
        prev = (i - 1) % N_CLIENTS
        assert stats.received[i] == [b"%d:%d" % (prev, k) for k in range(PER_CLIENT)], i
        assert stats.broadcast[i] == [b"b%d" % k for k in range(BROADCASTS)], i
        assert stats.acked[i] == PER_CLIENT
    print("%d clients, %d deliveries in %.1fs" % (
        N_CLIENTS, N_CLIENTS * (PER_CLIENT + BROADCASTS), elapsed))


STORM_PER_CLIENT = 3


async def storm_client(i, port, run, phase, stats):
    """phase 1: create a persistent session and subscribe; phase 2: reconnect and drain."""
    proto = V5 if i % 2 else V311
    props = {0x11: 600} if proto == V5 else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(gen_connect("%s-st%d" % (run, i), clean=(phase == 1 and proto == V5),
                                 proto_ver=proto, keepalive=120, properties=props))
        ack = await read_packet(reader, proto)
        assert ack.type == CONNACK and ack.reason == 0, (i, ack)
        if phase == 1:
            writer.write(gen_subscribe(1, [("st/%s/%d" % (run, i), 1)], proto))
            sub = await read_packet(reader, proto)
            assert sub.type == SUBACK and sub.reasons == [1], (i, sub)
        else:
            assert ack.session_present, (i, ack)
            got = []
            while len(got) < STORM_PER_CLIENT:
                p = await read_packet(reader, proto)
                assert p.type == PUBLISH and p.qos == 1, (i, p)
                writer.write(gen_puback(p.mid, proto))
                got.append(p.payload)
            stats.received[i] = got
        writer.write(gen_disconnect(proto_ver=proto))
        await writer.drain()
    finally:
        writer.close()


async def storm(port, run, stats):
    await asyncio.wait_for(asyncio.gather(
        *[storm_client(i, port, run, 1, stats) for i in range(N_CLIENTS)]), DEADLINE)
    # Fill every offline session while nobody is connected; QoS 1 with a window of
    # unacknowledged publishes.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(gen_connect(run + "-storm-pub", proto_ver=V5))
    assert (await read_packet(reader, V5)).type == CONNACK
    mid, outstanding = 0, 0
    for k in range(STORM_PER_CLIENT):
        for i in range(N_CLIENTS):
            mid = mid % 65535 + 1
            writer.write(gen_publish("st/%s/%d" % (run, i), 1, b"%d:%d" % (i, k), mid=mid))
            outstanding += 1
            while outstanding >= 100:
                p = await asyncio.wait_for(read_packet(reader, V5), 10)
                assert p.type == PUBACK, p
                outstanding -= 1
    while outstanding:
        p = await asyncio.wait_for(read_packet(reader, V5), 10)
        assert p.type == PUBACK, p
        outstanding -= 1
    writer.close()
    # Everyone comes back at once.
    await asyncio.wait_for(asyncio.gather(
        *[storm_client(i, port, run, 2, stats) for i in range(N_CLIENTS)]), DEADLINE)


def test_reconnect_storm_with_backlog(broker, uid):
    """1,000 persistent sessions receive a backlog while offline and reconnect together:
    every queued message arrives once, in order (DESIGN.md promise 3, as MQTT sees it)."""
    stats = Stats()
    start = time.monotonic()
    asyncio.run(storm(broker.port, "st" + uid[-12:], stats))
    assert len(stats.received) == N_CLIENTS
    for i in range(N_CLIENTS):
        assert stats.received[i] == [b"%d:%d" % (i, k) for k in range(STORM_PER_CLIENT)], i
    print("storm: %d sessions x %d queued in %.1fs" % (
        N_CLIENTS, STORM_PER_CLIENT, time.monotonic() - start))
