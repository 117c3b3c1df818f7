"""The train step, its optimizer and schedules: pure functions, compiled by llic_jax.sharding.

Step (`make_train_step`): per-example rate–distortion loss (llic_jax.losses, DESIGN.md §5),
gradients, global-norm clipping, Adam, NaN guard. The step number, the learning rate and
λ are inputs (the loop evaluates the schedule on the host), not compiled-in constants.

- Per-example noise: example i of step s draws its quantisation noise from
  `fold_in(fold_in(key(seed), s), i)`, i its row in the *global* batch (the model runs
  under `jax.vmap` over single examples). The noise, and so the whole run, is the same
  whether the batch sits on one device, on a mesh (jit) or on pmap's devices, and after a
  restart on another device count.
- Reductions: sums over the local examples, then (pmap) `lax.psum`, divided by the
  global batch size: exact global per-example means, however the batch is split.
- NaN guard: a step whose loss or gradient norm is not finite leaves params and Adam
  state untouched (`lax.cond`, which also compiles faster than a per-leaf select) and
  reports `finite = False`; the loop counts and limits them.

Schedules (configs/common.py): boundaries are fractions of `total_steps`; the defaults
reproduce the LLIC recipe at 2.0M steps (256² crops, then 512² from 1.2M; Adam 1e-4,
3e-5 from 1.7M, 1e-5 from 1.8M, 3e-6 from 1.9M).
"""

import bisect
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from llic_jax.losses import rate_distortion_terms

__all__ = [
    "boundaries",
    "learning_rate_schedule",
    "make_optimizer",
    "make_train_step",
    "patch_size_at",
]


def boundaries(fractions: Sequence[float], total_steps: int) -> list[int]:
    """Step numbers of schedule boundaries given as fractions of `total_steps`."""
    steps = [round(f * total_steps) for f in fractions]
    if any(not 0 <= f <= 1 for f in fractions) or steps != sorted(steps):
        raise ValueError(f"schedule boundaries {tuple(fractions)}: increasing, in [0, 1]")
    return steps


def learning_rate_schedule(
    values: Sequence[float], fractions: Sequence[float], total_steps: int
) -> Callable[[int], float]:
    """Piecewise-constant lr: `values[k]` from boundary k − 1 (a fraction of total_steps).

    A host-side function: the step receives its value as an input, so changing the
    schedule (or λ) does not recompile the step.
    """
    if len(values) != len(fractions) + 1:
        raise ValueError(
            f"lr_values {tuple(values)} needs one more entry than lr_boundaries "
            f"{tuple(fractions)}"
        )
    steps = boundaries(fractions, total_steps)
    values = [float(v) for v in values]
    return lambda step: values[bisect.bisect_right(steps, step)]


def patch_size_at(step: int, sizes: Sequence[int], fractions: Sequence[float],
                  total_steps: int) -> int:  # fmt: skip
    """The crop side at `step`: `sizes[k]` from boundary k − 1 on."""
    if len(sizes) != len(fractions) + 1:
        raise ValueError(
            f"patch_sizes {tuple(sizes)} needs one more entry than patch_boundaries "
            f"{tuple(fractions)}"
        )
    return sizes[bisect.bisect_right(boundaries(fractions, total_steps), step)]


def make_optimizer(clip_norm: float) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's scaling; the step applies −lr(step)."""
    return optax.chain(optax.clip_by_global_norm(clip_norm), optax.scale_by_adam())


def make_train_step(
    model,
    optimizer: optax.GradientTransformation,
    *,
    metric: str,
    global_batch: int,
    seed: int,
    with_ms_ssim: bool = False,
) -> Callable:
    """`step(state, batch, ids, scalars, axis_name) → (state, metrics)`, uncompiled.

    Args:
      model: a registry model; `optimizer` from `make_optimizer` (or any optax scaling
        whose updates the step multiplies by −lr).
      metric: "mse" or "ms-ssim" (llic_jax.losses).
      global_batch: examples per step over all devices (the divisor of every mean).
      seed: the noise seed.
      with_ms_ssim: report MS-SSIM when training for MSE (crops ≥ 161 pixels).

    The returned function takes `state = {"params", "opt_state"}`, `batch` float32
    [b, P, P, 3] in [0, 1], `ids` int32 [b] (rows in the global batch), `scalars =
    {"step": int32, "lr": float32, "lmbda": float32}` (inputs, not constants: one
    compilation serves any schedule and λ) and `axis_name` (None, or the pmap axis to
    psum over). Its metrics: loss, bpp, mse, psnr (and ms_ssim), per-example means;
    grad_norm (before clipping), lr, finite.
    """
    noise_key = jax.random.key(seed)

    def example_terms(params, x, keys, lmbda):
        def one(xi, key):
            x_hat, bits = model.apply({"params": params}, xi[None], rngs={"noise": key})
            return x_hat[0], {k: b[0] for k, b in bits.items()}

        x_hat, bits = jax.vmap(one)(x, keys)
        return rate_distortion_terms(x, x_hat, bits, lmbda, metric,
                                     with_ms_ssim=with_ms_ssim)  # fmt: skip

    def loss_fn(params, x, keys, lmbda):
        sums = {k: jnp.sum(v) for k, v in example_terms(params, x, keys, lmbda).items()}
        return sums["loss"] / global_batch, sums

    def step_fn(state, batch, ids, scalars, axis_name):
        step_key = jax.random.fold_in(noise_key, scalars["step"])
        keys = jax.vmap(lambda i: jax.random.fold_in(step_key, i))(ids)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, sums), grads = grad_fn(state["params"], batch, keys, scalars["lmbda"])
        if axis_name is not None:
            sums, grads = jax.lax.psum((sums, grads), axis_name)
        metrics = {k: v / global_batch for k, v in sums.items()}
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        lr = scalars["lr"]
        params = jax.tree.map(lambda p, u: p - lr * u, state["params"], updates)
        new_state = {"params": params, "opt_state": opt_state}
        # A non-finite step leaves the state as it was.
        state = jax.lax.cond(finite, lambda: new_state, lambda: state)
        return state, {**metrics, "grad_norm": grad_norm, "lr": lr, "finite": finite}

    return step_fn
