"""Tests of llic_jax.coding.container (the versioned .llic bitstream container)."""

import dataclasses
import struct
import zlib

import numpy as np
import pytest

from llic_jax.coding import container
from llic_jax.coding.container import BitstreamError, Header, pack, unpack

HEADER = Header(
    fingerprint=b"\x01\x23\x45\x67\x89\xab\xcd\xef",
    height=500,
    width=333,
    padded_height=512,
    padded_width=384,
    pad_mode=container.PAD_REPLICATE,
    symbols_crc32=0xDEADBEEF,
)
HEADER_V1 = dataclasses.replace(HEADER, model_name="llic-elic")
STREAMS = [b"hyper-latent stream", b"", b"\x00\xff" * 40, b"last"]


def _raw(
    name=b"llic-elic",
    version=1,
    name_len=None,
    fingerprint=b"12345678",
    sizes=(500, 333, 512, 384),
    pad_mode=0,
    sym_crc=7,
    lengths=(3,),
    count=None,
    payload=b"abc",
    magic=b"LLIC",
):
    """A version 1 container written field by field from the spec, valid header CRC."""
    lengths = tuple(lengths)
    head = (
        magic
        + struct.pack(">BB", version, len(name) if name_len is None else name_len)
        + name
        + fingerprint
        + struct.pack(">HHII", *sizes)
        + struct.pack(">BIB", pad_mode, sym_crc, len(lengths) if count is None else count)
        + struct.pack(f">{len(lengths)}I", *lengths)
    )
    return head + struct.pack(">I", zlib.crc32(head)) + payload


def _leb128(value):
    """Unsigned LEB128 written out by hand from its definition."""
    groups = [
        (value >> shift) & 0x7F for shift in range(0, max(value.bit_length(), 1), 7)
    ]
    return bytes([g | 0x80 for g in groups[:-1]] + [groups[-1]])


def _raw_v2(
    version=2,
    fingerprint=b"12345678",
    sizes=(500, 333, 12, 51),
    flags=0,
    sym_crc=7,
    lengths=(3,),
    count=None,
    payload=b"abc",
    varints=None,
    placement=(),
    coarseness=None,
):
    """A version 2 container written field by field from the spec, valid header CRC.

    ``varints`` replaces the encoded sizes and lengths (to forge malformed ones);
    ``placement``: the (top, left) varints, written whatever the flags say;
    ``coarseness``: the byte version 3 adds after the flags (written if not None).
    """
    lengths = tuple(lengths)
    sizes_bytes = b"".join(map(_leb128, sizes))
    lengths_bytes = b"".join(map(_leb128, lengths))
    if varints is not None:
        sizes_bytes, lengths_bytes = varints
    head = (
        b"LLIC"
        + bytes([version])
        + fingerprint
        + sizes_bytes
        + bytes([flags])
        + (b"" if coarseness is None else bytes([coarseness]))
        + struct.pack(">IB", sym_crc, len(lengths) if count is None else count)
        + b"".join(map(_leb128, placement))
        + lengths_bytes
    )
    return head + struct.pack(">I", zlib.crc32(head)) + payload


@pytest.mark.parametrize(
    "header, version, header_bytes",
    [
        # v2: 5 + 8 fingerprint + sizes 500, 333 (2 bytes each) and padding 12, 51
        # (1 each) + 6 + four 1-byte lengths + 4 CRC
        (HEADER, 2, 5 + 8 + 2 + 2 + 1 + 1 + 6 + 4 + 4),
        (HEADER_V1, 1, 36 + len("llic-elic") + 4 * len(STREAMS)),
        # v3: v2 and the coarseness byte
        (dataclasses.replace(HEADER, coarseness=3), 3, 5 + 8 + 2 + 2 + 1 + 1 + 7 + 4 + 4),
    ],
)
def test_round_trip(header, version, header_bytes):
    blob = pack(header, STREAMS, version=version)
    unpacked, streams = unpack(blob)
    assert streams == STREAMS
    assert unpacked == dataclasses.replace(header, stream_lengths=(19, 0, 80, 4))
    assert len(blob) == header_bytes + sum(map(len, STREAMS))


def test_version_2_is_the_default_and_smaller():
    assert pack(HEADER, STREAMS) == pack(HEADER, STREAMS, version=2)
    assert pack(HEADER, STREAMS)[4] == 2
    assert len(pack(HEADER, STREAMS)) < len(pack(HEADER_V1, STREAMS, version=1)) - 25


def test_version_3_only_for_a_coarseness():
    coarser = dataclasses.replace(HEADER, coarseness=15)
    blob = pack(coarser, [b"abc"])
    assert blob[4] == 3
    assert blob == _raw_v2(
        version=3, fingerprint=HEADER.fingerprint, sym_crc=0xDEADBEEF, coarseness=15
    )
    assert unpack(blob)[0].coarseness == 15
    # a coarseness of 0 written as version 3 reads back as the version 2 header
    assert (
        unpack(pack(HEADER, [b"abc"], version=3))[0] == unpack(pack(HEADER, [b"abc"]))[0]
    )
    for version in (1, 2):
        with pytest.raises(ValueError, match="cannot store a coarseness"):
            pack(dataclasses.replace(HEADER_V1 if version == 1 else HEADER,
                                     coarseness=1), [b"x"], version=version)  # fmt: skip
    with pytest.raises(ValueError, match="coarseness"):
        dataclasses.replace(HEADER, coarseness=16)


def test_pack_matches_the_documented_layouts():
    assert pack(HEADER_V1, [b"abc"], version=1) == _raw(
        fingerprint=HEADER.fingerprint, sym_crc=0xDEADBEEF
    )
    assert pack(HEADER, [b"abc"]) == _raw_v2(
        fingerprint=HEADER.fingerprint, sym_crc=0xDEADBEEF
    )
    big = dataclasses.replace(
        HEADER, height=65535, width=1, padded_height=65535 + 1024, padded_width=1
    )
    lengths = (0, 127, 128, 2**14, 2**32 - 1)
    blob = pack(big, [b"x"])[:-1]  # the header only, via a one-byte stream
    forged = _raw_v2(
        fingerprint=HEADER.fingerprint,
        sizes=(65535, 1, 1024, 0),
        sym_crc=0xDEADBEEF,
        lengths=(1,),
        payload=b"",
    )
    assert blob == forged
    assert [_leb128(n) for n in lengths] == [
        b"\x00",
        b"\x7f",
        b"\x80\x01",
        b"\x80\x80\x01",
        b"\xff\xff\xff\xff\x0f",
    ]
    assert [container._varint(n) for n in lengths] == [_leb128(n) for n in lengths]
    assert [container.length_field_bytes(n) for n in lengths] == [1, 1, 2, 3, 5]


@pytest.mark.parametrize("orientation", range(8))
@pytest.mark.parametrize("pad_mode", [container.PAD_REPLICATE, container.PAD_ZERO])
@pytest.mark.parametrize("post_filtered, ensemble", [(0, 0), (1, 0), (1, 1)])
@pytest.mark.parametrize("wiener", [0, 1])
def test_orientation_pad_mode_and_filters_share_the_flags_byte(
    orientation, pad_mode, post_filtered, ensemble, wiener
):
    header = dataclasses.replace(
        HEADER, orientation=orientation, pad_mode=pad_mode, post_filtered=post_filtered,
        post_filter_ensemble=ensemble, wiener_filtered=wiener,
    )  # fmt: skip
    blob = pack(header, [b"abc"])
    assert blob == _raw_v2(
        fingerprint=HEADER.fingerprint,
        sym_crc=0xDEADBEEF,
        flags=pad_mode | orientation << 1 | post_filtered << 4 | ensemble << 5
        | wiener << 6,
    )  # fmt: skip
    assert unpack(blob)[0] == dataclasses.replace(header, stream_lengths=(3,))


@pytest.mark.parametrize("placement", [(6, 0), (0, 25), (12, 51), (200, 300)])
@pytest.mark.parametrize("orientation, wiener", [(0, 0), (5, 1)])
def test_placement_sets_flag_bit_7_and_two_varints(placement, orientation, wiener):
    """(0, 0) writes what decoders before the placement wrote (the tests above)."""
    top, left = placement
    fields = dict(orientation=orientation, wiener_filtered=wiener, pad_top=top,
                  pad_left=left, padded_height=500 + max(12, top),
                  padded_width=333 + max(51, left))  # fmt: skip
    header = dataclasses.replace(HEADER, **fields)
    blob = pack(header, [b"abc"])
    assert blob == _raw_v2(
        fingerprint=HEADER.fingerprint,
        sizes=(500, 333, max(12, top), max(51, left)),
        sym_crc=0xDEADBEEF,
        flags=orientation << 1 | wiener << 6 | 0x80,
        placement=placement,
    )
    assert unpack(blob)[0] == dataclasses.replace(header, stream_lengths=(3,))


@pytest.mark.parametrize(
    "fields, problem",
    [
        (dict(pad_top=13), "padding above the image 13 out of range 0..12"),
        (dict(pad_left=52), "padding left of the image 52 out of range 0..51"),
        (dict(pad_top=-1), "padding above"),
        (dict(pad_left=1.0), "integers"),
    ],
)
def test_header_refuses_a_placement_outside_the_padding(fields, problem):
    with pytest.raises(ValueError, match=problem):
        dataclasses.replace(HEADER, **fields)


def test_pack_checks_version_and_model_name():
    with pytest.raises(ValueError, match="no model name"):
        pack(HEADER_V1, [b"x"])
    with pytest.raises(ValueError, match="needs the model name"):
        pack(HEADER, [b"x"], version=1)
    with pytest.raises(ValueError, match="version"):
        pack(HEADER, [b"x"], version=4)
    with pytest.raises(ValueError, match="no model name"):
        pack(HEADER_V1, [b"x"], version=3)
    with pytest.raises(ValueError, match="orientation"):
        pack(dataclasses.replace(HEADER_V1, orientation=1), [b"x"], version=1)
    with pytest.raises(ValueError, match="post-filter"):
        pack(dataclasses.replace(HEADER_V1, post_filtered=1), [b"x"], version=1)
    with pytest.raises(ValueError, match="wiener"):
        pack(dataclasses.replace(HEADER_V1, wiener_filtered=1), [b"x"], version=1)
    with pytest.raises(ValueError, match="placement"):
        pack(dataclasses.replace(HEADER_V1, pad_left=1), [b"x"], version=1)
    ensemble = dict(post_filtered=1, post_filter_ensemble=1)
    with pytest.raises(ValueError, match="post-filter"):
        pack(dataclasses.replace(HEADER_V1, **ensemble), [b"x"], version=1)
    unpacked = unpack(pack(HEADER_V1, [b"x"], version=1))[0]
    assert unpacked.orientation == unpacked.post_filtered == 0
    assert unpacked.post_filter_ensemble == unpacked.pad_top == unpacked.pad_left == 0


def test_pack_checks_given_stream_lengths():
    header = dataclasses.replace(HEADER, stream_lengths=(3,))
    assert unpack(pack(header, [b"abc"]))[1] == [b"abc"]
    with pytest.raises(ValueError, match="do not match"):
        pack(header, [b"abcd"])


@pytest.mark.parametrize(
    "change",
    [
        dict(model_name=""),
        dict(model_name="x" * 65),
        dict(model_name="é" * 33),  # 66 bytes of UTF-8
        dict(model_name="\udcff"),  # lone surrogate: not encodable
        dict(fingerprint=b"1234567"),
        dict(fingerprint="12345678"),
        dict(height=0),
        dict(width=65536),
        dict(padded_height=499),
        dict(padded_width=333 + 1025),
        dict(pad_mode=2),
        dict(symbols_crc32=-1),
        dict(symbols_crc32=2**32),
        dict(height=1.5),
        dict(stream_lengths=(1,) * 17),
        dict(orientation=8),
        dict(orientation=-1),
        dict(orientation=1.0),
        dict(post_filtered=2),
        dict(post_filtered=True),
        dict(post_filter_ensemble=1),  # the ensemble of a filter not applied
        dict(post_filtered=1, post_filter_ensemble=2),
        dict(post_filtered=1, post_filter_ensemble=True),
        dict(wiener_filtered=2),
        dict(wiener_filtered=True),
    ],
)
def test_invalid_headers_are_rejected(change):
    with pytest.raises(ValueError):
        pack(dataclasses.replace(HEADER_V1, **change), [b"x"], version=1)
    if "model_name" not in change:
        with pytest.raises(ValueError):
            pack(dataclasses.replace(HEADER, **change), [b"x"])


def test_stream_count_is_checked_on_pack():
    with pytest.raises(ValueError):
        pack(HEADER, [])
    with pytest.raises(ValueError):
        pack(HEADER, [b"x"] * 17)
    assert len(unpack(pack(HEADER, [b"x"] * 16))[1]) == 16


def test_limits_are_accepted():
    header = dataclasses.replace(
        HEADER,
        height=65535,
        width=1,
        padded_height=65535 + 1024,
        padded_width=1,
        pad_mode=container.PAD_ZERO,
        symbols_crc32=2**32 - 1,
    )
    assert unpack(pack(header, [b""]))[0] == dataclasses.replace(
        header, stream_lengths=(0,)
    )
    named = dataclasses.replace(header, model_name="m" * 64)
    assert unpack(pack(named, [b""], version=1))[0].model_name == "m" * 64


def test_bitstream_error_is_a_value_error():
    assert issubclass(BitstreamError, ValueError)


@pytest.mark.parametrize(
    "blob, reason",
    [
        (b"", "too short"),
        (_raw()[:40], "too short"),
        (b"LLIX" + _raw()[4:], "magic"),
        (_raw(version=4), "version"),
        (_raw_v2(version=3, coarseness=16), "coarseness"),
        (_raw_v2(version=3, coarseness=1)[:26], "too short"),
        (_raw_v2(version=0), "version"),
        (_raw(name=b"", name_len=0), "name length"),
        (_raw(name=b"x" * 65), "name length"),
        (_raw(name=b"\xff\xfe"), "utf-8"),
        (_raw(sizes=(0, 333, 512, 384)), "height"),
        (_raw(sizes=(500, 333, 499, 384)), "padded height"),
        (_raw(sizes=(500, 333, 512, 333 + 1025)), "padded width"),
        (_raw(pad_mode=2), "pad mode"),
        (_raw(lengths=(), count=0, payload=b""), "stream count"),
        (_raw(lengths=(1,) * 17, payload=b"x" * 17), "stream count"),
        (_raw(lengths=(2**32 - 1,)), "truncated"),
        (_raw(lengths=(2, 2)), "truncated"),
        (_raw(lengths=(1, 1)), "trailing"),
        (_raw()[:-1] + b"\x01" + _raw()[-1:], "trailing"),
        (_raw()[:30] + bytes([_raw()[30] ^ 4]) + _raw()[31:], "checksum"),
        (_raw_v2()[:27], "too short"),
        (_raw_v2()[:29], "too short"),
        (_raw_v2(sizes=(0, 333, 12, 51)), "height"),
        (_raw_v2(sizes=(500, 65536, 12, 51)), "width"),
        (_raw_v2(sizes=(500, 333, 1025, 51)), "padded height"),
        (_raw_v2(flags=0x20), "ensemble flag set without the post-filter flag"),
        (_raw_v2(flags=0x80, placement=(0, 0)), "placement flag with no offset"),
        (_raw_v2(flags=0x80, placement=(13, 0)), "above the image 13 out of range"),
        (_raw_v2(flags=0x80, placement=(0, 52)), "left of the image 52 out of range"),
        (_raw_v2(flags=0x80), "checksum"),  # the varints read lengths and crc
        (_raw_v2(lengths=(), count=0, payload=b""), "stream count"),
        (_raw_v2(lengths=(1,) * 17, payload=b"x" * 17), "stream count"),
        (_raw_v2(lengths=(2**32,)), "stream length"),
        (_raw_v2(lengths=(2**32 - 1,)), "truncated"),
        (_raw_v2(lengths=(2, 2)), "truncated"),
        (_raw_v2(lengths=(1, 1)), "trailing"),
        (_raw_v2(varints=(b"\xf4\x03\xcd\x02\x0c\x33", b"\x83\x00")), "padded"),
        (_raw_v2(varints=(b"\xf4\x03\xcd\x02\x0c\x33", b"\x83" * 6)), "too long"),
        (_raw_v2()[:20] + bytes([_raw_v2()[20] ^ 4]) + _raw_v2()[21:], "checksum"),
    ],
)
def test_malformed_containers_give_a_reason(blob, reason):
    with pytest.raises(BitstreamError, match=reason) as info:
        unpack(blob)
    message = str(info.value)
    assert "\n" not in message and message[:1].islower()


def _mutations(blob, payload_at, rng, count):
    """Yields (mutated blob, confined to the payload) pairs, all different from blob."""
    n = len(blob)
    kinds = [
        "flip",
        "flip_payload",
        "byte",
        "run",
        "truncate",
        "extend",
        "insert",
        "delete",
    ]
    made = 0
    while made < count:
        kind = kinds[made % len(kinds)]
        data = bytearray(blob)
        lo = payload_at if kind == "flip_payload" else 0
        if kind in ("flip", "flip_payload"):
            bit = int(rng.integers(8 * lo, 8 * n))
            data[bit // 8] ^= 1 << (bit % 8)
        elif kind == "byte":
            data[int(rng.integers(n))] = int(rng.integers(256))
        elif kind == "run":
            at = int(rng.integers(n))
            data[at : at + 8] = rng.bytes(len(data[at : at + 8]))
        elif kind == "truncate":
            del data[int(rng.integers(n)) :]
        elif kind == "extend":
            data += rng.bytes(int(rng.integers(1, 20)))
        elif kind == "insert":
            data.insert(int(rng.integers(n + 1)), int(rng.integers(256)))
        else:
            del data[int(rng.integers(n))]
        mutated = bytes(data)
        if mutated == blob:
            continue
        changed = [i for i in range(min(n, len(mutated))) if mutated[i] != blob[i]]
        confined = len(mutated) == n and min(changed) >= payload_at
        made += 1
        yield mutated, confined


def _field_changes(blob, payload_at):
    """Every header byte and every field set to another value, CRC left as is."""
    for at in range(payload_at):
        for value in (blob[at] ^ 0x01, blob[at] ^ 0x80, 0x00, 0xFF):
            if value != blob[at]:
                yield blob[:at] + bytes([value]) + blob[at + 1 :], False


@pytest.mark.parametrize("version", [1, 2, 3])
def test_mutations_are_detected_or_confined_to_the_payload(version):
    header = {1: HEADER_V1, 2: HEADER, 3: dataclasses.replace(HEADER, coarseness=3)}
    blob = pack(header[version], STREAMS, version=version)
    payload_at = len(blob) - sum(map(len, STREAMS))
    rng = np.random.default_rng(0)
    cases = list(_mutations(blob, payload_at, rng, 1200)) + list(
        _field_changes(blob, payload_at)
    )
    assert len(cases) >= 1000
    outcomes = {True: 0, False: 0}
    for mutated, confined in cases:
        try:
            header, streams = unpack(mutated)
        except BitstreamError as e:
            assert not confined, f"payload-only change rejected: {e}"
            assert "\n" not in str(e) and str(e)[:1].islower()
            outcomes[False] += 1
            continue
        assert confined, "a header, length or size change went undetected"
        assert header == unpack(blob)[0]
        assert streams != STREAMS
        outcomes[True] += 1
    assert outcomes[True] > 100 and outcomes[False] > 700  # both kinds exercised


def test_symbols_crc32():
    a = np.arange(-5, 7, dtype=np.int32).reshape(3, 4)
    b = np.array([2**31 - 1, -(2**31)], dtype=np.int64)
    expected = zlib.crc32(a.astype("<i4").tobytes() + b.astype("<i4").tobytes())
    assert container.symbols_crc32([a, b]) == expected
    assert container.symbols_crc32([a.ravel(), b]) == expected  # shape does not matter
    assert container.symbols_crc32([b, a]) != expected  # order does
    assert container.symbols_crc32([]) == 0
    with pytest.raises(ValueError):
        container.symbols_crc32([np.array([2**31])])
    with pytest.raises(ValueError):
        container.symbols_crc32([np.array([0.5])])
