"""Times every depth-wise convolution formulation at LLIC's shapes, against PyTorch.

Usage: ``python -m eval.bench_dwconv [--quick] [--repeats N] [--only NAME ...] [--batch 1 8]
[--kind static per-sample] [--mode fwd fwd+bwd] [--shapes kodak train] [--kernel-size K]``

Rows are LLIC's g_a stages (N = C = 192, kernels 11, 11, 9, 9; each stage runs after a ×2
down-sampling) for a 768×512 image (384×256 … 48×32) and for 256×256 training crops (128² …
16²), at batch 1 and 8, with a static kernel [K, K, C] or per-sample kernels [B, K, K, C],
forward only or forward + gradient w.r.t. x and the kernel of a scalar loss ⟨y, g⟩.
Every function is jitted; a row's formulations run interleaved (one call each per round,
after a warm-up call), and each cell is the median of the rounds, in ms. With ``torch``
importable, PyTorch runs in the same rounds on the same inputs: channels-last
``conv2d(x, w, padding=K//2, groups=C)``, per-sample kernels by folding the batch into the
channels (groups = B·C). ``public`` is ``llic_jax.layers.depthwise_conv``; ratio = its time
over PyTorch's. ``err`` is the public function's largest deviation from PyTorch's output
(forward), relative to the output's largest magnitude.

A formulation whose first timed call exceeds ``--give-up`` seconds is reported once (``>``)
and skipped for the larger shapes of the same kind and mode; one whose estimated working
set exceeds ``--max-gb`` is skipped (``-``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.layers import depthwise_conv, dwconv

try:
    import torch
except ImportError:  # the comparison is optional
    torch = None

C = 192
# PyTorch runs where JAX runs: on the GPU when JAX uses one (timings then wait for the GPU).
TORCH_DEVICE = (
    "cuda"
    if torch is not None and jax.default_backend() == "gpu" and torch.cuda.is_available()
    else "cpu"
)
KODAK = [(384, 256, 11), (192, 128, 11), (96, 64, 9), (48, 32, 9)]
TRAIN = [(128, 128, 11), (64, 64, 11), (32, 32, 9), (16, 16, 9)]
QUICK = [  # (batch, H, W, K, kind, mode)
    (1, 192, 128, 11, "static", "fwd"),
    (1, 192, 128, 11, "static", "fwd+bwd"),
    (8, 64, 64, 11, "per-sample", "fwd"),
    (8, 64, 64, 11, "per-sample", "fwd+bwd"),
    (8, 64, 64, 11, "static", "fwd+bwd"),
]
# Working-set multiple of the input's size (x, y, g, spectra, patches), for --max-gb.
FOOTPRINT = {"rows": lambda K: 3 * K, "fft": lambda K: 8, "fft_vjp": lambda K: 8}


def _jax_fn(conv, mode):
    if mode == "fwd":
        return jax.jit(lambda x, k, g: conv(x, k))
    loss = lambda x, k, g: jnp.vdot(conv(x, k), g)
    return jax.jit(jax.grad(loss, argnums=(0, 1)))


def _torch_fn(x, k, g, mode):
    """A closure running PyTorch's channels-last depth-wise conv on copies of x, k, g."""
    B, H, W, Cx = x.shape
    K = k.shape[-2]
    groups = Cx if k.ndim == 3 else B * Cx
    # NHWC memory viewed as NCHW is exactly channels-last; folding B into C needs a copy.
    xt = torch.from_numpy(np.array(x)).to(TORCH_DEVICE).permute(0, 3, 1, 2)
    gt = torch.from_numpy(np.array(g)).to(TORCH_DEVICE).permute(0, 3, 1, 2)
    if k.ndim == 4:
        xt = xt.reshape(1, B * Cx, H, W).contiguous(memory_format=torch.channels_last)
        gt = gt.reshape(1, B * Cx, H, W).contiguous(memory_format=torch.channels_last)
    wt = torch.from_numpy(np.array(k).reshape(-1, K, K, Cx)).to(TORCH_DEVICE)
    wt = wt.permute(0, 3, 1, 2)
    wt = wt.reshape(groups, 1, K, K).contiguous()
    conv = lambda a, w: torch.nn.functional.conv2d(a, w, padding=K // 2, groups=groups)
    if mode == "fwd":

        def run():
            with torch.no_grad():
                out = conv(xt, wt)
            _torch_wait()
            return out

        return run
    xt.requires_grad_(True)
    wt.requires_grad_(True)

    def run_grad():
        grads = torch.autograd.grad(conv(xt, wt), (xt, wt), gt)
        _torch_wait()
        return grads

    return run_grad


def _torch_wait():
    if TORCH_DEVICE == "cuda":
        torch.cuda.synchronize()


def _torch_output_nhwc(out, B, H, W):
    y = out.detach().reshape(B, -1, H, W).permute(0, 2, 3, 1)
    return y.contiguous().cpu().numpy()


def bench_row(batch, H, W, K, kind, mode, names, args, skip):
    """Times one row; returns {name: ms or None}, and the public function's error."""
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (batch, H, W, C))
    k = jax.random.normal(keys[1], ((batch,) if kind == "per-sample" else ()) + (K, K, C))
    k = k / K  # unit-scale outputs
    g = jax.random.normal(keys[2], x.shape)
    size_gb = x.size * 4 / 2**30
    calls = {}
    for name in names:
        if (name, kind, mode) in skip:
            continue
        if FOOTPRINT.get(name, lambda K: 4)(K) * size_gb > args.max_gb:
            continue
        conv = depthwise_conv if name == "public" else dwconv._FORMULATIONS[name]
        fn = _jax_fn(conv, mode)
        calls[name] = lambda fn=fn: jax.block_until_ready(fn(x, k, g))
    if torch is not None:
        calls["torch"] = _torch_fn(x, k, g, mode)
    times = {name: [] for name in calls}
    for name, call in list(calls.items()):  # warm-up (compiles); give up on slow ones
        call()
        start = time.perf_counter()
        call()
        times[name].append(time.perf_counter() - start)
        if times[name][0] > args.give_up and name != "torch":
            skip.add((name, kind, mode))
            del calls[name]
    order = list(calls)
    for round_ in range(args.repeats - 1):
        # Rotate the order: whoever runs right after PyTorch (its threads still spinning,
        # caches refilled) changes from round to round.
        for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    result = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    slow = {name for name in times if name not in calls}
    err = None
    if torch is not None and mode == "fwd" and "public" in calls:
        ours = np.asarray(depthwise_conv(x, k))
        theirs = _torch_output_nhwc(calls["torch"](), batch, H, W)
        err = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
    return result, slow, err


def _cell(name, result, slow):
    if name not in result:
        return "-"
    return (">" if name in slow else "") + f"{result[name]:.1f}"


def _rows(args):
    if args.quick:
        return QUICK
    shapes = (KODAK if "kodak" in args.shapes else []) + (
        TRAIN if "train" in args.shapes else []
    )
    return [
        (b, H, W, K, kind, mode)
        for kind in args.kind
        for mode in args.mode
        for b in args.batch
        for H, W, K in sorted(shapes, key=lambda s: s[0] * s[1])
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="five representative rows only"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per row")
    parser.add_argument("--only", nargs="+", help="formulations to time (default: all)")
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--kind", nargs="+", default=["static", "per-sample"])
    parser.add_argument("--mode", nargs="+", default=["fwd", "fwd+bwd"])
    parser.add_argument("--shapes", nargs="+", default=["kodak", "train"])
    parser.add_argument("--kernel-size", type=int, help="use this K for every row")
    parser.add_argument("--give-up", type=float, default=10.0, help="seconds per call")
    parser.add_argument("--max-gb", type=float, default=3.0, help="working-set limit")
    parser.add_argument("--json", type=Path, help="also write the rows' timings here")
    args = parser.parse_args(argv)
    names = ["public"] + (args.only or list(dwconv._FORMULATIONS))
    header = ["B", "H×W", "K", "kernel", "mode"] + names + ["torch", "ratio", "err"]
    print(
        f"jax {jax.__version__} on {jax.default_backend()}; torch "
        f"{torch.__version__ if torch else 'not installed'}; C = {C}; ms, median of "
        f"{args.repeats}"
    )
    print(" | ".join(header), flush=True)
    summary, skip, fastest = [], set(), []
    for b, H, W, K, kind, mode in _rows(args):
        K = args.kernel_size or K
        result, slow, err = bench_row(b, H, W, K, kind, mode, names, args, skip)
        ratio = result["public"] / result["torch"] if "torch" in result else None
        cells = [str(b), f"{H}×{W}", str(K), kind, mode]
        cells += [_cell(n, result, slow) for n in names + ["torch"]]
        cells += [
            f"{ratio:.2f}" if ratio else "-",
            f"{err:.0e}" if err is not None else "-",
        ]
        print(" | ".join(cells), flush=True)
        timed = [n for n in names if n in result]
        jax_best = min((result[n] + (1e9 if n in slow else 0), n) for n in timed)
        jax_best = (result[jax_best[1]], jax_best[1])
        summary.append(cells[:5] + [f"{jax_best[0]:.1f} ({jax_best[1]})"] + cells[-3:])
        fastest.append(
            {"row": cells[:5], "ms": {n: result[n] for n in timed if n not in slow}}
        )
    if args.json:
        names = header[:5] + ["fastest jax", "torch", "public/torch", "err"]
        rows = [dict(zip(names, c, strict=True)) for c in summary]
        args.json.write_text(json.dumps({"backend": jax.default_backend(), "rows": rows,
                                         "fastest": fastest}, indent=1))  # fmt: skip
    print("\nSummary: public function vs the fastest formulation and PyTorch (ms)")
    print(" | ".join(header[:5] + ["fastest jax", "torch", "public/torch", "err"]))
    for cells in summary:
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
