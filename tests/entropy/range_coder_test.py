"""Tests of llic_jax.entropy.range_coder (tfc range-coding ops behind a numpy API)."""

import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

import llic_jax
from llic_jax.coding.container import BitstreamError
from llic_jax.entropy import range_coder as rc


def _random_lookup(rng, lengths, overflow=True, precision=16):
    cdfs = [rc.quantized_cdf(rng.dirichlet(np.ones(n)), precision) for n in lengths]
    return rc.build_lookup(cdfs, precision, overflow)


def _random_symbols(rng, lookup, shape, escape_rate=0.05):
    index = rng.integers(0, lookup.shape[0], shape).astype(np.int32)
    regular = rc.num_regular_symbols(lookup)[index]
    values = (rng.random(shape) * regular).astype(np.int32)
    escape = rng.random(shape) < escape_rate
    low = -rng.integers(1, 3000, shape)
    high = regular + rng.integers(0, 3000, shape)
    values[escape] = np.where(rng.random(shape) < 0.5, low, high)[escape]
    return index, values


def test_quantized_cdf_properties():
    pmf = np.array([0.5, 0.25, 0.2, 0.05 - 1e-9, 1e-9])
    cdf = rc.quantized_cdf(pmf, precision=12)
    assert cdf.dtype == np.int32 and cdf.shape == (6,)
    assert cdf[0] == 0 and cdf[-1] == 4096
    assert (np.diff(cdf) >= 1).all()  # even the 1e-9 bin keeps a count
    np.testing.assert_allclose(np.diff(cdf) / 4096, pmf, atol=2e-3)


@pytest.mark.parametrize(
    "pmf, precision",
    [
        (np.ones(17) / 17, 4),  # more bins than 2**precision: tfc would abort
        ([0.5, -0.1, 0.6], 16),
        ([0.5, np.nan], 16),
        ([1.0], 16),
        ([0.0, 0.0], 16),
        ([0.5, 0.5], 17),
    ],
)
def test_quantized_cdf_rejects_bad_input(pmf, precision):
    with pytest.raises(ValueError):
        rc.quantized_cdf(np.asarray(pmf, float), precision)


def test_build_lookup_row_format_and_padding():
    short = np.array([0, 100, 65536])
    long = np.array([0, 10, 20, 30, 65536])
    table = rc.build_lookup([short, long])
    assert table.dtype == np.int32
    np.testing.assert_array_equal(table[0], [-16, 0, 100, 65536, 65536, 65536])
    np.testing.assert_array_equal(table[1], [-16, 0, 10, 20, 30, 65536])
    np.testing.assert_array_equal(rc.num_regular_symbols(table), [1, 3])
    plain = rc.build_lookup([short, long], overflow=False)
    assert (plain[:, 0] == 16).all()
    np.testing.assert_array_equal(rc.num_regular_symbols(plain), [2, 4])


@pytest.mark.parametrize(
    "row",
    [
        [
            -16,
            0,
            100,
            65536,
            0,
        ],  # padded with 0 (tfc: "CDF must end with 1 << precision")
        [-16, 0, 100, 65535, 65535],  # never reaches 2**16
        [-16, 0, 100, 100, 65536],  # zero-width bin
        [-17, 0, 100, 131072, 131072],  # precision too large
        [-16, 1, 100, 65536, 65536],  # does not start at 0
        [-16, 0, 65536, 65536, 65536],  # escape row without a regular bin
    ],
)
def test_malformed_lookup_is_rejected(row):
    with pytest.raises(ValueError):
        rc.RangeEncoder(np.array([row], np.int32))


def test_round_trip_chained_chunks_with_escapes():
    rng = np.random.default_rng(0)
    lookup = _random_lookup(rng, [2, 3, 7, 40, 200, 5])
    shapes = [(1000,), (0,), (3, 17, 5), (1,), (20000,)]
    chunks = [_random_symbols(rng, lookup, s) for s in shapes]
    # Extremes of the escape range in the last chunk.
    index, values = chunks[-1]
    regular = rc.num_regular_symbols(lookup)[index[:4]]
    values[:4] = [-rc.ESCAPE_LIMIT, regular[1] + rc.ESCAPE_LIMIT - 1, -1, regular[3]]
    encoder = rc.RangeEncoder(lookup)
    for index, values in chunks:
        encoder.encode(index, values)
    blob = encoder.finish()
    decoder = rc.RangeDecoder(blob, lookup)
    for index, values in chunks:
        decoded = decoder.decode(index)
        assert decoded.shape == index.shape and decoded.dtype == np.int32
        np.testing.assert_array_equal(decoded, values)
    assert decoder.finish()


def test_round_trip_without_escape_rows():
    rng = np.random.default_rng(1)
    lookup = _random_lookup(rng, [2, 9, 300], overflow=False, precision=12)
    index, values = _random_symbols(rng, lookup, (5000,), escape_rate=0)
    encoder = rc.RangeEncoder(lookup)
    encoder.encode(index, values)
    decoder = rc.RangeDecoder(encoder.finish(), lookup)
    np.testing.assert_array_equal(decoder.decode(index), values)
    assert decoder.finish()


def test_out_of_range_values_and_indexes_are_rejected():
    rng = np.random.default_rng(2)
    plain = _random_lookup(rng, [4], overflow=False)
    with pytest.raises(ValueError, match="no escape"):
        rc.RangeEncoder(plain).encode(np.zeros(2, np.int32), np.array([0, 4], np.int32))
    escaping = _random_lookup(rng, [4])
    encoder = rc.RangeEncoder(escaping)
    with pytest.raises(ValueError, match="escaped values"):
        encoder.encode(np.zeros(1, np.int32), np.array([-rc.ESCAPE_LIMIT - 1], np.int32))
    with pytest.raises(ValueError, match="index"):
        encoder.encode(np.array([1], np.int32), np.array([0], np.int32))
    with pytest.raises(ValueError, match="shape"):
        encoder.encode(np.zeros(2, np.int32), np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="index"):
        rc.RangeDecoder(b"", escaping).decode(np.array([-1], np.int32))


def test_encoding_is_deterministic():
    rng = np.random.default_rng(3)
    lookup = _random_lookup(rng, [3, 30])
    index, values = _random_symbols(rng, lookup, (4000,))
    blobs = []
    for _ in range(2):
        encoder = rc.RangeEncoder(lookup.copy())
        encoder.encode(index, values)
        blobs.append(encoder.finish())
    assert blobs[0] == blobs[1]
    assert len(blobs[0]) > 100


def test_rate_is_close_to_the_ideal_for_a_peaked_pmf():
    rng = np.random.default_rng(4)
    pmf = 0.5 ** np.arange(1, 20)
    pmf = np.append(pmf, 1 - pmf.sum())  # tail bin
    cdf = rc.quantized_cdf(pmf)
    lookup = rc.build_lookup([cdf])
    q = np.diff(cdf) / 2**16
    n = 200_000
    values = rng.choice(len(pmf) - 1, size=n, p=pmf[:-1] / pmf[:-1].sum()).astype(
        np.int32
    )
    ideal_bits = -np.log2(q[values]).sum()
    encoder = rc.RangeEncoder(lookup)
    encoder.encode(np.zeros(n, np.int32), values)
    real_bits = 8 * len(encoder.finish())
    assert ideal_bits <= real_bits <= ideal_bits * 1.002 + 64
    assert real_bits / n < 2.01  # the entropy of this source is ~2 bits/symbol


def _decode_garbage(blobs, lookup, rng, failures):
    regular = rc.num_regular_symbols(lookup)
    for blob in blobs:
        index = rng.integers(0, lookup.shape[0], int(rng.integers(1, 3000)))
        try:
            decoder = rc.RangeDecoder(blob, lookup)
            values = decoder.decode(index)
            decoder.decode(index[:10])
            decoder.finish()
        except BitstreamError:
            continue
        except Exception as e:  # anything else is a failure of the contract
            failures.append(repr(e))
            return
        # tfc's decoder always lands in a bin of the row it was given.
        plain = lookup[index, 0] > 0
        if ((values[plain] < 0) | (values[plain] >= regular[index][plain])).any():
            failures.append("value outside its row")
            return


def _flip_bit(blob, bit):
    data = bytearray(blob)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def test_garbage_never_crashes_or_hangs():
    rng = np.random.default_rng(5)
    lookup = _random_lookup(rng, [2, 3, 50])
    # With tfc's own overflow coding these one-byte blobs hang this row forever.
    hang_prone = rc.build_lookup([np.array([0, 32768, 65536])])
    valid_index, valid_values = _random_symbols(rng, lookup, (2000,), escape_rate=0.2)
    encoder = rc.RangeEncoder(lookup)
    encoder.encode(valid_index, valid_values)
    valid = encoder.finish()
    jobs = [
        ([b"", b"\x7f", b"\x80", b"\x80\x00", bytes(50)], hang_prone),
        ([rng.bytes(int(n)) for n in rng.integers(0, 200, 300)], lookup),
        ([rng.bytes(int(n)) for n in rng.integers(0, 20, 200)], hang_prone),
        ([valid[: int(n)] for n in rng.integers(0, len(valid), 100)], lookup),
        ([valid + rng.bytes(int(n)) for n in rng.integers(1, 9, 20)], lookup),
        (
            [_flip_bit(valid, int(rng.integers(8 * len(valid)))) for _ in range(50)],
            lookup,
        ),
    ]
    failures = []
    for blobs, table in jobs:
        # A hang inside a TF kernel cannot be interrupted; a daemon thread lets the
        # test fail instead of blocking the whole run.
        worker = threading.Thread(
            target=_decode_garbage, args=(blobs, table, rng, failures), daemon=True
        )
        worker.start()
        worker.join(timeout=60)
        assert not worker.is_alive(), "range decoder hung on garbage input"
        assert not failures, failures


def test_importing_the_module_does_not_load_tensorflow():
    code = (
        "import sys, llic_jax.entropy.range_coder\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported eagerly'\n"
    )
    root = pathlib.Path(llic_jax.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_finished_coders_refuse_more_work():
    lookup = rc.build_lookup([np.array([0, 30000, 65536])])
    encoder = rc.RangeEncoder(lookup)
    encoder.finish()
    with pytest.raises(RuntimeError):
        encoder.encode(np.zeros(1, np.int32), np.zeros(1, np.int32))
    decoder = rc.RangeDecoder(b"", lookup)
    assert decoder.finish()
    with pytest.raises(RuntimeError):
        decoder.decode(np.zeros(1, np.int32))
