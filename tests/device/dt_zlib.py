"""tether.zlib on both interpreters: Adler-32 vectors, the stored-block writer byte for byte,
streams CPython's zlib and gzip wrote (inflated by the port's own `deflate`), the output
bound, and corrupt, truncated or trailing input raising ZlibError and nothing else."""

from harness import Rng, raises
from tether.zlib import ZlibError, adler32, compress, decompress, store

TEXT = b"Tether telemetry: " + b"21.5," * 40  # 218 bytes
# CPython: zlib.compress(TEXT, 9), the same as raw deflate (wbits -15) and gzip (mtime 0).
Z_TEXT = "78da0b492dc9482d522849cd49cd4d2d29aab4523032d433d51906040064412c92"
RAW_TEXT = "0b492dc9482d522849cd49cd4d2d29aab4523032d433d519060400"
GZ_TEXT = (
    "1f8b08000000000002030b492dc9482d522849cd49cd4d2d29aab4523032d433d519060400a225a619da000000"
)
W9_TEXT = "18d30b492dc9482d522849cd49cd4d2d29aab4523032d433d51906040064412c92"  # 512-byte window


def h(text):
    return bytes.fromhex(text)


def bomb():
    """CPython's zlib.compress(bytes(256 KiB), 9): 279 bytes that inflate to 262144."""
    return h("78daedc13101000000c2a0f54fed6d07a0") + bytes(254) + h("de00003c0001")


def test_adler32_matches_zlib():
    assert adler32(b"") == 1
    assert adler32(b"a") == 0x00620062
    assert adler32(b"Wikipedia") == 0x11E60398
    assert adler32(bytes(range(256)) * 100) == 0x747FD0E0  # longer than one 5552-byte run
    assert adler32(b"\xff" * 20000) == 0x9F51D664  # the largest sums before a reduction
    assert adler32(b"xyz", 0x12345678) == 0x187F57E3
    assert adler32(b"Wiki" + b"pedia") == adler32(b"pedia", adler32(b"Wiki"))


def test_store_writes_header_stored_block_and_adler32():
    assert store(b"hello") == h("7801" + "01" + "0500faff" + "68656c6c6f" + "062c0215")
    assert store(b"") == h("7801" + "01" + "0000ffff" + "00000001")
    assert store(bytearray(b"hello")) == store(memoryview(b"xhello")[1:])


def test_store_splits_into_65535_byte_blocks():
    data = bytes(range(256)) * 256 + b"tail"  # 65540 bytes: two blocks
    out = store(data)
    assert len(out) == 2 + 5 + 65535 + 5 + 5 + 4
    assert out[2:7] == h("00ffff0000")  # not final, 65535 bytes
    assert out[7 + 65535 : 12 + 65535] == h("010500faff")  # final, 5 bytes
    assert decompress(out, max_size=len(data)) == data


def test_decompress_reads_what_cpython_wrote():
    assert decompress(h(Z_TEXT)) == TEXT
    assert decompress(h(RAW_TEXT), format="raw") == TEXT
    assert decompress(h(GZ_TEXT), format="gzip") == TEXT
    assert decompress(h(W9_TEXT)) == TEXT
    assert decompress(bytearray(h(Z_TEXT))) == TEXT
    assert decompress(memoryview(h(Z_TEXT))) == TEXT


def test_store_and_compress_round_trip():
    rng = Rng(5)
    for n in (0, 1, 100, 5552, 5553, 70000):
        data = rng.bytes(n) if n < 6000 else bytes(n)
        assert decompress(store(data), max_size=n) == data
        assert decompress(compress(data), max_size=n) == data


def test_output_bound_is_exact():
    assert decompress(h(Z_TEXT), max_size=218) == TEXT
    raises(ZlibError, decompress, h(Z_TEXT), max_size=217)
    raises(ZlibError, decompress, store(b"abc"), max_size=2)
    assert decompress(store(b""), max_size=0) == b""


def test_a_zip_bomb_stops_at_the_bound():
    exc = raises(ZlibError, decompress, bomb(), max_size=4096)
    assert "max_size" in str(exc)
    assert len(decompress(bomb(), max_size=1 << 18)) == 1 << 18


def test_bad_checksum_header_and_blocks():
    data = bytearray(h(Z_TEXT))
    data[-1] ^= 1
    raises(ZlibError, decompress, bytes(data))
    raises(ZlibError, decompress, h("7802") + h(Z_TEXT)[2:])  # header check fails
    raises(ZlibError, decompress, h("7f01") + store(b"x")[2:])  # not deflate
    raises(ZlibError, decompress, h("7801" + "07" + "00"))  # block type 3 is reserved
    raises(ZlibError, decompress, h("7801" + "01" + "0500fbff" + "68656c6c6f" + "062c0215"))
    gz = bytearray(h(GZ_TEXT))
    gz[-8] ^= 1  # CRC-32
    raises(ZlibError, decompress, bytes(gz), format="gzip")
    gz = bytearray(h(GZ_TEXT))
    gz[-4] ^= 1  # ISIZE, the length modulo 2^32 (the port's own inflater skips it)
    raises(ZlibError, decompress, bytes(gz), format="gzip")


def test_truncated_at_every_offset():
    for stream, fmt in ((h(Z_TEXT), "zlib"), (store(b"hello"), "zlib"), (h(GZ_TEXT), "gzip")):
        for n in range(len(stream)):
            raises(ZlibError, decompress, stream[:n], format=fmt)


def test_trailing_bytes_after_the_stream():
    raises(ZlibError, decompress, h(Z_TEXT) + b"\x00")
    raises(ZlibError, decompress, store(b"a") + store(b"b"))
    raises(ZlibError, decompress, h(RAW_TEXT) + b"xyz", format="raw")


def test_argument_errors():
    raises(ZlibError, decompress, "text")
    raises(ValueError, decompress, store(b"a"), format="lzma")
    raises(ValueError, decompress, store(b"a"), max_size=-1)


def test_random_and_mutated_input_raise_only_zlib_error():
    rng = Rng(77)
    good = h(Z_TEXT)
    for i in range(400):
        if i % 2:
            data = rng.bytes(rng.below(30))
        else:
            data = bytearray(good)
            data[rng.below(len(data))] = rng.below(256)
            data = bytes(data)
        for fmt in ("zlib", "raw"):
            try:
                decompress(data, max_size=1000, format=fmt)
            except ZlibError:
                pass
