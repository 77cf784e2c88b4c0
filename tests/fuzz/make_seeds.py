#!/usr/bin/env python3
"""Writes the seed corpora of the wire_frame, wire_layout, hello, channel_auth, sealed_control, sealed_marker,
guest_state and attach_message fuzz targets (tests/fuzz/corpus/TARGET/seed_*) in the byte layouts of
dataplane/wire.h, vm/state_codec.h and attach/protocol.h.
Re-run after a format change; inputs found by fuzzing (regressions) sit beside them unnamed
by this script and are kept."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC, VERSION = 0x7E4E, 5
HELLO, PAGE, ZERO, ROUND_END, REQUEST, CONTROL = 1, 2, 3, 4, 5, 6
K4, M2 = 4096, 2 << 20


def header(typ, block=0, offset=0, length=0, flags=0, rnd=0, channel=0, magic=MAGIC, version=VERSION):
    return struct.pack("<HBBIQIIII", magic, version, typ, block, offset, length, flags, rnd, channel)


def layout(blocks):
    out = struct.pack("<I", len(blocks))
    for name, size, page in blocks:
        out += struct.pack("<I", len(name)) + name + struct.pack("<QI", size, page)
    return out


def ranges(rs):
    return struct.pack("<Q", len(rs)) + b"".join(struct.pack("<IQQ", *r) for r in rs)


def hello(index, count, session, channel=None):
    return header(HELLO, length=16, channel=index if channel is None else channel) + struct.pack(
        "<IIQ", index, count, session)


def fnv1a(b):
    h = 0xCBF29CE484222325
    for x in b:
        h = ((h ^ x) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def state(spec, vcpus, records, magic=0x545347544E524554, version=1, good_sum=True):
    body = struct.pack("<QIII", magic, version, vcpus, len(spec)) + spec
    for r in records:
        body += struct.pack("<5Q", *r)
    return body + struct.pack("<Q", fnv1a(body) if good_sum else 0)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


# The fuzz targets' fixed layout (tests/fuzz/fuzz_layouts.h): 8 MiB of 2M pages, 1 MiB of 4K.
two = layout([(b"ram-huge", 8 << 20, M2), (b"ram", 1 << 20, K4)])
write("wire_frame", "page_4k", header(PAGE, block=1, offset=8 * K4, length=K4))
write("wire_frame", "page_2m_whole", header(PAGE, block=0, offset=M2, length=M2))
write("wire_frame", "zero_range", header(ZERO, block=0, offset=0, length=2 * M2, flags=2))
write("wire_frame", "zero_in_page", header(ZERO, block=0, offset=3 * K4, length=5 * K4))
write("wire_frame", "request", header(REQUEST, block=1, offset=K4))
write("wire_frame", "request_page", header(REQUEST, block=0, offset=M2 + K4, length=K4))
write("wire_frame", "cross_host_page", header(PAGE, block=0, offset=M2 - K4, length=2 * K4))
write("wire_frame", "with_layout", header(PAGE, block=0, offset=0, length=K4) +
      layout([(b"pc.ram", 16 << 20, K4)]))
write("wire_frame", "control", header(CONTROL, length=100, flags=1))
write("wire_frame", "hello", header(HELLO, length=16))
write("wire_frame", "round_end", header(ROUND_END, rnd=3))
write("wire_frame", "bad_magic", header(PAGE, length=K4, magic=0x1234))
write("wire_frame", "old_version", header(PAGE, length=K4, version=4))
write("wire_frame", "outside", header(PAGE, block=1, offset=1 << 20, length=K4))

one = layout([(b"pc.ram", 64 << 20, K4)])
write("wire_layout", "one_block", struct.pack("<H", len(one)) + one)
write("wire_layout", "two_blocks_ranges", struct.pack("<H", len(two)) + two +
      ranges([(0, 0, M2), (0, 4 * M2, 2 * M2), (1, 0, K4), (1, 255 * K4, K4)]))
write("wire_layout", "ranges_on_default", struct.pack("<H", 0) + ranges([(1, 8 * K4, 16 * K4)]))
write("wire_layout", "empty_ranges", struct.pack("<H", len(one)) + one + ranges([]))
write("wire_layout", "truncated", struct.pack("<H", len(two)) + two[:-3])
bad = layout([(b"x", 8192, 8192)])
write("wire_layout", "bad_page_size", struct.pack("<H", len(bad)) + bad)
write("wire_layout", "range_outside", struct.pack("<H", len(one)) + one + ranges([(0, 64 << 20, K4)]))

write("hello", "three_in_order", hello(0, 3, 42) + hello(1, 3, 42) + hello(2, 3, 42))
write("hello", "four_any_order", hello(3, 4, 7) + hello(0, 4, 7) + hello(2, 4, 7) + hello(1, 4, 7))
write("hello", "duplicate", hello(0, 3, 1) + hello(0, 3, 1) + hello(1, 3, 1) + hello(2, 3, 1))
write("hello", "other_session", hello(0, 3, 1) + hello(1, 3, 2) + hello(1, 3, 1) + hello(2, 3, 1))
write("hello", "count_changes", hello(0, 3, 1) + hello(1, 4, 1))
write("hello", "index_mismatch", hello(0, 3, 1, channel=5))
write("hello", "not_a_hello", header(PAGE, length=K4) + bytes(K4) + hello(0, 3, 1))
write("hello", "too_many", hello(0, 5000, 1))
write("hello", "truncated", hello(0, 3, 1)[:40])

AUTH_OFFER, AUTH_CHALLENGE, AUTH_PROOF = 15, 16, 17
TLS_HANDSHAKE = 19


def auth(step, nonce=b"\x5a" * 32, mac=bytes(32), channel=0):
    return header(CONTROL, length=64, flags=step, channel=channel) + nonce + mac


write("channel_auth", "offer_then_proof", hello(0, 3, 42) + auth(AUTH_OFFER) + auth(AUTH_PROOF))
write("channel_auth", "proof_first", hello(1, 3, 42, channel=1) + auth(AUTH_PROOF, channel=1))
write("channel_auth", "reflected_challenge", hello(0, 3, 1) + auth(AUTH_OFFER) + auth(AUTH_CHALLENGE))
write("channel_auth", "layout_instead", hello(0, 3, 1) + header(CONTROL, length=5000, flags=1) + bytes(5000))
write("channel_auth", "tls_frame_instead", hello(0, 3, 1) + header(CONTROL, length=100, flags=TLS_HANDSHAKE) + bytes(100))
write("channel_auth", "short_offer", hello(0, 3, 1) + header(CONTROL, length=16, flags=AUTH_OFFER) + bytes(16))

# sealed_control: frames sealed as engine/frame_seal.h does, with the fuzz target's receive key
# (32 bytes of 0x6b), sequence numbers from 0, AES-256-GCM (python3-cryptography).
SEALED = 18


def sealed(seq, inner_type, payload=b"", rnd=0, key=b"\x6b" * 32):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    inner = header(CONTROL, length=len(payload), flags=inner_type, rnd=rnd) + payload
    outer = header(CONTROL, length=len(inner) + 16, flags=SEALED)
    nonce = bytes(4) + struct.pack("<Q", seq)
    return outer + AESGCM(key).encrypt(nonce, inner, outer)


LAYOUT_ACK, ROUND_ACK, KEEPALIVE, ERROR = 2, 3, 14, 9
write("sealed_control", "layout", sealed(0, 1, layout([(b"ram", 16 << 20, K4)])))
write("sealed_control", "acks", sealed(0, LAYOUT_ACK) + sealed(1, KEEPALIVE) + sealed(2, ROUND_ACK, rnd=1))
write("sealed_control", "replayed", sealed(0, LAYOUT_ACK) + sealed(0, LAYOUT_ACK))
write("sealed_control", "reordered", sealed(1, ROUND_ACK) + sealed(0, LAYOUT_ACK))
write("sealed_control", "plain", header(CONTROL, flags=LAYOUT_ACK))
write("sealed_control", "error_text", sealed(0, ERROR, b"the destination gave up"))
write("sealed_control", "short", header(CONTROL, length=8, flags=SEALED) + bytes(8))

# sealed_marker: markers on bulk channel 2 as engine/marker_seal.h seals them (inner header only,
# outer block 1 for a page tag whose GMAC also covers the page's bytes), then the page frames.
TAGS_NEXT = 1


def marker(seq, inner, covered=b"", key=b"\x6b" * 32):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    typ = inner[3]
    outer = header(CONTROL, block=TAGS_NEXT if typ in (PAGE, ZERO) else 0, length=48, flags=SEALED,
                   channel=2)
    nonce = bytes(4) + struct.pack("<Q", seq)
    return outer + AESGCM(key).encrypt(nonce, inner, outer + covered)


page = bytes(range(256)) * 16
ph = header(PAGE, block=1, offset=8 * K4, length=K4, flags=2, rnd=1, channel=2)
zh = header(ZERO, block=1, offset=9 * K4, length=K4, flags=2, rnd=1, channel=2)
re1 = header(ROUND_END, rnd=1, channel=2)
write("sealed_marker", "round_end", marker(0, re1))
write("sealed_marker", "tagged_pages", marker(0, ph, page) + ph + page + marker(1, zh) + zh + marker(2, re1))
write("sealed_marker", "flipped_page", marker(0, ph, page) + ph + page[:100] + b"\x00" + page[101:])
write("sealed_marker", "replayed_round_end", marker(0, re1) + marker(0, re1))
write("sealed_marker", "untagged_page", ph + page)
write("sealed_marker", "two_tags", marker(0, ph, page) + marker(1, zh) + zh)
write("sealed_marker", "plain_round_end", re1)

spec = b"vcpus=2,ram=1048576,page=4K,wss=0.25,rate=20000,pattern=random,hot=80/20,read=0%,readers=0,seed=1,ring=1024"
good = state(spec, 2, [(1, 3, 100, 90, 10), (99, 0, 5, 5, 0)])
write("guest_state", "valid", b"\x00" + good)
write("guest_state", "valid_fixsum", b"\x01" + good)
write("guest_state", "short_spec", b"\x00" + state(b"vcpus=1,ram=1M", 1, [(5, 1, 0, 0, 0)]))
write("guest_state", "bad_sum", b"\x00" + state(spec, 2, [(1, 3, 1, 1, 0), (2, 0, 0, 0, 0)], good_sum=False))
write("guest_state", "bad_magic", b"\x01" + state(spec, 2, [(1, 3, 1, 1, 0), (2, 0, 0, 0, 0)], magic=1))
write("guest_state", "vcpu_mismatch", b"\x01" + state(spec, 3, [(1, 0, 0, 0, 0)] * 3))
write("guest_state", "cursor_out_of_range", b"\x01" + state(spec, 2, [(1, 1 << 40, 0, 0, 0), (2, 0, 0, 0, 0)]))
write("guest_state", "wrong_ram", b"\x01" + state(b"vcpus=1,ram=2M", 1, [(5, 1, 0, 0, 0)]))
write("guest_state", "huge_spec_len", b"\x01" + struct.pack("<QIII", 0x545347544E524554, 1, 1, 0xFFFFFFFF) + bytes(8))
write("guest_state", "empty", b"\x00")


# attach_message: attach protocol messages (attach/protocol.h), 16-byte header + payload.
TRNV = 0x564E5254


def amsg(typ, payload=b"", mid=1, magic=TRNV, version=1, length=None):
    n = len(payload) if length is None else length
    return struct.pack("<IHHII", magic, version, typ, n, mid) + payload


def region(gpa, size, off, addr, page, name):
    return struct.pack("<QQQQII", gpa, size, off, addr, page, 0) + name


write("attach_message", "attach", amsg(1, struct.pack("<HHIQII", 1, 1, 1, 0x3F, 2, 0) + b"vmm") +
      amsg(2, region(0, 64 << 20, 0, 0x7F0000000000, K4, b"ram"), 2) +
      amsg(3, struct.pack("<II", 1, 0), 3))
write("attach_message", "requests", amsg(16) + amsg(20, mid=2) + amsg(21, mid=3) +
      amsg(23, struct.pack("<IIQ", 1, 0, 500), 4) + amsg(24, struct.pack("<II", 0, 0), 5) +
      amsg(29, struct.pack("<II", 1, 0), 6))
write("attach_message", "replies", amsg(64, struct.pack("<Q", 12)) +
      amsg(27, struct.pack("<II", 2, 0) + struct.pack("<IIQQ", 0, 0, K4, K4) * 2) +
      amsg(29, struct.pack("<QQQQ", 10, 0, 5, 0) + b"ok") +
      amsg(65, struct.pack("<I", 3) + b"no throttle"))
write("attach_message", "bad_magic", amsg(1, magic=0x1234))
write("attach_message", "bad_version", amsg(1, version=9))
write("attach_message", "huge_length", amsg(22, length=0xFFFFFFFF))
write("attach_message", "free_count_lies", amsg(27, struct.pack("<II", 1000, 0)))
write("attach_message", "region_nul_name", amsg(2, region(0, K4, 0, 0, K4, b"r\0am")))


# recovery_messages: postcopy recovery's control messages (dataplane/engine/resync.h), records of
# [u8 type][u8 round][u16 length][payload]: kResume (11) with the target's token, then the
# destination's kReceivedBitmap (12) per block of the fuzz layout (4 host pages of 2M: 8 bytes;
# 256 of 4K: 32 bytes) and kResumeAck (13); kKeepalive is 14.
RESUME, RECEIVED, RESUME_ACK, KEEPALIVE, ERROR = 11, 12, 13, 14, 9
TOKEN = struct.pack("<Q", 0x0123456789ABCDEF)


def rec(typ, rnd=0, payload=b""):
    return struct.pack("<BBH", typ, rnd, len(payload)) + payload


half = bytes([0x05]) + bytes(7)
some = bytes([0xFF, 0x0F]) + bytes(30)
write("recovery_messages", "resync", rec(RESUME, 0, TOKEN) + rec(RECEIVED, 0, half) +
      rec(RECEIVED, 1, some) + rec(RESUME_ACK))
write("recovery_messages", "all_received", rec(RESUME, 0, TOKEN) + rec(RECEIVED, 1, b"\xff" * 32) +
      rec(RECEIVED, 0, b"\xff" * 8) + rec(RESUME_ACK))
write("recovery_messages", "ack_early", rec(RESUME, 0, TOKEN) + rec(RECEIVED, 0, half) + rec(RESUME_ACK))
write("recovery_messages", "twice", rec(RESUME, 0, TOKEN) + rec(RECEIVED, 0, half) + rec(RECEIVED, 0, half))
write("recovery_messages", "wrong_size", rec(RESUME, 0, TOKEN) + rec(RECEIVED, 1, half))
write("recovery_messages", "block_out_of_range", rec(RESUME, 0, TOKEN) + rec(RECEIVED, 7, half))
write("recovery_messages", "wrong_token", rec(RESUME, 0, bytes(8)) + rec(RESUME_ACK))
write("recovery_messages", "short_token", rec(RESUME, 0, TOKEN[:5]))
write("recovery_messages", "keepalive_in_resync", rec(RESUME, 0, TOKEN) + rec(KEEPALIVE))
write("recovery_messages", "refused", rec(RESUME, 0, TOKEN) + rec(ERROR, 0, b"no such migration"))
