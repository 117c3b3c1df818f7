"""ELIC's SCCTX latent codec: masks, causality, train/eval agreement, codec round trip."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import llic_jax
from llic_jax.context import (
    ElicHyperAnalysis,
    ElicHyperSynthesis,
    ElicLatentCodec,
    aggregation_widths,
    anchor_mask,
    checkerboard_kernel_mask,
    elic_coding_masks,
)
from llic_jax.entropy.factorized import DeepFactorized
from llic_jax.models import register
from llic_jax.models.hyperprior import analysis_transform, synthesis_transform
from llic_jax.models.llic import LLICElic

N, M, GROUPS = 8, 24, (2, 2, 4, 4, 12)
H = W = 8  # latent size


def _codec():
    return ElicLatentCodec(
        M, GROUPS, aggregation_floor=16, channel_context_widths=(12, 8)
    )


@pytest.fixture(scope="module")
def codec_setup():
    """(codec, params, y, hyper) with a random latent of scale ~3."""
    # "rbg" keys: threefry-based initialisers take ~1 s per layer to compile here.
    ky, kh, kp = jax.random.split(jax.random.key(0, impl="rbg"), 3)
    y = 3.0 * jax.random.normal(ky, (2, H, W, M))
    hyper = jax.random.normal(kh, (2, H, W, 2 * N))
    codec = _codec()
    init = jax.jit(lambda k: codec.init(k, y, hyper, None, method="train_forward"))
    params = init(kp)["params"]
    return codec, params, y, hyper


@pytest.fixture(scope="module")
def step_fn(codec_setup):
    codec = codec_setup[0]
    return jax.jit(
        lambda p, hyper, y_hat, step: codec.apply(
            {"params": p}, hyper, y_hat, step, method="step_distribution"
        ),
        static_argnums=3,
    )


def test_masks_partition_y_and_alternate_anchor_parity():
    masks = elic_coding_masks((H, 6, M), GROUPS)
    assert len(masks) == 2 * len(GROUPS)
    np.testing.assert_array_equal(np.sum(masks, axis=0), 1)
    anchors = anchor_mask(H, 6)
    bounds = np.cumsum([0, *GROUPS])
    for step, mask in enumerate(masks):
        k, non_anchor = divmod(step, 2)
        channels = np.nonzero(mask.any(axis=(0, 1)))[0]
        np.testing.assert_array_equal(channels, np.arange(bounds[k], bounds[k + 1]))
        for c in channels:
            np.testing.assert_array_equal(mask[..., c], anchors ^ bool(non_anchor))
    assert anchors[0, 0] and anchors[1, 1] and not anchors[0, 1]
    for step, mask in enumerate(_codec().coding_masks((H, 6, M))):
        np.testing.assert_array_equal(mask, masks[step])
    with pytest.raises(ValueError, match="sum to M"):
        elic_coding_masks((H, W, M), (2, 2))


def test_kernel_mask_and_aggregation_widths_follow_the_reference():
    mask = checkerboard_kernel_mask(5)
    assert not mask[2, 2] and mask[1, 2] and mask[2, 1] and not mask[1, 1]
    assert mask.sum() == 12
    # notes/baselines.md §2.3, CompressAI Elic2022Official at N=192, M=320.
    expected = [[416, 384, 384, 32], [448, 384, 384, 32], [512, 384, 384, 64],
                [640, 469, 384, 128], [1152, 896, 640, 384]]  # fmt: skip
    for k, g in enumerate((16, 16, 32, 64, 192)):
        width_in = 2 * g + (2 * g if k else 0) + 384
        assert aggregation_widths(width_in, 2 * g, 384) == expected[k]


def test_steps_read_only_what_earlier_steps_decoded(codec_setup, step_fn):
    codec, params, _, hyper = codec_setup
    masks = codec.coding_masks((H, W, M))
    k1, k2 = jax.random.split(jax.random.key(1))
    base = 2.0 * jax.random.normal(k1, (2, H, W, M))
    other = 5.0 * jax.random.normal(k2, (2, H, W, M)) + 1.0
    decoded = np.zeros((H, W, M), bool)
    for step, mask in enumerate(masks):
        changed = jnp.where(decoded, base, other)
        scale_a, mean_a = step_fn(params, hyper, base, step)
        scale_b, mean_b = step_fn(params, hyper, changed, step)
        np.testing.assert_array_equal(
            np.asarray(scale_a)[:, mask], np.asarray(scale_b)[:, mask]
        )
        np.testing.assert_array_equal(
            np.asarray(mean_a)[:, mask], np.asarray(mean_b)[:, mask]
        )
        assert (
            np.isfinite(np.asarray(scale_a)).all()
            and np.isfinite(np.asarray(mean_a)).all()
        )
        if step > 0:  # ... and does read them: the context is wired in
            perturbed = jnp.where(decoded, other, base)
            _, mean_c = step_fn(params, hyper, perturbed, step)
            assert not np.allclose(
                np.asarray(mean_a)[:, mask], np.asarray(mean_c)[:, mask]
            )
        decoded |= mask
    index, mean = codec.apply(
        {"params": params}, hyper, base, 3, method="step_parameters"
    )
    assert index.dtype == jnp.int32 and index.shape == mean.shape == base.shape


def test_train_forward_gives_finite_bits_and_gradients(codec_setup):
    codec, params, y, hyper = codec_setup

    def loss(p):
        y_hat, bits = codec.apply(
            {"params": p}, y, hyper, jax.random.key(2), method="train_forward"
        )
        assert y_hat.shape == y.shape and bits.shape == (2,)
        return bits.mean() + jnp.mean((y_hat - y) ** 2), bits

    (_, bits), grads = jax.value_and_grad(loss, has_aux=True)(params)
    assert np.isfinite(np.asarray(bits)).all() and (np.asarray(bits) > 0).all()
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        name = jax.tree_util.keystr(path)
        norm = float(jnp.linalg.norm(g))
        assert np.isfinite(norm) and norm > 0, name


def test_sequential_steps_equal_the_training_two_pass(codec_setup, step_fn):
    codec, params, y, hyper = codec_setup
    y_hat_t, scale_t, mean_t = codec.apply(
        {"params": params}, y, hyper, method="two_pass"
    )
    y_hat = jnp.zeros_like(y)
    for step, mask in enumerate(codec.coding_masks((H, W, M))):
        scale, mean = step_fn(params, hyper, y_hat, step)
        for got, want in ((scale, scale_t), (mean, mean_t)):
            np.testing.assert_allclose(
                np.asarray(got)[:, mask], np.asarray(want)[:, mask], rtol=1e-4, atol=1e-4
            )
        y_hat = jnp.where(mask, jnp.round(y - mean) + mean, y_hat)
    np.testing.assert_allclose(y_hat, y_hat_t, rtol=1e-4, atol=1e-4)
    _, bits = codec.apply({"params": params}, y, hyper, None, method="train_forward")
    assert np.isfinite(np.asarray(bits)).all()


class TinyElic(LLICElic):
    """A test-only ELIC-style model: hyperprior transforms (×16) + ELIC hyper + SCCTX."""

    N: int = N
    M: int = M
    groups: tuple[int, ...] = GROUPS

    def setup(self):  # replaces the LLIC transforms, keeps ELIC's entropy model
        self.g_a = analysis_transform(self.N, self.M)
        self.g_s = synthesis_transform(self.N)
        self.h_a = ElicHyperAnalysis(self.N)
        self.h_s = ElicHyperSynthesis(self.N)
        self.entropy_bottleneck = DeepFactorized(self.N)
        self.latent_codec = ElicLatentCodec(self.M, self.groups, 2 * self.N, (12, 8))


@pytest.fixture(scope="module")
def tiny_model():
    if "test-elic-tiny" not in llic_jax.list_models():
        register("test-elic-tiny", TinyElic)
    model = llic_jax.create_model("test-elic-tiny")
    variables = jax.jit(lambda k: llic_jax.init(model, k, (64, 64)))(
        jax.random.key(0, impl="rbg")
    )
    return model, llic_jax.build_tables(model, variables)


@pytest.mark.parametrize("size", [(64, 64), (67, 93)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_codec_round_trip_is_bit_exact(size, tiny_model, photo, check_round_trip):
    img = np.ascontiguousarray(photo[100 : 100 + size[0], 50 : 50 + size[1]])
    encoded, _ = check_round_trip(*tiny_model, img)
    assert len(encoded.symbols) == 1 + 2 * len(GROUPS)
