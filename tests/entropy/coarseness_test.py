import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.entropy.coarseness import (
    MAX_COARSENESS,
    check_coarseness,
    coarser_index,
    coarser_lmbda,
    latent_step,
)
from llic_jax.entropy.gaussian import SCALE_TABLE, scale_to_index


@pytest.mark.parametrize("k", [0, 1, 3, MAX_COARSENESS])
def test_the_step_is_a_power_of_the_scale_tables_ratio(k):
    assert latent_step(k).dtype == np.float32
    assert float(latent_step(k)) == pytest.approx(SCALE_TABLE[k] / SCALE_TABLE[0], 1e-5)
    assert latent_step(0) == 1


def test_lowering_the_index_by_k_is_dividing_the_scale_by_the_step():
    scales = np.geomspace(0.05, 300, 500).astype(np.float32)
    index = np.asarray(scale_to_index(jnp.asarray(scales)))
    for k in (1, 3, 7):
        lowered = coarser_index(index, k)
        # the table scale the coder uses is the model's, divided by the step ...
        inside = index >= k
        np.testing.assert_allclose(
            SCALE_TABLE[lowered[inside]], SCALE_TABLE[index[inside]] / latent_step(k),
            rtol=1e-4,
        )  # fmt: skip
        # ... floored at the table's first entry, as training bounds its scales
        assert (lowered[~inside] == 0).all()
        np.testing.assert_array_equal(
            np.asarray(coarser_index(jnp.asarray(index), k)), lowered
        )
    assert coarser_index(index, 0) is index


def test_lambda_falls_with_the_step_squared():
    assert coarser_lmbda(0.0035, 0) == 0.0035
    assert coarser_lmbda(0.0035, 3) == pytest.approx(0.0035 / 1.4465**2, rel=1e-4)


@pytest.mark.parametrize("bad", [-1, MAX_COARSENESS + 1, 1.5, True, "2", None])
def test_bad_coarseness_is_refused(bad):
    with pytest.raises(ValueError, match="coarseness"):
        check_coarseness(bad)
