"""TCM's SWAtten latent codec and hyperprior: layer stacks, wiring of attention and LRP.

The codec contract (causality, coding steps = training forward, gradients) is checked
for this codec by charm_test.py, whose fixtures run both ChARM and SWAtten.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.context import (
    SliceTransform,
    SWAtten,
    SwattenLatentCodec,
    TcmHyperAnalysis,
    TcmHyperSynthesis,
)
from llic_jax.context.swatten import ResidualUnit
from llic_jax.context.tcm_hyper import ConvTransBlock
from llic_jax.info import count_parameters
from llic_jax.layers import SwinBlockPair


def _shapes(module, *args, method=None):
    init = lambda: module.init(jax.random.key(0), *args, method=method)
    return jax.eval_shape(init)["params"]


def test_layer_stacks_reproduce_tcm_parameter_counts():
    """TCM's entropy model (M=320, 5 slices of 64) against notes/baselines.md §3.1."""
    y = jnp.zeros((1, 4, 4, 320))
    params = _shapes(
        SwattenLatentCodec(), y, {"mean": y, "scale": y}, None, method="train_forward"
    )
    counts = {
        part: sum(count_parameters(v) for k, v in params.items() if k.startswith(part))
        for part in ("atten_mean", "atten_scale", "cc_mean", "cc_scale", "lrp")
    }
    # 4.26 M, 4.26 M, 6.18 M, 6.18 M and 6.82 M (torch counts of LIC_TCM) in the notes.
    assert counts == {"atten_mean": 4_264_720, "atten_scale": 4_264_720,
                      "cc_mean": 6_176_800, "cc_scale": 6_176_800, "lrp": 6_821_920}  # fmt: skip
    atten = params["atten_mean_4"]
    assert atten["in_conv"]["kernel"].shape == (1, 1, 320 + 4 * 64, 128)
    assert atten["out_conv"]["kernel"].shape == (1, 1, 128, 576)
    table = atten["non_local_block"]["sw_block"]["attn"]["relative_position_bias_table"]
    assert table.shape == (15 * 15, 8)  # window 8, head dim 16: 8 heads
    assert params["lrp_transforms_4"]["Conv_0"]["kernel"].shape == (3, 3, 640, 224)
    assert params["cc_scale_transforms_0"]["Conv_2"]["kernel"].shape == (3, 3, 128, 64)
    # TCM-L's hyperprior (2N = 256). With TCM-L's transforms (g_a 7,787,896 and g_s
    # 21,099,588 by hand) and its entropy bottleneck (11,712) these give 76,568,148,
    # the notes' torch count of TCM-L (76.57 M).
    h_a = _shapes(TcmHyperAnalysis(), y)
    assert count_parameters(h_a) == 3_168_584
    assert h_a["down"]["skip"]["kernel"].shape == (1, 1, 320, 256)
    assert h_a["ctb_1"]["trans_block"]["attn"]["relative_position_bias_table"].shape == (
        7 * 7,
        4,
    )
    h_s = _shapes(TcmHyperSynthesis(), jnp.zeros((1, 1, 1, 192)))
    assert count_parameters(h_s) == 8_397_704
    assert h_s["out"]["Conv_0"]["kernel"].shape == (3, 3, 256, 4 * 320)


def _conv1x1(x, p):
    return x @ p["kernel"][0, 0] + p["bias"]


def test_swatten_is_the_gated_attention_block_of_tcm():
    x = jax.random.normal(jax.random.key(0), (1, 6, 10, 20))
    module = SWAtten(dim=16, head_dim=8, window_size=8)
    out, variables = module.init_with_output(jax.random.key(1), x)
    p = variables["params"]
    assert out.shape == x.shape

    def apply(m, name, h):
        return m.apply({"params": p[name]}, h)

    h = _conv1x1(x, p["in_conv"])
    z = apply(SwinBlockPair(16, 8, head_dim=8), "non_local_block", h)
    a, b = h, z
    for k in range(3):
        a = apply(ResidualUnit(), f"conv_a_{k}", a)
        b = apply(ResidualUnit(), f"conv_b_{k}", b)
    gate = jax.nn.sigmoid(_conv1x1(b, p["conv_b_3"]))
    want = _conv1x1(a * gate + h, p["out_conv"])
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    # The attention branch reaches beyond the convolutions (two chains of three 3×3
    # units: radius 6); the shifted windows carry (0, 0) past the first window (8 wide).
    # Without a path the outputs would be bit-identical; at init the attention is near
    # uniform, so the change is small.
    moved = module.apply(variables, x.at[0, 0, 0].add(50.0))
    assert float(jnp.abs(moved - out)[0, 5, 9].max()) > 0


def test_residual_unit_is_a_bottleneck_with_relu_after_the_sum():
    x = jax.random.normal(jax.random.key(0), (1, 5, 5, 8))
    out, variables = ResidualUnit().init_with_output(jax.random.key(1), x)
    p = variables["params"]
    assert p["Conv_0"]["kernel"].shape == (1, 1, 8, 4)
    assert p["Conv_1"]["kernel"].shape == (3, 3, 4, 4)
    assert float(out.min()) >= 0.0 and float((out == 0).mean()) > 0.1


def test_lrp_and_cc_mean_read_the_attended_means():
    m, slices, support, size = 12, 3, 2, 4
    codec = SwattenLatentCodec(m, slices, support, (8,), attention_dim=8,
                               attention_head_dim=4, window_size=4)  # fmt: skip
    ky, km, ks, kq = jax.random.split(jax.random.key(0), 4)
    y_hat = jax.random.normal(ky, (1, 6, 6, m))
    hyper = {"mean": jax.random.normal(km, y_hat.shape),
             "scale": jax.random.normal(ks, y_hat.shape)}  # fmt: skip
    symbols = jax.random.randint(kq, y_hat.shape, -2, 3)
    params = codec.init(jax.random.key(1), y_hat, hyper, None, method="train_forward")[
        "params"
    ]
    step = 2  # sees slices 0 and 1
    scale, mean = codec.apply(
        {"params": params}, hyper, y_hat, step, method="step_distribution"
    )
    updated = codec.apply({"params": params}, hyper, y_hat, symbols, mean, step,
                          method="step_update")  # fmt: skip

    def apply(module, name, h):
        return module.apply({"params": params[f"{name}_{step}"]}, h)

    supp = y_hat[..., : support * size]
    attention = SWAtten(8, 4, 4)
    mean_context = apply(
        attention, "atten_mean", jnp.concatenate([hyper["mean"], supp], -1)
    )
    scale_context = apply(
        attention, "atten_scale", jnp.concatenate([hyper["scale"], supp], -1)
    )
    transform = SliceTransform((8,), size)
    sl = slice(step * size, (step + 1) * size)
    want_mean = apply(transform, "cc_mean_transforms", mean_context)
    want_scale = apply(transform, "cc_scale_transforms", scale_context)
    np.testing.assert_allclose(mean[..., sl], want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scale[..., sl], want_scale, rtol=1e-5, atol=1e-5)
    q = symbols[..., sl] + mean[..., sl]
    lrp = apply(transform, "lrp_transforms", jnp.concatenate([mean_context, q], -1))
    np.testing.assert_allclose(
        updated[..., sl], q + 0.5 * jnp.tanh(lrp), rtol=1e-5, atol=1e-5
    )


def test_hyper_transforms_map_between_latent_and_hyper_latent():
    y = jax.random.normal(jax.random.key(0), (1, 8, 12, 24))
    options = dict(channels=16, head_dim=4, window_size=4)
    h_a = TcmHyperAnalysis(z_channels=8, **options)
    z, _ = h_a.init_with_output(jax.random.key(1), y)
    assert z.shape == (1, 2, 3, 8)
    out, _ = TcmHyperSynthesis(features=24, **options).init_with_output(
        jax.random.key(2), z
    )
    assert out.shape == y.shape
    with pytest.raises(ValueError, match="even channels"):
        ConvTransBlock().init(jax.random.key(0), jnp.zeros((1, 4, 4, 7)))
