# SPDX-License-Identifier: Apache-2.0
#
# A raw-bytes MQTT 3.1.1 / 5.0 client for black-box broker tests, in the spirit of
# mosquitto's test/mosq_test.py. It exists because real client libraries hide exactly what
# the tests must see: the bytes on the wire, the reason codes, the DUP flag, the moment a
# connection is closed, and the ability to send packets that are wrong on purpose. Packets
# are built with gen_*() functions and decoded into Packet objects so that tests compare
# meaning (reason codes, properties) rather than exact bytes, since brokers legitimately
# differ in the optional properties they add.

import socket
import struct
import time

# Packet types.
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = (
    8, 9, 10, 11, 12, 13, 14, 15)
TYPE_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
    7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
    12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}

# Protocol levels.
V311 = 4
V5 = 5

# Property identifiers (MQTT 5.0 section 2.2.2.2).
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTHENTICATION_METHOD = 0x15
AUTHENTICATION_DATA = 0x16
REQUEST_PROBLEM_INFORMATION = 0x17
WILL_DELAY_INTERVAL = 0x18
REQUEST_RESPONSE_INFORMATION = 0x19
RESPONSE_INFORMATION = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
PROPERTY_TYPES = {
    PAYLOAD_FORMAT_INDICATOR: _BYTE, MESSAGE_EXPIRY_INTERVAL: _U32, CONTENT_TYPE: _STR,
    RESPONSE_TOPIC: _STR, CORRELATION_DATA: _BIN, SUBSCRIPTION_IDENTIFIER: _VARINT,
    SESSION_EXPIRY_INTERVAL: _U32, ASSIGNED_CLIENT_IDENTIFIER: _STR, SERVER_KEEP_ALIVE: _U16,
    AUTHENTICATION_METHOD: _STR, AUTHENTICATION_DATA: _BIN, REQUEST_PROBLEM_INFORMATION: _BYTE,
    WILL_DELAY_INTERVAL: _U32, REQUEST_RESPONSE_INFORMATION: _BYTE, RESPONSE_INFORMATION: _STR,
    SERVER_REFERENCE: _STR, REASON_STRING: _STR, RECEIVE_MAXIMUM: _U16,
    TOPIC_ALIAS_MAXIMUM: _U16, TOPIC_ALIAS: _U16, MAXIMUM_QOS: _BYTE, RETAIN_AVAILABLE: _BYTE,
    USER_PROPERTY: _PAIR, MAXIMUM_PACKET_SIZE: _U32, WILDCARD_SUBSCRIPTION_AVAILABLE: _BYTE,
    SUBSCRIPTION_IDENTIFIER_AVAILABLE: _BYTE, SHARED_SUBSCRIPTION_AVAILABLE: _BYTE,
}
# Properties that may appear more than once; decoded as lists.
MULTI_PROPERTIES = (USER_PROPERTY, SUBSCRIPTION_IDENTIFIER)

# Reason codes used by the tests (MQTT 5.0 section 2.4).
RC_SUCCESS = 0x00
RC_GRANTED_QOS1 = 0x01
RC_GRANTED_QOS2 = 0x02
RC_DISCONNECT_WITH_WILL = 0x04
RC_NO_MATCHING_SUBSCRIBERS = 0x10
RC_NO_SUBSCRIPTION_EXISTED = 0x11
RC_UNSPECIFIED_ERROR = 0x80
RC_MALFORMED_PACKET = 0x81
RC_PROTOCOL_ERROR = 0x82
RC_IMPLEMENTATION_SPECIFIC = 0x83
RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84
RC_CLIENT_ID_NOT_VALID = 0x85
RC_SESSION_TAKEN_OVER = 0x8E
RC_TOPIC_FILTER_INVALID = 0x8F
RC_TOPIC_NAME_INVALID = 0x90
RC_PACKET_ID_IN_USE = 0x91
RC_PACKET_ID_NOT_FOUND = 0x92
RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93
RC_TOPIC_ALIAS_INVALID = 0x94
RC_PACKET_TOO_LARGE = 0x95
RC_KEEP_ALIVE_TIMEOUT = 0x8D
RC_QOS_NOT_SUPPORTED = 0x9B
RC_PAYLOAD_FORMAT_INVALID = 0x99

# MQTT 3.1.1 CONNACK return codes.
CONNACK_ACCEPTED = 0
CONNACK_REFUSED_PROTOCOL_VERSION = 1
CONNACK_REFUSED_IDENTIFIER_REJECTED = 2


def short_repr(packets, limit=8):
    """repr of a packet list, abbreviated so that a failure message stays readable."""
    if len(packets) <= limit:
        return repr(packets)
    return "[%s, ... %d more ..., %r]" % (
        ", ".join(repr(p) for p in packets[:limit - 1]), len(packets) - limit, packets[-1])


class MqttError(Exception):
    """A protocol-level surprise: wrong packet, bad bytes, unexpected close."""


class ConnectionClosed(MqttError):
    """The peer closed the connection (EOF or reset)."""


class Timeout(MqttError):
    """Nothing (or not enough) arrived within the timeout."""


# ---------------------------------------------------------------------------------------
# Encoding primitives.

def encode_varint(value):
    if value < 0 or value > 268435455:
        raise ValueError("varint out of range: %d" % value)
    out = bytearray()
    while True:
        byte = value % 128
        value //= 128
        if value:
            byte |= 0x80
        out.append(byte)
        if not value:
            return bytes(out)


def encode_string(value):
    if isinstance(value, str):
        value = value.encode("utf-8")
    return struct.pack("!H", len(value)) + value


def encode_properties(props):
    """props: None, a dict {id: value} (lists for repeatable ids), or a list of (id, value)."""
    if props is None:
        return b""
    items = []
    if isinstance(props, dict):
        for pid, value in props.items():
            if pid in MULTI_PROPERTIES and isinstance(value, list):
                items.extend((pid, v) for v in value)
            else:
                items.append((pid, value))
    else:
        items = list(props)
    out = bytearray()
    for pid, value in items:
        kind = PROPERTY_TYPES[pid]
        out += encode_varint(pid)
        if kind == _BYTE:
            out += struct.pack("!B", value)
        elif kind == _U16:
            out += struct.pack("!H", value)
        elif kind == _U32:
            out += struct.pack("!I", value)
        elif kind == _VARINT:
            out += encode_varint(value)
        elif kind in (_STR, _BIN):
            out += encode_string(value)
        else:
            out += encode_string(value[0]) + encode_string(value[1])
    return encode_varint(len(out)) + bytes(out)


def fixed_header(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + encode_varint(len(body)) + body


# ---------------------------------------------------------------------------------------
# Packet generators (client to server, plus the server-side acks for completeness).

def gen_connect(client_id, clean=True, keepalive=60, username=None, password=None,
                will_topic=None, will_payload=b"", will_qos=0, will_retain=False,
                proto_ver=V5, properties=None, will_properties=None, proto_name="MQTT",
                connect_flags=None):
    """CONNECT. For 5.0, `clean` is Clean Start; properties default to none (an empty
    property block). connect_flags overrides the computed flags byte (for malformed tests)."""
    flags = 0
    if clean:
        flags |= 0x02
    if will_topic is not None:
        flags |= 0x04 | (will_qos << 3)
        if will_retain:
            flags |= 0x20
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    if connect_flags is not None:
        flags = connect_flags
    body = encode_string(proto_name) + bytes([proto_ver, flags]) + struct.pack("!H", keepalive)
    if proto_ver == V5:
        body += encode_properties(properties or {})
    body += encode_string(client_id)
    if will_topic is not None:
        if proto_ver == V5:
            body += encode_properties(will_properties or {})
        body += encode_string(will_topic) + encode_string(will_payload)
    if username is not None:
        body += encode_string(username)
    if password is not None:
        body += encode_string(password)
    return fixed_header(CONNECT, 0, body)


def gen_publish(topic, qos=0, payload=b"", retain=False, dup=False, mid=None,
                proto_ver=V5, properties=None):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    flags = (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = encode_string(topic)
    if qos > 0:
        if mid is None:
            raise ValueError("QoS > 0 needs a packet id")
        body += struct.pack("!H", mid)
    if proto_ver == V5:
        body += encode_properties(properties or {})
    body += payload
    return fixed_header(PUBLISH, flags, body)


def _gen_ack(ptype, flags, mid, proto_ver, reason, properties):
    body = struct.pack("!H", mid)
    if proto_ver == V5 and (reason not in (None, 0) or properties):
        body += bytes([reason or 0])
        if properties:
            body += encode_properties(properties)
    return fixed_header(ptype, flags, body)


def gen_puback(mid, proto_ver=V5, reason=None, properties=None):
    return _gen_ack(PUBACK, 0, mid, proto_ver, reason, properties)


def gen_pubrec(mid, proto_ver=V5, reason=None, properties=None):
    return _gen_ack(PUBREC, 0, mid, proto_ver, reason, properties)


def gen_pubrel(mid, proto_ver=V5, reason=None, properties=None):
    return _gen_ack(PUBREL, 0x02, mid, proto_ver, reason, properties)


def gen_pubcomp(mid, proto_ver=V5, reason=None, properties=None):
    return _gen_ack(PUBCOMP, 0, mid, proto_ver, reason, properties)


def sub_options(qos=0, no_local=False, retain_as_published=False, retain_handling=0):
    return qos | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) | (
        retain_handling << 4)


def gen_subscribe(mid, topics, proto_ver=V5, properties=None, flags=0x02):
    """topics: a filter string, or a list of filters / (filter, options-byte) pairs."""
    if isinstance(topics, str):
        topics = [(topics, 0)]
    body = struct.pack("!H", mid)
    if proto_ver == V5:
        body += encode_properties(properties or {})
    for item in topics:
        if isinstance(item, str):
            item = (item, 0)
        body += encode_string(item[0]) + bytes([item[1]])
    return fixed_header(SUBSCRIBE, flags, body)


def gen_unsubscribe(mid, topics, proto_ver=V5, properties=None):
    if isinstance(topics, str):
        topics = [topics]
    body = struct.pack("!H", mid)
    if proto_ver == V5:
        body += encode_properties(properties or {})
    for t in topics:
        body += encode_string(t)
    return fixed_header(UNSUBSCRIBE, 0x02, body)


def gen_pingreq():
    return bytes([0xC0, 0x00])


def gen_disconnect(reason=None, properties=None, proto_ver=V5):
    body = b""
    if proto_ver == V5 and (reason not in (None, 0) or properties):
        body = bytes([reason or 0])
        if properties:
            body += encode_properties(properties)
    return fixed_header(DISCONNECT, 0, body)


# ---------------------------------------------------------------------------------------
# Decoding.

class Packet:
    """A decoded packet. Fields present depend on the type: reason (CONNACK return code or
    5.0 reason code), session_present, mid, topic, qos, retain, dup, payload, properties
    (dict; lists for repeatable ids), reasons (SUBACK/UNSUBACK list)."""

    def __init__(self, ptype, flags, body):
        self.type = ptype
        self.flags = flags
        self.raw_body = body
        self.properties = {}
        self.reason = None
        self.reasons = []
        self.mid = None
        self.topic = None
        self.payload = None
        self.qos = (flags >> 1) & 0x03
        self.retain = bool(flags & 0x01)
        self.dup = bool(flags & 0x08)
        self.session_present = None

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, "TYPE%d" % self.type)

    def prop(self, pid, default=None):
        return self.properties.get(pid, default)

    def __repr__(self):
        parts = [self.name]
        for key in ("reason", "mid", "topic", "qos", "retain", "dup", "payload",
                    "session_present"):
            value = getattr(self, key)
            if value not in (None, False) and not (key == "qos" and self.type != PUBLISH):
                parts.append("%s=%r" % (key, value))
        if self.reasons:
            parts.append("reasons=%r" % (self.reasons,))
        if self.properties:
            parts.append("props=%r" % (self.properties,))
        return "<" + " ".join(parts) + ">"


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if self.pos + n > len(self.data):
            raise MqttError("truncated packet")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("!H", self.take(2))[0]

    def u32(self):
        return struct.unpack("!I", self.take(4))[0]

    def varint(self):
        value, mult = 0, 1
        for _ in range(4):
            b = self.u8()
            value += (b & 0x7F) * mult
            if not b & 0x80:
                return value
            mult *= 128
        raise MqttError("bad varint")

    def binary(self):
        return self.take(self.u16())

    def string(self):
        return self.binary().decode("utf-8")

    def properties(self):
        length = self.varint()
        end = self.pos + length
        props = {}
        while self.pos < end:
            pid = self.varint()
            kind = PROPERTY_TYPES.get(pid)
            if kind is None:
                raise MqttError("unknown property 0x%02x" % pid)
            if kind == _BYTE:
                value = self.u8()
            elif kind == _U16:
                value = self.u16()
            elif kind == _U32:
                value = self.u32()
            elif kind == _VARINT:
                value = self.varint()
            elif kind == _STR:
                value = self.string()
            elif kind == _BIN:
                value = self.binary()
            else:
                value = (self.string(), self.string())
            if pid in MULTI_PROPERTIES:
                props.setdefault(pid, []).append(value)
            else:
                if pid in props:
                    raise MqttError("duplicate property 0x%02x" % pid)
                props[pid] = value
        if self.pos != end:
            raise MqttError("property length mismatch")
        return props


def decode_packet(header, body, proto_ver):
    ptype, flags = header >> 4, header & 0x0F
    p = Packet(ptype, flags, body)
    r = _Reader(body)
    if ptype == CONNACK:
        p.session_present = bool(r.u8() & 0x01)
        p.reason = r.u8()
        if proto_ver == V5 and r.remaining():
            p.properties = r.properties()
    elif ptype == PUBLISH:
        p.topic = r.string()
        if p.qos:
            p.mid = r.u16()
        if proto_ver == V5:
            p.properties = r.properties()
        p.payload = bytes(r.take(r.remaining()))
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        p.mid = r.u16()
        p.reason = 0
        if proto_ver == V5 and r.remaining():
            p.reason = r.u8()
            if r.remaining():
                p.properties = r.properties()
    elif ptype in (SUBACK, UNSUBACK):
        p.mid = r.u16()
        if proto_ver == V5:
            p.properties = r.properties()
        p.reasons = list(r.take(r.remaining()))
    elif ptype in (DISCONNECT, AUTH):
        p.reason = 0
        if r.remaining():
            p.reason = r.u8()
            if r.remaining():
                p.properties = r.properties()
    return p


# ---------------------------------------------------------------------------------------
# A connection.

DEFAULT_TIMEOUT = 5.0


class Client:
    """One TCP connection speaking raw MQTT. All reads are bounded by a timeout.

    Typical use:
        c = Client(port, proto_ver=V5)
        ack = c.connect("id")              # sends CONNECT, returns the CONNACK Packet
        c.subscribe("a/#", qos=1)          # returns SUBACK
        c.publish("a/b", b"x", qos=2)      # runs the full QoS 2 flow
        msg = c.expect(PUBLISH)
    """

    def __init__(self, port, proto_ver=V5, host="127.0.0.1", timeout=DEFAULT_TIMEOUT):
        self.proto_ver = proto_ver
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        # PUBLISH packets that arrived while an acknowledgement was awaited.
        self.pending = []
        self.next_mid = 1
        self.closed = False
        # Topic aliases the server has set on this connection (server to client direction).
        self.server_aliases = {}

    # -- plumbing --------------------------------------------------------------------

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def mid(self):
        m = self.next_mid
        self.next_mid = self.next_mid % 65535 + 1
        return m

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("timed out waiting for data")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout("timed out waiting for data") from None
        except (ConnectionResetError, BrokenPipeError) as e:
            raise ConnectionClosed("connection reset: %s" % e) from None
        if not chunk:
            raise ConnectionClosed("connection closed by peer")
        self.buf += chunk

    def _try_parse(self):
        if len(self.buf) < 2:
            return None
        value, mult, i = 0, 1, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            value += (b & 0x7F) * mult
            i += 1
            if not b & 0x80:
                break
            mult *= 128
            if i > 4:
                raise MqttError("malformed remaining length from server")
        if len(self.buf) < i + value:
            return None
        header = self.buf[0]
        body = bytes(self.buf[i:i + value])
        del self.buf[:i + value]
        return header, body, i + value

    def recv_packet(self, timeout=None):
        """Returns the next Packet; raises Timeout or ConnectionClosed. Resolves
        server-to-client topic aliases into packet.topic (keeping packet.alias)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            parsed = self._try_parse()
            if parsed is not None:
                header, body, size = parsed
                p = decode_packet(header, body, self.proto_ver)
                p.size = size
                p.alias = None
                if p.type == PUBLISH and self.proto_ver == V5 and TOPIC_ALIAS in p.properties:
                    alias = p.properties[TOPIC_ALIAS]
                    p.alias = alias
                    if p.topic:
                        self.server_aliases[alias] = p.topic
                    else:
                        if alias not in self.server_aliases:
                            raise MqttError("server used unknown topic alias %d" % alias)
                        p.topic = self.server_aliases[alias]
                return p
            self._fill(deadline)

    def expect(self, ptype, timeout=None):
        """Returns the next packet of type ptype. A PUBLISH from the server may legally
        arrive between a request and its acknowledgement: while waiting for another type,
        PUBLISH packets are kept (in order) for later expect(PUBLISH) calls. Any other
        packet type is an error."""
        if ptype == PUBLISH and self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            p = self.recv_packet(max(0.0, deadline - time.monotonic()))
            if p.type == ptype:
                return p
            if p.type == PUBLISH:
                self.pending.append(p)
                continue
            raise MqttError("expected %s, got %r" % (TYPE_NAMES[ptype], p))

    def expect_nothing(self, wait=0.5):
        """Asserts that no packet arrives within `wait` seconds (closing is also an error)."""
        if self.pending:
            raise MqttError("expected nothing, have %s" % short_repr(self.pending))
        try:
            p = self.recv_packet(wait)
        except Timeout:
            return
        raise MqttError("expected nothing, got %r" % (p,))

    def expect_closed(self, timeout=None):
        """Waits until the server closes the connection. Returns the packets received
        before the close (e.g. a DISCONNECT or CONNACK with a reason code)."""
        got = list(self.pending)
        self.pending = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                got.append(self.recv_packet(max(0.01, deadline - time.monotonic())))
            except ConnectionClosed:
                self.close()
                return got
            except Timeout:
                raise Timeout("connection still open; received %s" % short_repr(got)) from None

    # -- protocol helpers --------------------------------------------------------------

    def connect(self, client_id, expect_reason=0, **kw):
        """Sends CONNECT and returns the CONNACK (asserting its reason code when
        expect_reason is not None)."""
        kw.setdefault("proto_ver", self.proto_ver)
        self.send(gen_connect(client_id, **kw))
        ack = self.expect(CONNACK)
        if expect_reason is not None and ack.reason != expect_reason:
            raise MqttError("CONNACK reason %#x, expected %#x (%r)" % (
                ack.reason, expect_reason, ack))
        return ack

    def subscribe(self, topics, qos=0, properties=None, **opts):
        """topics: filter string (options from qos/opts) or list of (filter, options)."""
        if isinstance(topics, str):
            topics = [(topics, sub_options(qos, **opts))]
        mid = self.mid()
        self.send(gen_subscribe(mid, topics, self.proto_ver, properties))
        ack = self.expect(SUBACK)
        if ack.mid != mid:
            raise MqttError("SUBACK for mid %d, expected %d" % (ack.mid, mid))
        return ack

    def unsubscribe(self, topics, properties=None):
        mid = self.mid()
        self.send(gen_unsubscribe(mid, topics, self.proto_ver, properties))
        ack = self.expect(UNSUBACK)
        if ack.mid != mid:
            raise MqttError("UNSUBACK for mid %d, expected %d" % (ack.mid, mid))
        return ack

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, mid=None):
        """Publishes and completes the QoS flow. Returns the final ack (None for QoS 0)."""
        if qos and mid is None:
            mid = self.mid()
        self.send(gen_publish(topic, qos, payload, retain, mid=mid, proto_ver=self.proto_ver,
                              properties=properties))
        if qos == 1:
            ack = self.expect(PUBACK)
            if ack.mid != mid:
                raise MqttError("PUBACK for %d, expected %d" % (ack.mid, mid))
            return ack
        if qos == 2:
            rec = self.expect(PUBREC)
            if rec.mid != mid:
                raise MqttError("PUBREC for %d, expected %d" % (rec.mid, mid))
            if rec.reason is not None and rec.reason >= 0x80:
                return rec
            self.send(gen_pubrel(mid, self.proto_ver))
            comp = self.expect(PUBCOMP)
            if comp.mid != mid:
                raise MqttError("PUBCOMP for %d, expected %d" % (comp.mid, mid))
            return comp
        return None

    def ack(self, p):
        """Acknowledges a received PUBLISH (QoS 1: PUBACK; QoS 2: PUBREC, PUBREL, PUBCOMP)."""
        if p.qos == 1:
            self.send(gen_puback(p.mid, self.proto_ver))
        elif p.qos == 2:
            self.send(gen_pubrec(p.mid, self.proto_ver))
            rel = self.expect(PUBREL)
            if rel.mid != p.mid:
                raise MqttError("PUBREL for %d, expected %d" % (rel.mid, p.mid))
            self.send(gen_pubcomp(p.mid, self.proto_ver))

    def receive(self, timeout=None, ack=True):
        """Expects a PUBLISH, acknowledges it (unless ack=False) and returns it."""
        p = self.expect(PUBLISH, timeout)
        if ack:
            self.ack(p)
        return p

    def ping(self):
        self.send(gen_pingreq())
        return self.expect(PINGRESP)

    def disconnect(self, reason=None, properties=None):
        try:
            self.send(gen_disconnect(reason, properties, self.proto_ver))
        except OSError:
            pass
        self.close()


def connected(port, client_id, proto_ver=V5, **kw):
    """Opens a connection and completes CONNECT/CONNACK (success expected)."""
    c = Client(port, proto_ver=proto_ver)
    try:
        c.connect(client_id, **kw)
    except Exception:
        c.close()
        raise
    return c
