"""ChARM + LRP latent codec and STF hyperprior: masks, causality, train/eval agreement.

The codec-contract tests (causality, steps = training forward, gradients) also run on
TCM's SWAtten subclass (context/swatten.py); its own tests are in swatten_test.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.context import (
    CharmLatentCodec,
    SliceTransform,
    StfHyperAnalysis,
    StfHyperSynthesis,
    SwattenLatentCodec,
    charm_coding_masks,
    slice_size,
    stf_hyper_widths,
)
from llic_jax.entropy.gaussian import gaussian_bits
from llic_jax.info import count_parameters

M, SLICES, SUPPORT = 24, 6, 3  # slices of 4; slices 4 and 5 see only slices 0–2
H = W = 8  # latent size


def _codec(kind: str = "charm"):
    if kind == "swatten":  # window 4 on the 8×8 latent: shifted windows too
        return SwattenLatentCodec(M, SLICES, SUPPORT, (12, 8), attention_dim=8,
                                  attention_head_dim=4, window_size=4)  # fmt: skip
    return CharmLatentCodec(M, SLICES, SUPPORT, transform_widths=(12, 10, 8, 6))


@pytest.fixture(scope="module", params=["charm", "swatten"])
def codec_setup(request):
    """(codec, params, y, hyper) with a random latent of scale ~3."""
    # Eager with "rbg" keys: a jitted init (hundreds of inlined threefry fold-ins)
    # takes ~1 min to compile here, eager ~5 s.
    ky, km, ks, kp = jax.random.split(jax.random.key(0, impl="rbg"), 4)
    y = 3.0 * jax.random.normal(ky, (2, H, W, M))
    hyper = {
        "mean": jax.random.normal(km, (2, H, W, M)),
        "scale": jax.random.normal(ks, (2, H, W, M)),
    }
    codec = _codec(request.param)
    params = codec.init(kp, y, hyper, None, method="train_forward")["params"]
    return codec, params, y, hyper


@pytest.fixture(scope="module")
def step_fns(codec_setup):
    """step_distribution and step_update, eager: at these sizes compiling one function
    per step (the step is static) costs ~10× running them op by op."""
    codec = codec_setup[0]

    def method(name):
        return lambda p, *args: codec.apply({"params": p}, *args, method=name)

    return method("step_distribution"), method("step_update")


def test_masks_partition_y_into_equal_channel_slices():
    masks = charm_coding_masks((H, 5, M), SLICES)
    assert len(masks) == SLICES
    np.testing.assert_array_equal(np.sum(masks, axis=0), 1)
    for i, mask in enumerate(masks):
        channels = np.nonzero(mask.all(axis=(0, 1)))[0]
        np.testing.assert_array_equal(channels, np.arange(4 * i, 4 * i + 4))
        assert mask.sum() == H * 5 * 4
    for got, want in zip(_codec().coding_masks((H, 5, M)), masks, strict=True):
        np.testing.assert_array_equal(got, want)
    assert slice_size(320, 10) == 32
    with pytest.raises(ValueError, match="equal slices"):
        charm_coding_masks((H, W, M), 5)


def test_layer_stacks_reproduce_the_reference_parameter_counts():
    """STF's M=384 configuration against notes/baselines.md §1.1 (torch counts)."""

    def count(module, *args, method=None):
        init = lambda: module.init(jax.random.key(0), *args, method=method)
        return count_parameters(jax.eval_shape(init)["params"])

    y = jnp.zeros((1, 4, 4, 384))
    hyper = {"mean": y, "scale": y}
    params = jax.eval_shape(
        lambda: CharmLatentCodec(384, 12, 6).init(
            jax.random.key(0), y, hyper, None, method="train_forward"
        )
    )["params"]
    counts = {
        part: sum(count_parameters(v) for k, v in params.items() if k.startswith(part))
        for part in ("cc_mean", "cc_scale", "lrp")
    }
    # 20.38 M, 20.38 M and 21.16 M in the notes.
    assert counts == {"cc_mean": 20_384_064, "cc_scale": 20_384_064, "lrp": 21_158_208}
    assert params["lrp_transforms_11"]["Conv_0"]["kernel"].shape == (3, 3, 608, 224)
    assert params["cc_mean_transforms_0"]["Conv_0"]["kernel"].shape == (3, 3, 384, 224)
    # h_a 4.40 M (STF's h_a is the same M → N ramp); h_mean_s 9.75 M (STF's widths).
    assert count(StfHyperAnalysis(stf_hyper_widths(192, 384)[0]), y) == 4_397_472
    z = jnp.zeros((1, 1, 1, 192))
    assert count(StfHyperSynthesis((240, 288, 336, 384, 384)), z) == 9_749_568
    # WACNN's hyper widths at N=192, M=320 (notes/baselines.md §1.3).
    assert stf_hyper_widths(192, 320) == (
        (320, 288, 256, 224, 192),
        (192, 224, 256, 288, 320),
    )


def test_hyper_transforms_map_between_latent_and_hyper_latent():
    analysis_widths, synthesis_widths = stf_hyper_widths(8, M)
    y = jax.random.normal(jax.random.key(0), (1, H, 12, M))
    h_a, h_s = StfHyperAnalysis(analysis_widths), StfHyperSynthesis(synthesis_widths)
    z, _ = h_a.init_with_output(jax.random.key(1), y)
    assert z.shape == (1, 2, 3, 8)
    out, _ = h_s.init_with_output(jax.random.key(2), z)
    assert out.shape == y.shape


def test_slice_transform_is_a_gelu_conv_stack():
    x = jax.random.normal(jax.random.key(0), (1, 5, 6, 7))
    module = SliceTransform((9,), 4)
    out, variables = module.init_with_output(jax.random.key(1), x)
    p = variables["params"]

    def conv(v, layer):
        dims = ("NHWC", "HWIO", "NHWC")
        w = layer["kernel"]
        return jax.lax.conv_general_dilated(v, w, (1, 1), "SAME", dimension_numbers=dims)

    def reference(approximate):
        hidden = conv(x, p["Conv_0"]) + p["Conv_0"]["bias"]
        hidden = jax.nn.gelu(hidden, approximate=approximate)
        return conv(hidden, p["Conv_1"]) + p["Conv_1"]["bias"]

    # The exact (erf) GELU, as PyTorch's nn.GELU(); no activation after the last conv.
    np.testing.assert_allclose(out, reference(False), rtol=1e-5, atol=1e-5)
    assert not np.allclose(out, reference(True), rtol=1e-5, atol=1e-5)


def test_steps_read_only_the_first_decoded_slices(codec_setup, step_fns):
    codec, params, _, hyper = codec_setup
    step_distribution, step_update = step_fns
    size = M // SLICES
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    base = 2.0 * jax.random.normal(k1, (2, H, W, M))
    other = 5.0 * jax.random.normal(k2, (2, H, W, M)) + 1.0
    symbols = jax.random.randint(k3, (2, H, W, M), -3, 4)
    channel = np.arange(M)
    for step in range(SLICES):
        support = channel < min(step, SUPPORT) * size
        unseen = jnp.where(support, base, other)  # later slices, and earlier beyond K
        want = step_distribution(params, hyper, base, step)
        got = step_distribution(params, hyper, unseen, step)
        for a, b in zip(want, got, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        mean = want[1]
        updated = step_update(params, hyper, base, symbols, mean, step)
        again = step_update(params, hyper, unseen, symbols, mean, step)
        in_slice = (channel >= step * size) & (channel < (step + 1) * size)
        np.testing.assert_array_equal(
            np.asarray(updated)[..., in_slice], np.asarray(again)[..., in_slice]
        )
        # Only the slice is written, with symbols + mean + LRP, |LRP| ≤ 0.5.
        np.testing.assert_array_equal(
            np.asarray(updated)[..., ~in_slice], np.asarray(base)[..., ~in_slice]
        )
        lrp = float(jnp.abs(updated - symbols - mean)[..., in_slice].max())
        assert 1e-3 < lrp <= 0.5, lrp
        if step > 0:  # ... and the support is wired in
            changed = jnp.where(support, other, base)
            _, mean_c = step_distribution(params, hyper, changed, step)
            assert not np.allclose(
                np.asarray(mean)[..., in_slice], np.asarray(mean_c)[..., in_slice]
            )
    index, mean = codec.apply(
        {"params": params}, hyper, base, 2, method="step_parameters"
    )
    assert index.dtype == jnp.int32 and index.shape == mean.shape == base.shape


def test_sequential_steps_equal_the_deterministic_training_forward(codec_setup, step_fns):
    codec, params, y, hyper = codec_setup
    step_distribution, step_update = step_fns
    y_hat_t, scale_t, mean_t = codec.apply(
        {"params": params}, y, hyper, method="ste_forward"
    )
    y_hat = jnp.zeros_like(y)
    for step, mask in enumerate(codec.coding_masks((H, W, M))):
        scale, mean = step_distribution(params, hyper, y_hat, step)
        for got, want in ((scale, scale_t), (mean, mean_t)):
            np.testing.assert_allclose(
                np.asarray(got)[:, mask], np.asarray(want)[:, mask], rtol=1e-4, atol=1e-4
            )
        symbols = jnp.where(mask, jnp.round(y - mean), 0).astype(jnp.int32)
        y_hat = step_update(params, hyper, y_hat, symbols, mean, step)
    np.testing.assert_allclose(y_hat, y_hat_t, rtol=1e-4, atol=1e-4)
    assert float(jnp.abs(y_hat - y).max()) <= 1.0  # |round error| ≤ ½, |LRP| ≤ ½
    y_hat_d, bits = codec.apply(
        {"params": params}, y, hyper, None, method="train_forward"
    )
    np.testing.assert_array_equal(y_hat_d, y_hat_t)
    want = gaussian_bits(jnp.round(y - mean_t), scale_t).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(bits, want, rtol=1e-6)


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
    parts = ["cc_mean_transforms", "cc_scale_transforms", "lrp_transforms"]
    if isinstance(codec, SwattenLatentCodec):
        parts += ["atten_mean", "atten_scale"]
    assert set(grads) == {f"{part}_{i}" for part in parts for i in range(SLICES)}
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        name = jax.tree_util.keystr(path)
        norm = float(jnp.linalg.norm(g))
        assert np.isfinite(norm) and norm > 0, name
