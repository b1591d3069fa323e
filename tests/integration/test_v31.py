# SPDX-License-Identifier: Apache-2.0
#
# MQTT 3.1 clients (protocol name "MQIsdp", level 3): coded like 3.1.1, except that the
# CONNACK's first byte is reserved (no Session Present flag) and that PUBREL, SUBSCRIBE and
# UNSUBSCRIBE were QoS 1 messages which a client may resend with DUP set.

import struct

from mqtt_raw import (Client, CONNACK, PUBREC, PUBCOMP, PUBREL, SUBACK, SUBSCRIBE, UNSUBACK,
                      UNSUBSCRIBE, encode_string, fixed_header, gen_connect, gen_publish)

V31 = 3
FLAGS_QOS1_DUP = 0x0A


def connect_v31(port, client_id, clean=True):
    c = Client(port, V31)
    c.send(gen_connect(client_id, clean=clean, proto_ver=V31, proto_name="MQIsdp"))
    ack = c.expect(CONNACK)
    assert ack.reason == 0, ack
    return c, ack


def test_v31_connack_byte_1_is_zero_even_when_session_resumes(broker, uid):
    c, ack = connect_v31(broker.port, uid, clean=False)
    assert ack.raw_body[0] == 0
    c.close()
    c, ack = connect_v31(broker.port, uid, clean=False)
    assert ack.raw_body[0] == 0, "CONNACK byte 1 is reserved in 3.1"
    c.ping()
    c.close()


def test_v31_dup_on_subscribe_pubrel_unsubscribe_accepted(broker, uid):
    c, _ = connect_v31(broker.port, uid)
    topic = "v31/" + uid
    c.send(fixed_header(SUBSCRIBE, FLAGS_QOS1_DUP, struct.pack("!H", 5) + encode_string(topic) + bytes([1])))
    assert c.expect(SUBACK).mid == 5
    c.send(gen_publish(topic + "/other", qos=2, payload=b"x", mid=6, proto_ver=V31))
    assert c.expect(PUBREC).mid == 6
    c.send(fixed_header(PUBREL, FLAGS_QOS1_DUP, struct.pack("!H", 6)))
    assert c.expect(PUBCOMP).mid == 6
    c.send(fixed_header(UNSUBSCRIBE, FLAGS_QOS1_DUP, struct.pack("!H", 7) + encode_string(topic)))
    assert c.expect(UNSUBACK).mid == 7
    c.ping()
    c.close()
