# SPDX-License-Identifier: Apache-2.0
#
# A reason code must survive the close that follows it. After a DISCONNECT (or a refusing
# CONNACK) the server half-closes and reads what the client still sends for a bounded time:
# closing a socket with unread input makes the kernel answer with a reset, and a client that
# is still sending (PUBRELs, say) then fails with EPIPE/ECONNRESET before it reads the reason.

import socket
import threading
import time

from mqtt_raw import (Client, DISCONNECT, RC_PROTOCOL_ERROR, RC_TOPIC_ALIAS_INVALID, TOPIC_ALIAS, V5, Timeout,
                      connected, gen_disconnect, gen_pingreq, gen_publish, short_repr)
from fixtures import spec_strict


@spec_strict("closes with unread input, so the client's next send fails with EPIPE")
def test_client_still_sending_after_disconnect_reads_the_reason(broker, uid):
    c = Client(broker.port, V5)
    c.connect(uid)
    # Topic alias 0 is invalid: the server answers DISCONNECT (0x82 or 0x94) and closes.
    c.send(gen_publish("t/" + uid, qos=1, mid=1, properties={TOPIC_ALIAS: 0}))
    time.sleep(0.3)
    for _ in range(20):  # the client has not read anything yet and keeps sending
        c.send(gen_pingreq() * 100)
        time.sleep(0.02)
    got = c.expect_closed(timeout=5)
    assert [p.type for p in got] == [DISCONNECT], got
    assert got[0].reason in (RC_PROTOCOL_ERROR, RC_TOPIC_ALIAS_INVALID), got


def test_disconnect_counts_when_the_client_resets_while_the_server_is_writing(broker, uid):
    """A client that sends DISCONNECT and closes its socket with the server's output unread
    makes its kernel answer the server's next write with a reset. The DISCONNECT arrived
    before the reset and must still count: no will is published (MQTT-3.14.4-3). Before,
    when the loop was busy enough to see both at once, the failed write closed the
    connection as lost, unread DISCONNECT and all, and the will went out."""
    will_topic = "will/" + uid
    flood = gen_publish("flood/" + uid, 0, b"x" * 8192) * 64
    stop = threading.Event()

    def keep_busy():  # keeps the loops writing to the subscribers
        with connected(broker.port, uid + "-pub", V5) as pub:
            while not stop.is_set():
                pub.send(flood)

    with connected(broker.port, uid + "-watcher", V5) as watcher:
        watcher.subscribe(will_topic, qos=1)
        subs = []
        for i in range(20):
            sub = Client(broker.port, V5)
            sub.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sub.connect("%s-sub-%d" % (uid, i), will_topic=will_topic, will_payload=b"gone %d" % i)
            sub.subscribe("flood/" + uid, qos=0)
            subs.append(sub)
        busy = threading.Thread(target=keep_busy, daemon=True)
        busy.start()
        try:
            time.sleep(0.3)  # every subscriber's socket is full, the server has more for it
            for sub in subs:
                sub.send(gen_disconnect())
                sub.close()  # unread input: the kernel resets the connection
                time.sleep(0.02)
        finally:
            stop.set()
            busy.join(timeout=10)
        wills = []
        deadline = time.time() + 1.5
        while time.time() < deadline:
            try:
                wills.append(watcher.recv_packet(timeout=0.2))
            except Timeout:
                pass
        assert wills == [], "wills published after a normal DISCONNECT: %s" % short_repr(wills)
