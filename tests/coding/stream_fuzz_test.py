"""Mutates a valid stream ≥ 1,000 ways: every mutation must raise BitstreamError."""

import dataclasses

import numpy as np
import pytest

import llic_jax
from llic_jax.coding import container


@pytest.fixture(scope="module")
def codec(photo, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    blob = llic_jax.compress(model, variables, np.ascontiguousarray(photo[:48, :70]))
    return model, variables, blob


def _mutations(blob: bytes, rng: np.random.Generator):
    n = len(blob)
    for i in range(n):  # every byte, changed
        yield blob[:i] + bytes([blob[i] ^ int(rng.integers(1, 256))]) + blob[i + 1 :]
    for bit in rng.choice(8 * n, size=min(8 * n, 1000), replace=False):
        b = bytearray(blob)
        b[bit // 8] ^= 1 << (bit % 8)
        yield bytes(b)
    for cut in range(n):  # every truncation
        yield blob[:cut]
    for _ in range(150):
        yield blob + rng.bytes(int(rng.integers(1, 64)))
        yield rng.bytes(int(rng.integers(0, 2 * n)))
        start = int(rng.integers(0, n))
        yield blob[:start] + rng.bytes(int(rng.integers(1, 16))) + blob[start + 8 :]


def test_every_mutation_raises_bitstream_error(codec):
    model, variables, blob = codec
    rng = np.random.default_rng(0)
    count = 0
    for mutated in _mutations(blob, rng):
        if mutated == blob:
            continue
        with pytest.raises(llic_jax.BitstreamError):
            llic_jax.decompress(model, variables, mutated)
        count += 1
    assert count >= 1000


def test_payload_corruption_is_caught_by_the_symbol_crc(codec):
    model, variables, blob = codec
    # The last byte belongs to the y stream: the header still parses, the symbols fail.
    mutated = blob[:-1] + bytes([blob[-1] ^ 0x55])
    with pytest.raises(llic_jax.BitstreamError, match="CRC|corrupt"):
        llic_jax.decompress(model, variables, mutated)


def test_header_size_fields_are_bounded_before_allocation(codec):
    model, variables, blob = codec
    # A forged header (valid CRC) that claims a 65535×65535 image must be refused
    # without trying to decode 4 G pixels.
    header, streams = container.unpack(blob)
    forged = dataclasses.replace(
        header, height=65535, width=65535, padded_height=65536, padded_width=65536,
        pad_top=0, pad_left=0,
    )  # fmt: skip
    with pytest.raises(llic_jax.BitstreamError):
        llic_jax.decompress(model, variables, container.pack(forged, streams))
