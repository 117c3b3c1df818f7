"""Large-kernel depth-wise convolution, static or per-sample ("self-conditioned") kernels.

`depthwise_conv(x, kernel)` computes, with 'SAME' zero padding and p = K // 2,

    y[b, h, w, c] = Σ_{i,j} x[b, h + i − p, w + j − p, c] · k[(b,) i, j, c]

(a cross-correlation, as `lax.conv_general_dilated` and `torch.nn.functional.conv2d`). Each
formulation below is a private `_dwconv_<name>(x, kernel)`, exact up to float32 rounding
(the FFT ones ~1e-7 of the output's scale); `tests/layers/dwconv_test.py` checks all of them,
values and gradients, and `eval/bench_dwconv.py` times them against PyTorch.

- `xla`: XLA's grouped conv (`feature_group_count=C`; per-sample kernels fold the batch into
  the channels, B·C groups). XLA:CPU runs it as C tiny convolutions: 15–20× slower than
  `tree` forward, worse backward.
- `shift` / `tree`: Σ over the K² taps of shifted slices × kernel tap, one fused loop
  vectorised over C; `tree` sums pairwise (independent add chains), `shift` in order. Forward:
  each tap costs a load of x and of k per vector of outputs (XLA computes one output vector
  per loop iteration; a register-blocked kernel reuses loads across outputs): ~1.5× PyTorch.
  Autodiff gives K² separate reductions for dkernel, each writing and re-reading a full-size
  product (XLA:CPU does not fuse a product into a reduction over non-minor axes): 20–30× the
  forward at K = 11.
- `rows`: per kernel row, the K horizontal shifts side by side as one [B, H, W, K·C] product.
  Slower than `tree` (the concatenation is materialised).
- `fft`: products of spectra of length ≥ H + p, W + p (zero padding keeps the circular shift
  from wrapping image onto output). O(log N) per pixel instead of K², but the transposes to
  and from [B, C, H, W] and two transforms make its forward slower than `tree`'s at K = 11
  at all but the largest measured size (8×128×128: 0.9×).
- `fft_vjp`: `fft` with a hand-written VJP. The forward keeps x's spectrum X; the backward
  transforms g once: dx = IFFT(G·conj(K̂)), dkernel = the K×K lags of IFFT(conj(G)·X)
  (summed over B first for a static kernel), read out with two small DFT matrices instead
  of a full inverse transform. Kernel spectra are two small DFT matmuls too (K² non-zeros),
  not FFTs of mostly-zero arrays. Backward ≈ forward, independent of K.
- `tree_vjp`: `tree` forward; backward written as depth-wise convolutions: dx = `tree`(g,
  flipped k); dkernel by `_kernel_grad_rows` (row blocks summed inside one loop fusion, then
  one small reduction). Its cost grows with K²: the fastest backward for K ≤ 5.
- `tree_fft`: `tree` when not differentiated, `fft_vjp`'s forward and backward under autodiff
  (a custom VJP's forward rule only runs when differentiating).

Measured (jax 0.5.3, torch 2.13 channels-last, 2-core AMD EPYC Zen 4 shared with a training
job, so ~2–3× slower than idle and noisy; all in one run, interleaved; ms, median of 5):

    C = 192                           xla    tree  fft_vjp  tree_vjp  tree_fft  PyTorch
    K=11 1×192×128 static fwd        1583     106      132       108       104       69
    K=11 1×192×128 static fwd+bwd    6731    2345      198       424       156      420
    K=11 8×64×64 per-sample fwd      2114     105      253       102       107       86
    K=11 8×64×64 per-sample fwd+bwd >30000   2673      216       584       201      538
    K=11 8×64×64 static fwd+bwd      4949    3465      184       616       175      340
    K=3  1×192×128 static fwd+bwd       -     164      162        51       155       61
    K=3  8×64×64 per-sample fwd+bwd     -     228      241        84       245       71

Choice: on CPU `tree_vjp` for K ≤ 5, `tree_fft` for K ≥ 7 (forward = `tree` in both). Over
LLIC's shapes forward + backward takes 0.3–0.5× PyTorch's time at K = 9, 11 and 0.8–1.1× at
K = 3; the forward alone 1.2–1.7× at K = 9, 11 from 128×128 up, ≤ 1× below and at K = 3
(the XLA loop above is the limit; see `tree`).

GPU: `tree_fft` too. Measured on an NVIDIA H200 (jax 0.11.2, torch 2.11 + cuDNN; B = 64,
C = 192, per-sample kernels, forward + backward, ms, median of 5):

    K=9 64×16×16        xla 2.8   tree 0.7   tree_vjp 3.4   fft_vjp 0.6   PyTorch 3.1
    K=9 64×32×32        xla 11.5  tree 3.3   tree_vjp 16.1  fft_vjp 1.3   PyTorch 13.2

(XLA's grouped conv and cuDNN's are slow for per-sample kernels folded into B·C groups; the
forward alone and larger maps were not measured in that lease.) TPU: `xla`, unmeasured.
`LLIC_DWCONV=<name>` in the environment forces a formulation (read when a caller is traced).

The custom VJPs make `depthwise_conv` reverse-mode only on CPU and GPU: `jax.grad`/`jax.vjp`
work, `jax.jvp`/`jax.jacfwd` raise.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["depthwise_conv"]

_MAX_KERNEL_SIZE = 13


def _check(x: jax.Array, kernel: jax.Array) -> tuple[int, bool]:
    """Returns (K, per_sample); raises ValueError for unsupported shapes."""
    if x.ndim != 4:
        raise ValueError(f"x must be [B, H, W, C], got shape {x.shape}")
    if kernel.ndim not in (3, 4):
        raise ValueError(
            f"kernel must be [K, K, C] or [B, K, K, C], got shape {kernel.shape}"
        )
    per_sample = kernel.ndim == 4
    K = kernel.shape[-2]
    if kernel.shape[-3] != K or kernel.shape[-1] != x.shape[-1]:
        raise ValueError(f"kernel shape {kernel.shape} does not fit x shape {x.shape}")
    if per_sample and kernel.shape[0] != x.shape[0]:
        raise ValueError(
            f"per-sample kernel batch {kernel.shape[0]} != x batch {x.shape[0]}"
        )
    if K % 2 == 0 or K > _MAX_KERNEL_SIZE:
        raise ValueError(
            f"kernel size must be odd and at most {_MAX_KERNEL_SIZE}, got {K}"
        )
    return K, per_sample


def _windows(x: jax.Array, K: int) -> Iterator[Iterator[jax.Array]]:
    """Row i, column j → x shifted by (i − p, j − p), zero-filled, [B, H, W, C]."""
    p, (_, H, W, _) = K // 2, x.shape
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    # Rows first, then columns: 2K distinct slices, not K² (the same HLO once fused, but
    # far fewer ops to compile when run eagerly). Lazily: run eagerly, K² live full-size
    # slices would need K²× the input's memory.
    for i in range(K):
        yield _columns(xp[:, i : i + H], K, W)


def _columns(row: jax.Array, K: int, W: int) -> Iterator[jax.Array]:
    for j in range(K):
        yield row[:, :, j : j + W]


def _taps(kernel: jax.Array) -> list[list[jax.Array]]:
    """[i][j] → kernel tap (i, j), broadcastable against [B, H, W, C]."""
    K = kernel.shape[-2]
    if kernel.ndim == 3:
        rows = [kernel[i] for i in range(K)]
        return [[row[j] for j in range(K)] for row in rows]
    rows = [kernel[:, i, None, None] for i in range(K)]  # [B, 1, 1, K, C]
    return [[row[..., j, :] for j in range(K)] for row in rows]


def _tree_sum(terms: Iterable[jax.Array]) -> jax.Array:
    """Pairwise sum (a binary counter over the terms: O(log n) partial sums live).

    Pairwise rather than in order: independent add chains the CPU can overlap, where one
    long chain is latency-bound.
    """
    partials: list[tuple[int, jax.Array]] = []  # (level, sum of 2^level terms)
    for term in terms:
        level = 0
        while partials and partials[-1][0] == level:
            term = partials.pop()[1] + term
            level += 1
        partials.append((level, term))
    total = partials.pop()[1]
    while partials:
        total = partials.pop()[1] + total
    return total


def _shifted_products(x: jax.Array, kernel: jax.Array) -> Iterator[jax.Array]:
    taps = _taps(kernel)
    for windows, row_taps in zip(_windows(x, kernel.shape[-2]), taps, strict=True):
        for window, tap in zip(windows, row_taps, strict=True):
            yield window * tap


# ---------------------------------------------------------------- direct formulations


def _dwconv_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """XLA's grouped convolution; a per-sample kernel folds the batch into the channels."""
    B, H, W, C = x.shape
    if kernel.ndim == 4:
        # [B, H, W, C] → [1, H, W, B·C]: one group per (sample, channel).
        y = _dwconv_xla(x.transpose(1, 2, 0, 3).reshape(1, H, W, B * C), _fold(kernel))
        return y.reshape(H, W, B, C).transpose(2, 0, 1, 3)
    return lax.conv_general_dilated(
        x,
        kernel[:, :, None, :],
        window_strides=(1, 1),
        padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=C,
    )


def _fold(kernel: jax.Array) -> jax.Array:
    B, K, _, C = kernel.shape
    return kernel.transpose(1, 2, 0, 3).reshape(K, K, B * C)


def _dwconv_shift(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Shift-and-add, taps summed in order (the naive formulation)."""
    terms = _shifted_products(x, kernel)
    return functools.reduce(jnp.add, terms)


def _dwconv_tree(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Shift-and-add, taps summed as a balanced tree."""
    return _tree_sum(_shifted_products(x, kernel))


def _dwconv_rows(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Row-wise: per kernel row, one [B, H, W, K·C] product of K shifts and the kernel row."""
    B, H, W, C = x.shape
    K = kernel.shape[-2]
    rows = []
    for i, shifts in enumerate(_windows(x, K)):
        # Horizontal shifts side by side on the channel axis [j, c]: one multiply and one
        # K-term sum per kernel row instead of K of each.
        patches = jnp.concatenate(list(shifts), axis=-1)
        row = kernel[i] if kernel.ndim == 3 else kernel[:, i, None, None]
        product = patches * row.reshape(row.shape[:-2] + (K * C,))
        rows.append(product.reshape(B, H, W, K, C).sum(axis=3))
    return _tree_sum(rows)


# ---------------------------------------------------------------- FFT formulations


def _fast_length(n: int) -> int:
    """Smallest 2^a·3^b·5^c ≥ n (lengths the FFT handles fastest)."""
    while True:
        m = n
        for f in (2, 3, 5):
            while m % f == 0:
                m //= f
        if m == 1:
            return n
        n += 1


def _fft_plan(x: jax.Array, K: int):
    """FFT lengths and the DFT matrices E[u, a] = exp(2πi·u·(a − p)/N) for both axes.

    Lengths ≥ H + p suffice: x is zero-padded, so a circular shift by at most p never wraps
    real pixels onto ones the output reads.
    """
    _, H, W, _ = x.shape
    p = K // 2
    Hf, Wf = _fast_length(H + p), _fast_length(W + p)
    taps = np.arange(K) - p
    e_h = np.exp(2j * np.pi * np.outer(np.arange(Hf), taps) / Hf)
    e_w = np.exp(2j * np.pi * np.outer(np.arange(Wf // 2 + 1), taps) / Wf)
    ctype = jnp.complex128 if x.dtype == jnp.float64 else jnp.complex64
    return Hf, Wf, jnp.asarray(e_h, ctype), jnp.asarray(e_w, ctype)


def _real_dtype(x: jax.Array):
    return jnp.float64 if x.dtype == jnp.float64 else jnp.float32


def _spectrum(a: jax.Array, Hf: int, Wf: int) -> jax.Array:
    """[B, H, W, C] → half spectrum [B, C, Hf, Wf//2+1] of the zero-padded image."""
    return jnp.fft.rfft2(a.transpose(0, 3, 1, 2).astype(_real_dtype(a)), s=(Hf, Wf))


def _image(spectrum: jax.Array, Hf: int, Wf: int, H: int, W: int, dtype) -> jax.Array:
    """Inverse of `_spectrum`, cropped to H×W and back to [B, H, W, C]."""
    y = jnp.fft.irfft2(spectrum, s=(Hf, Wf))[:, :, :H, :W]
    return y.transpose(0, 2, 3, 1).astype(dtype)


def _kernel_spectrum(kernel: jax.Array, e_h: jax.Array, e_w: jax.Array) -> jax.Array:
    """[(B,) K, K, C] → [(B,) C, Hf, Wf//2+1]: two small DFT matmuls, not an FFT of zeros."""
    k = kernel.astype(e_h.dtype)
    return jnp.einsum("ua,...abc,vb->...cuv", e_h, k, e_w)


def _dwconv_fft(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """FFT convolution; gradients by JAX's autodiff."""
    _, H, W, _ = x.shape
    Hf, Wf, e_h, e_w = _fft_plan(x, kernel.shape[-2])
    k_hat = _kernel_spectrum(kernel, e_h, e_w)
    return _image(_spectrum(x, Hf, Wf) * k_hat, Hf, Wf, H, W, x.dtype)


def _fft_vjp_fwd(x, kernel):
    _, H, W, _ = x.shape
    Hf, Wf, e_h, e_w = _fft_plan(x, kernel.shape[-2])
    x_hat = _spectrum(x, Hf, Wf)
    k_hat = _kernel_spectrum(kernel, e_h, e_w)
    y = _image(x_hat * k_hat, Hf, Wf, H, W, x.dtype)
    return y, (x_hat, k_hat, kernel)


def _fft_vjp_bwd(res, g):
    x_hat, k_hat, kernel = res
    _, H, W, _ = g.shape
    Hf, Wf, e_h, e_w = _fft_plan(g, kernel.shape[-2])
    g_hat = _spectrum(g, Hf, Wf)
    dx = _image(g_hat * jnp.conj(k_hat), Hf, Wf, H, W, g.dtype)  # g.dtype = y's = x's
    return dx, _kernel_grad_from_spectra(x_hat, g_hat, kernel, Wf, e_h, e_w)


def _kernel_grad_from_spectra(x_hat, g_hat, kernel, Wf, e_h, e_w):
    """dk[a, b] = Σ_n g[n]·x[n + (a, b) − p]: the K×K lags of the cross-correlation."""
    cross = jnp.conj(g_hat) * x_hat  # [B, C, Hf, Wf//2+1]
    if kernel.ndim == 3:
        cross = cross.sum(axis=0)
    # The half spectrum stands for both ±v, except v = 0 and (even Wf) the Nyquist column.
    weight = np.full(Wf // 2 + 1, 2.0)
    weight[0] = 1.0
    if Wf % 2 == 0:
        weight[-1] = 1.0
    scale = jnp.asarray(weight / (e_h.shape[0] * Wf), e_w.real.dtype)
    dk = jnp.einsum("...cuv,ua,vb->...abc", cross, e_h, e_w * scale[:, None])
    return dk.real.astype(kernel.dtype)


def _spectral_vjp(primal):
    """`primal` without autodiff; under autodiff, the FFT forward and backward above."""
    conv = jax.custom_vjp(primal)
    conv.defvjp(_fft_vjp_fwd, _fft_vjp_bwd)
    return conv


_fft_vjp = _spectral_vjp(_dwconv_fft)
_tree_fft = _spectral_vjp(_dwconv_tree)


def _dwconv_fft_vjp(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """FFT convolution with a hand-written VJP that reuses the forward's spectra."""
    return _fft_vjp(x, kernel)


def _dwconv_tree_fft(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`tree` when not differentiated; `fft_vjp`'s forward and backward under autodiff."""
    return _tree_fft(x, kernel)


# ---------------------------------------------------------------- backward as depth-wise convs


def _flip(kernel: jax.Array) -> jax.Array:
    return kernel[::-1, ::-1] if kernel.ndim == 3 else kernel[:, ::-1, ::-1]


def _kernel_grad_rows(x: jax.Array, g: jax.Array, kernel: jax.Array, rows: int = 32):
    """dk[i, j] = Σ x[h + i − p, w + j − p]·g[h, w], summing blocks of `rows` rows in one loop.

    Autodiff of `tree` gives K² separate reductions: XLA:CPU does not fuse a product into a
    reduction over non-minor axes, so each tap writes and re-reads a full-size product.
    Here rows h = R·n + r are summed over r as R explicit terms (strided slices) inside one
    elementwise fusion whose output, [B, H/R, W, K², C], is K²/R the input's size; only that
    is reduced. Work is R·K² terms per compiled loop, hence for small K only.
    """
    B, H, W, C = x.shape
    K = kernel.shape[-2]
    p, R = K // 2, min(rows, H)
    n = -(-H // R)
    xp = jnp.pad(x, ((0, 0), (p, p + n * R - H), (p, p), (0, 0)))
    gp = jnp.pad(g, ((0, 0), (0, n * R - H), (0, 0), (0, 0)))

    def every_rth_row(a, start):
        return [
            lax.slice_in_dim(a, start + r, start + r + (n - 1) * R + 1, R, 1)
            for r in range(R)
        ]

    g_rows = every_rth_row(gp, 0)
    taps = []
    for i in range(K):
        x_rows = every_rth_row(xp, i)
        for j in range(K):
            pairs = zip(x_rows, g_rows, strict=True)
            taps.append(_tree_sum(xr[:, :, j : j + W] * gr for xr, gr in pairs))
    blocks = jnp.stack(taps, axis=3)  # [B, n, W, K², C]
    dk = blocks.sum((0, 1, 2) if kernel.ndim == 3 else (1, 2))
    return dk.reshape(kernel.shape)


@jax.custom_vjp
def _tree_vjp(x, kernel):
    return _dwconv_tree(x, kernel)


def _tree_vjp_fwd(x, kernel):
    return _dwconv_tree(x, kernel), (x, kernel)


def _tree_vjp_bwd(res, g):
    x, kernel = res
    # The adjoint of a correlation is a correlation with the flipped kernel.
    return _dwconv_tree(g, _flip(kernel)), _kernel_grad_rows(x, g, kernel)


_tree_vjp.defvjp(_tree_vjp_fwd, _tree_vjp_bwd)


def _dwconv_tree_vjp(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`tree` forward; backward: dx = `tree`(g, flipped k), dk by `_kernel_grad_rows`."""
    return _tree_vjp(x, kernel)


_FORMULATIONS = {
    "xla": _dwconv_xla,
    "shift": _dwconv_shift,
    "tree": _dwconv_tree,
    "rows": _dwconv_rows,
    "fft": _dwconv_fft,
    "fft_vjp": _dwconv_fft_vjp,
    "tree_vjp": _dwconv_tree_vjp,
    "tree_fft": _dwconv_tree_fft,
}
# CPU, measured: tap-by-tap backward for K ≤ 5 (K² cheap terms), the FFT beyond (its cost
# does not grow with K). GPU: the FFT backward measured fastest (module docstring).
_SMALL_KERNEL = 5


def _choose(backend: str, K: int) -> str:
    # Override for benchmarks and new backends (read when a caller is traced).
    forced = os.environ.get("LLIC_DWCONV")
    if forced:
        if forced not in _FORMULATIONS:
            raise ValueError(
                f"LLIC_DWCONV={forced!r}: not one of {sorted(_FORMULATIONS)}"
            )
        return forced
    if backend == "cpu":
        return "tree_vjp" if K <= _SMALL_KERNEL else "tree_fft"
    return "tree_fft" if backend == "gpu" else "xla"


@jax.jit  # also when called eagerly: op by op, the unrolled taps would be slow
def depthwise_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Depth-wise 'SAME' convolution with a static or per-sample kernel.

    Args:
      x: input [B, H, W, C], floating point.
      kernel: static kernel [K, K, C] shared by the batch, or per-sample kernels
        [B, K, K, C] (e.g. generated from x itself); K odd, K ≤ 13.

    Returns:
      [B, H, W, C]: y[b, h, w, c] = Σ_{i,j} x[b, h + i − K//2, w + j − K//2, c]·k[(b,) i, j, c],
      zero outside the image (cross-correlation, as `lax.conv_general_dilated`).

    Raises:
      ValueError: wrong ranks, an even or too large K, or kernel/input shapes that disagree.
    """
    K, _ = _check(x, kernel)
    # One dtype throughout: the custom VJPs' forward rules must match the primal's dtypes.
    dtype = jnp.result_type(x, kernel)
    conv = _FORMULATIONS[_choose(jax.default_backend(), K)]
    return conv(x.astype(dtype), kernel.astype(dtype))
