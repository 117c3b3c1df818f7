import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llic_jax.layers import (
    SwinBlock,
    SwinBlockPair,
    WindowAttention,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)

# ----------------------------------------------------------------------------------------
# Reference: one Swin block computed window by window with explicit loops. Written from the
# definition, not from the layer: the shift mask is derived from which tokens the roll
# wrapped around (not from Swin's region slices), the bias is looked up pair by pair.


def _layer_norm(x, p):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + 1e-5) * p["scale"] + p["bias"]


def _dense(x, p):
    return x @ p["kernel"] + p["bias"]


def _gelu_erf(x):
    return 0.5 * x * (1.0 + jax.scipy.special.erf(x / np.sqrt(2.0)))


def _bias_rows(window):
    """Table row for each (query, key) pair: offsets (query − key) shifted to ≥ 0."""
    coords = [(i, j) for i in range(window) for j in range(window)]
    side = 2 * window - 1
    return np.array(
        [
            [(qi - ki + window - 1) * side + (qj - kj + window - 1) for ki, kj in coords]
            for qi, qj in coords
        ]
    )


def _window_attention_ref(tokens, attn, heads, allowed, bias_rows):
    c = tokens.shape[-1]
    d = c // heads
    qkv = _dense(tokens, attn["qkv"])  # [N, 3C]: q heads, then k heads, then v heads
    table = attn["relative_position_bias_table"]
    outs = []
    for head in range(heads):
        q = qkv[:, head * d : (head + 1) * d]
        k = qkv[:, c + head * d : c + (head + 1) * d]
        v = qkv[:, 2 * c + head * d : 2 * c + (head + 1) * d]
        logits = q @ k.T / np.sqrt(d) + table[bias_rows, head]
        logits = logits + np.where(allowed, 0.0, -100.0)
        outs.append(jax.nn.softmax(logits, axis=-1) @ v)
    return _dense(jnp.concatenate(outs, axis=-1), attn["proj"])


def reference_block(params, x, window, heads, shift):
    b, h, w, c = x.shape
    hp, wp = -(-h // window) * window, -(-w // window) * window
    y = jnp.pad(
        _layer_norm(x, params["norm1"]), ((0, 0), (0, hp - h), (0, wp - w), (0, 0))
    )
    # Shift only along axes longer than one window.
    sh = window // 2 if shift and hp > window else 0
    sw = window // 2 if shift and wp > window else 0
    y = jnp.roll(y, (-sh, -sw), axis=(1, 2))
    bias_rows = _bias_rows(window)
    coords = [(i, j) for i in range(window) for j in range(window)]
    images = []
    for bi in range(b):
        grid_rows = []
        for r0 in range(0, hp, window):
            grid_row = []
            for c0 in range(0, wp, window):
                tokens = y[bi, r0 : r0 + window, c0 : c0 + window].reshape(-1, c)
                # A token wrapped around along an axis iff its rolled position is within
                # the last `shift` rows/columns; only tokens wrapped alike may attend.
                wrapped = [(sh > 0 and r0 + i >= hp - sh, sw > 0 and c0 + j >= wp - sw)
                           for i, j in coords]  # fmt: skip
                allowed = np.array([[p == q for q in wrapped] for p in wrapped])
                out = _window_attention_ref(
                    tokens, params["attn"], heads, allowed, bias_rows
                )
                grid_row.append(out.reshape(window, window, c))
            grid_rows.append(jnp.concatenate(grid_row, axis=1))
        images.append(jnp.concatenate(grid_rows, axis=0))
    y = jnp.roll(jnp.stack(images), (sh, sw), axis=(1, 2))[:, :h, :w]
    x = x + y
    m = params["mlp"]
    return x + _dense(
        _gelu_erf(_dense(_layer_norm(x, params["norm2"]), m["fc1"])), m["fc2"]
    )


# ----------------------------------------------------------------------------------------


def _random_params(module, x, seed):
    """Initialised, then every parameter perturbed so biases/LN/bias table all matter."""
    params = module.init(jax.random.key(seed), x)["params"]
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    noisy = [
        p + 0.5 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(tree, noisy)


CASES = [
    # (B, H, W, window, shift)
    (2, 9, 13, 4, False),  # odd sizes, padded to 12×16
    (2, 9, 13, 4, True),
    (1, 8, 8, 4, True),  # exact multiple, shifted
    (2, 3, 3, 4, True),  # smaller than the window: one padded window, no shift
    (1, 3, 9, 4, True),  # one window along H (no shift there), shifted along W
]


@pytest.mark.parametrize("b,h,w,window,shift", CASES)
def test_swin_block_matches_per_window_reference(b, h, w, window, shift):
    c, heads = 8, 2
    x = jax.random.normal(jax.random.key(0), (b, h, w, c))
    block = SwinBlock(c, window, num_heads=heads, shift=shift)
    params = _random_params(block, x, seed=1)
    got = jax.jit(block.apply)({"params": params}, x)
    want = reference_block(params, x, window, heads, shift)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("b,h,w,window,shift", CASES)
def test_swin_block_gradients_match_reference(b, h, w, window, shift):
    c, heads = 8, 2
    x = jax.random.normal(jax.random.key(2), (b, h, w, c))
    cotangent = jax.random.normal(jax.random.key(3), x.shape)
    block = SwinBlock(c, window, num_heads=heads, shift=shift)
    params = _random_params(block, x, seed=4)

    def loss_layer(p, x):
        return jnp.sum(block.apply({"params": p}, x) * cotangent)

    def loss_ref(p, x):
        return jnp.sum(reference_block(p, x, window, heads, shift) * cotangent)

    got = jax.jit(jax.grad(loss_layer, argnums=(0, 1)))(params, x)
    want = jax.grad(loss_ref, argnums=(0, 1))(params, x)
    flat_got = jax.tree_util.tree_leaves_with_path(got)
    for (path, g), r in zip(flat_got, jax.tree.leaves(want), strict=True):
        scale = max(1.0, float(np.max(np.abs(r))))
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5 * scale, err_msg=str(path))


def test_pair_is_a_w_block_then_an_sw_block():
    c, heads, window = 8, 2, 4
    x = jax.random.normal(jax.random.key(5), (1, 9, 13, c))
    pair = SwinBlockPair(c, window, head_dim=c // heads)
    params = _random_params(pair, x, seed=6)
    got = jax.jit(pair.apply)({"params": params}, x)
    want = reference_block(params["w_block"], x, window, heads, shift=False)
    want = reference_block(params["sw_block"], want, window, heads, shift=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_shift_is_dropped_when_the_padded_map_is_one_window():
    x = jax.random.normal(jax.random.key(7), (2, 3, 4, 8))
    params = _random_params(SwinBlock(8, 4, num_heads=2), x, seed=8)
    plain = SwinBlock(8, 4, num_heads=2).apply({"params": params}, x)
    shifted = SwinBlock(8, 4, num_heads=2, shift=True).apply({"params": params}, x)
    np.testing.assert_array_equal(plain, shifted)


# ----------------------------------------------------------------------------------------
# Masking: which outputs a single input token can reach.


def _reach(block, params, x, at):
    """Positions (row, col) of the output that change when input token `at` changes."""
    x2 = x.at[0, at[0], at[1], 0].add(1.0)  # one channel: LayerNorm hides a uniform shift
    diff = jnp.abs(
        block.apply({"params": params}, x2) - block.apply({"params": params}, x)
    )
    return {tuple(p) for p in np.argwhere(np.asarray(diff[0].max(-1)) > 1e-6)}


def test_shifted_window_mask_blocks_attention_across_regions():
    x = jax.random.normal(jax.random.key(9), (1, 8, 8, 8))
    block = SwinBlock(8, 4, num_heads=2, shift=True)
    params = _random_params(block, x, seed=10)
    # Rolled by −2, token (0, 0) lands in the bottom-right window with rows/cols {6, 7, 0,
    # 1}; of those, only the tokens that wrapped around with it, rows and cols {0, 1}, may
    # see it.
    assert _reach(block, params, x, (0, 0)) == {(i, j) for i in (0, 1) for j in (0, 1)}
    # An unwrapped token of that window, (7, 7), reaches exactly its own region.
    assert _reach(block, params, x, (7, 7)) == {(i, j) for i in (6, 7) for j in (6, 7)}
    # Unshifted: the whole top-left window.
    plain = SwinBlock(8, 4, num_heads=2)
    assert _reach(plain, params, x, (0, 0)) == {
        (i, j) for i in range(4) for j in range(4)
    }


def test_without_the_mask_the_rolled_window_would_mix_regions():
    # The counterfactual of the test above: the same roll without the mask leaks.
    x = jax.random.normal(jax.random.key(11), (1, 8, 8, 8))
    attn = WindowAttention(8, 4, num_heads=2)
    params = _random_params(attn, window_partition(x, 4), seed=12)
    mask = jnp.asarray(shifted_window_mask(8, 8, 4, 2))

    def run(x, mask):
        windows = window_partition(jnp.roll(x, (-2, -2), axis=(1, 2)), 4)
        out = window_reverse(attn.apply({"params": params}, windows, mask), 4, 8, 8)
        return jnp.roll(out, (2, 2), axis=(1, 2))

    x2 = x.at[0, 0, 0, 0].add(1.0)
    for m, reached in ((mask, 4), (None, 16)):
        changed = np.abs(run(x2, m) - run(x, m))[0].max(-1) > 1e-6
        assert changed.sum() == reached and changed[1, 1]
        assert changed[7, 7] == (m is None)


def test_shifted_window_mask_labels_regions_like_swin():
    h, w, window, shift = 8, 12, 4, 2
    mask = shifted_window_mask(h, w, window, shift)
    assert mask.shape == (6, 16, 16) and mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, -100.0}
    # Expected: tokens may attend iff they sit on the same side of the wrap on both axes.
    wrapped = np.zeros((h, w, 2))
    wrapped[h - shift :, :, 0] = 1
    wrapped[:, w - shift :, 1] = 1
    flags = window_partition(wrapped[None], window)  # [nW, N, 2]
    same = np.all(flags[:, :, None] == flags[:, None, :], axis=-1)
    np.testing.assert_array_equal(mask, np.where(same, 0.0, -100.0))
    # Only the last window column (windows 2, 5) and row (3, 4, 5) are cut.
    assert [int((m != 0).any()) for m in mask] == [0, 0, 1, 1, 1, 1]
    np.testing.assert_array_equal(shifted_window_mask(h, w, window, 0), 0.0)
    np.testing.assert_array_equal(shifted_window_mask(h, w, window, (0, 2))[:3], mask[:3])
    with pytest.raises(ValueError):
        shifted_window_mask(h, w, window, window)
    with pytest.raises(ValueError):
        shifted_window_mask(h + 1, w, window, shift)


# ----------------------------------------------------------------------------------------
# Pure helpers.


def test_partition_and_reverse_are_inverse_and_ordered():
    x = np.random.default_rng(0).normal(size=(2, 8, 12, 3)).astype(np.float32)
    windows = window_partition(jnp.asarray(x), 4)
    assert windows.shape == (2 * 2 * 3, 16, 3)
    np.testing.assert_array_equal(window_reverse(windows, 4, 8, 12), x)
    np.testing.assert_array_equal(
        window_partition(window_reverse(windows, 4, 8, 12), 4), windows
    )
    # Batch-major, row-major over the window grid, row-major within a window.
    for b in range(2):
        for i in range(2):
            for j in range(3):
                block = x[b, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].reshape(16, 3)
                np.testing.assert_array_equal(windows[b * 6 + i * 3 + j], block)
    with pytest.raises(ValueError):
        window_partition(x[:, :7], 4)
    with pytest.raises(ValueError):
        window_reverse(windows[:5], 4, 8, 12)


def test_relative_position_index():
    index = relative_position_index(3)
    assert index.shape == (9, 9)
    assert sorted(set(index.ravel().tolist())) == list(range(25))  # all offsets occur
    np.testing.assert_array_equal(np.diag(index), 12)  # offset (0, 0): centre of a 5×5
    assert index[0, 8] == 0  # query (0, 0), key (2, 2): offset (−2, −2)
    assert index[8, 0] == 24  # offset (2, 2)
    assert index[1, 3] == (-1 + 2) * 5 + (1 + 2)  # query (0, 1), key (1, 0)
    np.testing.assert_array_equal(index + index.T, 24)  # (i, j) and (j, i) opposite


# ----------------------------------------------------------------------------------------
# Parameters.


def test_parameter_shapes_and_count():
    x = jnp.zeros((1, 4, 4, 8))
    expected = {
        "norm1": {"scale": (8,), "bias": (8,)},
        "attn": {
            "qkv": {"kernel": (8, 24), "bias": (24,)},
            "proj": {"kernel": (8, 8), "bias": (8,)},
            "relative_position_bias_table": (49, 2),
        },
        "norm2": {"scale": (8,), "bias": (8,)},
        "mlp": {
            "fc1": {"kernel": (8, 32), "bias": (32,)},
            "fc2": {"kernel": (32, 8), "bias": (8,)},
        },
    }
    for block in (SwinBlock(8, 4, num_heads=2), SwinBlock(8, 4, head_dim=4, shift=True)):
        params = block.init(jax.random.key(0), x)["params"]
        assert jax.tree.map(jnp.shape, params) == expected
        assert (
            sum(p.size for p in jax.tree.leaves(params)) == 16 + 216 + 72 + 98 + 16 + 552
        )
    pair = SwinBlockPair(8, 4, num_heads=2).init(jax.random.key(0), x)["params"]
    assert set(pair) == {"w_block", "sw_block"}
    assert sum(p.size for p in jax.tree.leaves(pair)) == 2 * 970
    no_bias = SwinBlock(8, 4, num_heads=2, qkv_bias=False).init(jax.random.key(0), x)
    assert "bias" not in no_bias["params"]["attn"]["qkv"]


def test_tcm_swatten_config_and_init_statistics():
    # TCM's SWAtten: 128 channels, head_dim 16 (8 heads), window 8.
    attn = WindowAttention(128, 8, head_dim=16)
    params = attn.init(jax.random.key(0), jnp.zeros((1, 64, 128)))["params"]
    table = np.asarray(params["relative_position_bias_table"])
    assert table.shape == (225, 8)
    assert (
        abs(table.std() - 0.02) < 0.002
        and np.abs(table).max() <= 2 * 0.02 / 0.8796 + 1e-6
    )
    assert abs(np.asarray(params["qkv"]["kernel"]).std() - 0.02) < 0.002
    np.testing.assert_array_equal(params["qkv"]["bias"], 0.0)


@pytest.mark.parametrize(
    "kwargs", [{}, {"num_heads": 2, "head_dim": 4}, {"num_heads": 3}, {"head_dim": 3}]
)
def test_heads_must_be_given_once_and_divide_dim(kwargs):
    with pytest.raises(ValueError):
        SwinBlock(8, 4, **kwargs).init(jax.random.key(0), jnp.zeros((1, 4, 4, 8)))


def test_rejects_inputs_of_the_wrong_shape():
    with pytest.raises(ValueError):
        SwinBlock(8, 4, num_heads=2).init(jax.random.key(0), jnp.zeros((1, 4, 4, 6)))
    with pytest.raises(ValueError):
        WindowAttention(8, 4, num_heads=2).init(jax.random.key(0), jnp.zeros((2, 9, 8)))
    attn = WindowAttention(8, 4, num_heads=2)
    variables = attn.init(jax.random.key(0), jnp.zeros((3, 16, 8)))
    with pytest.raises(ValueError):  # 3 windows cannot be batches of 2-window masks
        attn.apply(variables, jnp.zeros((3, 16, 8)), jnp.zeros((2, 16, 16)))
