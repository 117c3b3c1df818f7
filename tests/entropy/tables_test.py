import numpy as np
import pytest

from llic_jax.entropy import range_coder, tables
from llic_jax.entropy.gaussian import SCALE_TABLE


@pytest.fixture(scope="module")
def gaussian():
    return tables.gaussian_tables()


def test_gaussian_table_rows_cover_their_scales(gaussian):
    lookup, offset = gaussian["lookup"], gaussian["offset"]
    assert lookup.dtype == np.int32 and lookup.shape[0] == 64
    assert offset.dtype == np.int32 and offset.shape == (64,)
    # Wider scales get wider rows; every row is centred on zero.
    assert np.all(np.diff(-offset) >= 0)
    assert -offset[0] >= 1 and -offset[-1] >= 4 * SCALE_TABLE[-1]


def test_real_rate_is_close_to_the_ideal_for_a_gaussian_source(gaussian):
    rng = np.random.default_rng(0)
    index = rng.integers(0, 40, size=50_000).astype(np.int32)
    symbols = np.rint(rng.normal(size=index.shape) * SCALE_TABLE[index]).astype(np.int32)
    from scipy.special import ndtr

    s = SCALE_TABLE[index].astype(np.float64)
    v = np.abs(symbols)
    ideal = -np.log2(ndtr((0.5 - v) / s) - ndtr((-0.5 - v) / s)).sum()
    encoder = range_coder.RangeEncoder(gaussian["lookup"])
    encoder.encode(index, symbols - gaussian["offset"][index])
    blob = encoder.finish()
    assert 8 * len(blob) < ideal * 1.01 + 64
    decoder = range_coder.RangeDecoder(blob, gaussian["lookup"])
    decoded = decoder.decode(index) + gaussian["offset"][index]
    np.testing.assert_array_equal(decoded, symbols)


def test_factorized_tables_have_one_row_per_channel(make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    z = variables["tables"]["z"]
    assert z["lookup"].shape[0] == model.N and z["offset"].shape == (model.N,)
    # The initial prior spreads over about ±10 (init_scale): rows start well below 0.
    assert np.all(z["offset"] < -5)
