#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_envelope into corpus/envelope/.

Valid envelopes with and without the optional fields, with unknown keys of
every CBOR kind, and a few malformed ones near the edges the decoder
checks.  Needs only the standard library; run it from anywhere:

    python3 tests/fuzz/make_corpus.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   "corpus", "envelope")

ID = bytes(range(0x01, 0x11))
CORR = bytes(range(0xA0, 0xB0))


def head(major, value, width=None):
    """A CBOR head; width forces a longer form (1, 2, 4 or 8 bytes)."""
    if width is None:
        if value < 24:
            return bytes([major << 5 | value])
        width = 1 if value < 1 << 8 else 2 if value < 1 << 16 else \
            4 if value < 1 << 32 else 8
    ai = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes([major << 5 | ai]) + value.to_bytes(width, "big")


def uint(v, width=None):
    return head(0, v, width)


def bstr(b):
    return head(2, len(b)) + b


def tstr(s):
    b = s.encode()
    return head(3, len(b)) + b


def cmap(pairs):
    return head(5, len(pairs)) + b"".join(k + v for k, v in pairs)


def required(payload=b"hello", topic="sensors/temp/1", ts=1700000000123):
    return [(uint(0), bstr(payload)), (uint(1), bstr(ID)),
            (uint(2), tstr(topic)), (uint(3), uint(ts))]


def full():
    return required() + [
        (uint(4), bstr(CORR)),
        (uint(5), tstr("application/json")),
        (uint(6), cmap([(tstr("traceparent"), tstr("00-4bf9-00f0-01")),
                        (tstr("x"), tstr(""))])),
        (uint(7), uint(2)),
        (uint(8), tstr("dev-7")),
    ]


def unknown_values():
    nested = b"\x83\x01\x82\x02\x03\xa1\x61k\x80"
    indef = b"\x9f\x01\xbf\x61a\x5f\x41x\xff\xff\x7f\x61y\xff\xff"
    tagged = b"\x82\xc1\x1a\x65\x5d\x4a\x00\xd8\x40\x43abc"
    floats = b"\x83\xf9\x3c\x00" + b"\xfa" + struct.pack(">f", 1.5) + \
        b"\xfb" + struct.pack(">d", -2.25)
    simple = b"\x86\xf4\xf5\xf6\xf7\xe0\xf8\x20"
    return [(uint(9), nested), (uint(100), indef), (uint(1000), tagged),
            (uint(0xFFFFFFFF), floats), (uint(23), simple),
            (uint(24), b"\x3b" + b"\xff" * 8)]


def files():
    f = {}
    f["valid-minimal"] = cmap(required())
    f["valid-full"] = cmap(full())
    f["valid-empty-payload"] = cmap(required(payload=b"", topic="/"))
    f["valid-corr-attempt"] = cmap(required() + [(uint(4), bstr(CORR)),
                                                 (uint(7), uint(0xFFFFFFFF))])
    f["valid-headers"] = cmap(required() + [(uint(6), cmap(
        [(tstr("h%d" % i), tstr("v" * i)) for i in range(8)]))])
    f["valid-unknown-keys"] = cmap(required() + unknown_values())
    f["valid-reordered-long-heads"] = cmap(
        [(uint(8, 8), tstr("k")), (uint(3, 4), uint(7, 8)),
         (uint(2, 2), head(3, 3, 1) + b"a/b"), (uint(1, 1), bstr(ID)),
         (uint(0), head(2, 2, 4) + b"\x00\xff")])
    f["valid-binary-payload"] = cmap(required(payload=bytes(range(256)),
                                              topic="$SYS/a//b"))
    # Malformed: each breaks one rule.
    good = cmap(full())
    f["bad-truncated"] = good[:len(good) // 2]
    f["bad-trailing"] = good + b"\x00"
    f["bad-duplicate-topic"] = cmap(required() + [(uint(2), tstr("x"))])
    f["bad-missing-ts"] = cmap(required()[:3])
    f["bad-id-15"] = cmap([(uint(1), bstr(ID[:15])) if k == uint(1) else
                           (k, v) for k, v in required()])
    f["bad-topic-wildcard"] = cmap(required(topic="a/+"))
    f["bad-indef-payload"] = cmap([(uint(0), b"\x5f\x41a\xff")] +
                                  required()[1:])
    f["bad-bstr-4gib"] = b"\xa1\x00\x5a\xff\xff\xff\xff\x01\x02\x03"
    f["bad-deep"] = cmap(required() + [(uint(9), b"\x81" * 9 + b"\x00")])
    f["bad-headers-33"] = cmap(required() + [(uint(6), cmap(
        [(tstr("n"), tstr("v"))] * 33))])
    f["bad-negint-key"] = cmap(required() + [(b"\x20", uint(0))])
    return f


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(files().items()):
        with open(os.path.join(OUT, name + ".cbor"), "wb") as fh:
            fh.write(data)
    print("wrote %d files to %s" % (len(files()), OUT))


if __name__ == "__main__":
    main()
