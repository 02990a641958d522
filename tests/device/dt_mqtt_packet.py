"""tether.mqtt_packet: variable-length integers and packet builders, byte for byte."""

from harness import raises
from tether import mqtt_packet as mp

H = bytes.fromhex

VARINTS = (
    (0, "00"),
    (127, "7f"),
    (128, "8001"),
    (203, "cb01"),
    (16383, "ff7f"),
    (16384, "808001"),
    (2097151, "ffff7f"),
    (2097152, "80808001"),
    (268435455, "ffffff7f"),
)


def test_varint_encoding_boundaries():
    for n, hexs in VARINTS:
        buf = bytearray(5)
        end = mp.put_varint(buf, 0, n)
        assert bytes(buf[:end]) == H(hexs), (n, buf)
        assert mp.varint_size(n) == end


def test_varint_too_large_raises():
    raises(mp.MQTTError, mp.varint_size, 268435456)


def test_header_size_and_remaining_length_decode():
    for n, hexs in VARINTS:
        pkt = H("30" + hexs)
        assert mp.header_size(pkt, 0, len(pkt)) == len(pkt), n
        assert mp.remaining_length(pkt, 0) == n


def test_header_size_needs_more_bytes():
    assert mp.header_size(H("30"), 0, 1) == 0
    assert mp.header_size(H("30ff"), 0, 2) == 0
    assert mp.header_size(H("30ffffff"), 0, 4) == 0


def test_header_size_rejects_a_fifth_length_byte():
    assert mp.header_size(H("30ffffffff"), 0, 5) == -1
    assert mp.header_size(H("30ffffffff01"), 0, 6) == -1


def test_header_size_at_an_offset():
    buf = H("aaaa" + "40020001")
    assert mp.header_size(buf, 2, len(buf)) == 2
    assert mp.remaining_length(buf, 2) == 2


def test_connect_packet_minimal():
    assert mp.connect_packet("abc", 60) == H("100f00044d5154540402003c0003616263")


def test_connect_password_without_user_is_refused():
    raises(ValueError, mp.connect_packet, "c", 60, None, "pw")


def test_connect_with_will_qos2_not_retained():
    pkt = mp.connect_packet("c", 5, will=("w", b"", 2, False))
    assert pkt == H("101200044d51545404" + "16" + "0005" + "000163" + "000177" + "0000"), pkt


def test_subscribe_and_unsubscribe_packets():
    assert mp.subscribe_packet(10, "a/#", 2) == H("8208000a0003612f2302")
    assert mp.unsubscribe_packet(0x0102, b"a") == H("a20501020001" + "61")


def test_acks():
    buf = bytearray(4)
    for ptype, first in ((mp.PUBACK, 0x40), (mp.PUBREC, 0x50), (mp.PUBREL, 0x62)):
        mp.put_ack(buf, ptype, 0xBEEF)
        assert buf == bytes([first, 2, 0xBE, 0xEF])


def test_publish_header_qos0_and_qos1():
    buf = bytearray(16)
    n = mp.put_publish_header(buf, b"a/b", 2, 0, False, False, 0)
    assert bytes(buf[:n]) == H("30070003612f62")
    assert mp.publish_header_size(3, 2, 0) == n
    n = mp.put_publish_header(buf, b"a/b", 2, 1, True, True, 1)
    assert bytes(buf[:n]) == H("3b090003612f620001")
    assert mp.publish_header_size(3, 2, 1) == n


def test_publish_header_with_a_two_byte_length():
    topic = b"t" * 200
    buf = bytearray(210)
    n = mp.put_publish_header(buf, topic, 1, 0, False, False, 0)
    assert bytes(buf[:5]) == H("30cb0100c8") and n == 205


def _topic_error(raw):
    from tether.mqtt_packet import topic_name_error

    return topic_name_error(raw, 0, len(raw))


def test_topic_names_a_broker_may_send_are_accepted():
    for raw in (
        b"a",
        b"/a/t/64f27365-ba1a-4b9c-9c7d-236bb559755f/e/i",
        "caf\u00e9/\u20ac/\U0001f600".encode(),
    ):
        assert _topic_error(raw) is None, raw


def test_invalid_topic_names_are_refused_on_both_interpreters():
    # MicroPython's str(b, "utf-8") lets the overlong, surrogate and > U+10FFFF forms through.
    bad = (
        b"",  # empty
        b"a\x00b",  # NUL
        b"a/#",  # wildcards are for filters only
        b"a/+/b",
        b"\xc0\x80",  # overlong NUL
        b"\xe0\x80\xaf",  # overlong '/'
        b"\xed\xa0\x80",  # UTF-16 surrogate
        b"\xf4\x90\x80\x80",  # past U+10FFFF
        b"\xf8\x88\x80\x80\x80",  # 5-byte form
        b"\x80",  # lone continuation
        b"ab\xe2\x82",  # truncated sequence
        b"\xe2\x28\xa1",  # bad continuation
    )
    for raw in bad:
        assert _topic_error(raw) is not None, raw
