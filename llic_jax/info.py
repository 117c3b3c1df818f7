"""`llic info`: parameter counts, kMAC/pixel and latent layout of a registered model."""

import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.models import create_model

__all__ = ["count_parameters", "describe", "macs_per_pixel"]


def count_parameters(tree) -> int:
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(tree)))


def macs_per_pixel(model, params_shapes, height: int, width: int) -> float:
    """Multiply–accumulates per pixel of the eval forward (XLA's flop count / 2).

    Counts every network of the forward pass (transforms, hyper and context nets),
    not the entropy coding; estimated from the lowered computation, nothing is compiled.
    It counts what XLA executes: a stride-2 5×5 `TransposedConv` runs as four 3×3
    phase convolutions, 36 taps where 25 carry weights.
    """
    x = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
    lowered = jax.jit(
        lambda p, x: model.apply({"params": p}, x, method="eval_forward")
    ).lower(params_shapes, x)
    cost = lowered.cost_analysis()
    if isinstance(cost, list):  # older JAX returns one dict per computation
        cost = cost[0]
    return float(cost["flops"]) / 2 / (height * width)


def describe(name: str, height: int = 512, width: int = 768) -> str:
    """A short multi-line report on model `name` at an H×W input."""
    model = create_model(name)
    m = model.pad_multiple
    hp, wp = -(-height // m) * m, -(-width // m) * m
    x = jax.ShapeDtypeStruct((1, hp, wp, 3), jnp.float32)
    params = jax.eval_shape(
        lambda x: model.init(
            {"params": jax.random.key(0), "noise": jax.random.key(1)}, x
        ),
        x,
    )["params"]
    y, z = jax.eval_shape(
        lambda p, x: model.apply({"params": p}, x, method="analysis"), params, x
    )
    lines = [f"model       {name}"]
    total = count_parameters(params)
    lines.append(f"parameters  {total:,} ({total / 1e6:.2f} M)")
    for part in sorted(params):
        lines.append(f"  {part:<22}{count_parameters(params[part]):>12,}")
    kmacs = macs_per_pixel(model, params, hp, wp) / 1e3
    lines.append(f"kMAC/pixel  {kmacs:.1f} at {height}x{width} (padded to {hp}x{wp})")
    lines.append(f"latent y    {y.shape[1]}x{y.shape[2]}x{y.shape[3]} (stride 16)")
    lines.append(f"hyper z     {z.shape[1]}x{z.shape[2]}x{z.shape[3]} (stride 64)")
    steps = len(model.coding_masks(tuple(y.shape[1:])))
    lines.append(f"coding      {steps} step(s) for y; pad to a multiple of {m} (edge)")
    return "\n".join(lines)
