# SPDX-License-Identifier: Apache-2.0
#
# A reason code must survive the close that follows it. After a DISCONNECT (or a refusing
# CONNACK) the server half-closes and reads what the client still sends for a bounded time:
# closing a socket with unread input makes the kernel answer with a reset, and a client that
# is still sending (PUBRELs, say) then fails with EPIPE/ECONNRESET before it reads the reason.

import time

from mqtt_raw import (Client, DISCONNECT, RC_PROTOCOL_ERROR, RC_TOPIC_ALIAS_INVALID, TOPIC_ALIAS, V5, gen_pingreq,
                      gen_publish)
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
