"""Encoder-side latent refinement: optimise one image's latents for its own RD cost.

The analysis transform is amortised: one network maps every image to latents, and for
any single image those latents are not the ones that minimise `bpp + λ·MSE` under the
model's own decoder and entropy model (the "amortisation gap"). The encoder may close
part of that gap by gradient descent on `y` and `z` of the image at hand, with the
weights frozen. The decoder is untouched — it never learns the latents were refined —
so a refined stream decodes with the same weights, bit-exactly, at a lower RD cost.

Rounding is made differentiable by stochastic Gumbel annealing (`ops.annealed_round`;
Yang, Bamler, Mandt, "Improving inference for neural image compression", NeurIPS 2020):
the same relaxed value feeds the rate and the synthesis, and its temperature falls
geometrically from `temperatures[0]` to `temperatures[1]` so the last steps optimise
almost the hard rounding the coder applies. Adam's step size follows a cosine decay to
zero. The temperature schedule (0.5 → 0.05) was chosen on two Kodak images with the
bundled quality-3 model at 40 steps, where straight-through and additive-noise
surrogates raised the real RD cost instead; at 60 steps, other Adam moments (β₁ 0.8;
β₂ 0.99, 0.95) and temperature ends (0.5 → 0.02, 0.3 → 0.05) changed the cost by at most
0.08% and a hotter start (1.0) lost 0.7% (docs/results-history.md, "Session 19").

The initial step size, 4e-2, was measured in session 36 (docs/results-history.md) with
the post-filter in the loop and the photo centred. The 2e-2 of sessions 14–35 had beaten
a constant 5e-3 and a constant 2e-2 at 40 steps and tied with 4e-2 at 60 (session 15,
q3, two photos, older weights, no post-filter). Now, at 20 steps, 4e-2 lowers the RD
cost after refinement against 2e-2 on all eleven (photo, model) pairs tried (q4 on six
photos, q3 on five), by 0.3–1.6% (4.5e-2 on kodim05, q4: 2.8%), where 6.5e-2 gains more
on some textured photos (kodim05, 13) but loses on smooth ones (kodim02–04 and 07 with
q3: +0.6 to +1.1%). At 160 steps (q4, kodim05) 4.5e-2 and 6.5e-2 both beat 2e-2 by
1.1–1.2%, 1e-1 by less, but `llic eval` with every option at 6.5e-2 gained only 0.24%
on kodim01–05 (lost on kodim02–04): 160 steps at 4e-2 are not measured yet. The default
of 20 steps (~1.1 s each for a 500×500 image on two CPU cores, nearly all of it the
synthesis transform's gradient) is the cheap end of the method; docs/results.md compares
20 to 160; Yang et al. run 2,000.

Loss convention (DESIGN.md §5): `bits / (H·W) + λ·MSE`, MSE on the 0–255 scale over
the original H×W only, wherever it sits in the padded canvas (the padding is not the
user's image, but its latents are coded, so its bits count). λ is the one the weights
were trained with (their metadata).

The refinement never returns latents worse than the analysis gave: if the hard-rounded
RD cost (continuous scales, not the coder's table; close to what the coder spends) of
the refined latents is not lower, the analysis latents are kept.

With a post-filter (layers/post_filter.py) the distortion is measured after it: the
decoder will show the filtered image, so that is the one the latents should serve. The
filter's Jacobian matters: treating it as the identity (the gradient of the filtered
error taken at the synthesis output, the filter's residual held fixed) left the RD cost
2.8% above refining through the filter (q4, kodim05, 40 steps; session 37).

When the decoder will show the filter's self-ensemble (its mean over the image's eight
orientations, the residual scaled by the filter's gain), step i filters the image turned
to orientation i mod 8 (residual scaled by the same gain): over the steps the latents
serve all eight passes, at the cost of one per step; the hard costs that decide between
refined and analysis latents are the ensemble's. Refined through the unturned pass only,
the latents fit that pass and the ensemble keeps less of the gain: at 40 steps (q4, step
size 4e-2) the ensemble's RD cost fell 8.88% (kodim05) and 7.56% (kodim03) that way,
9.36% and 7.74% turning the filter, 9.43% (kodim05) with the gain in the loop as well.
`llic eval --refine 20 --orient --place --filter-ensemble` on kodak24: RD cost −0.34 /
−0.37 / −0.40% (q2 / q4 / q3) against the unturned pass, lower on 68 of 72 photos, for
~20% more encode time (session 37, docs/results-history.md).

At a coarseness k > 0 (entropy/coarseness.py) the relaxed rounding acts on the residuals
divided by the step r**k, as the coder will; the λ to refine for is then the caller's
(`coarser_lmbda` scales the weights' own).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import jax
import jax.numpy as jnp
import optax

from llic_jax.entropy.coarseness import latent_step
from llic_jax.layers.post_filter import dihedral_mean
from llic_jax.ops import annealed_round

__all__ = ["Refinement", "refine_latents"]


@dataclasses.dataclass(frozen=True)
class Refinement:
    """How to refine one image's latents (module docstring: the defaults' provenance).

    Attributes:
      lmbda: λ of the loss `bpp + λ·MSE(0–255)`; use the weights' own.
      steps: gradient steps (each ≈ one training step of the model on that image).
      learning_rate: Adam's initial step size, decayed to 0 by a cosine.
      temperatures: (first, last) temperature of the annealed rounding, first ≥ last > 0.
      seed: seeds the Gumbel noise, so that refinement is deterministic.
    """

    lmbda: float
    steps: int = 20
    learning_rate: float = 4e-2
    temperatures: tuple[float, float] = (0.5, 0.05)
    seed: int = 0

    def __post_init__(self):
        first, last = self.temperatures
        if not (math.isfinite(self.lmbda) and self.lmbda > 0):
            raise ValueError(f"refinement λ must be positive, got {self.lmbda}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(
                f"refinement steps must be a positive integer, got {self.steps}"
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning rate must be positive, got {self.learning_rate}")
        if not first >= last > 0:
            raise ValueError(
                f"temperatures must satisfy first ≥ last > 0, got {first}, {last}"
            )

    def temperature(self, step: jax.Array) -> jax.Array:
        """Geometric schedule: `first` at step 0, `last` at step `steps − 1`."""
        return _temperature(step, self.steps, *self.temperatures)

    def learning_rate_at(self, step: jax.Array) -> jax.Array:
        """Cosine decay from `learning_rate` at step 0 towards 0 at step `steps`."""
        return _learning_rate(step, self.steps, self.learning_rate)

    def _traced(self) -> dict[str, jax.Array]:
        """The schedule as arrays: one compiled step serves every `Refinement`."""
        first, last = self.temperatures
        return {
            "lmbda": jnp.float32(self.lmbda),
            "steps": jnp.float32(self.steps),
            "learning_rate": jnp.float32(self.learning_rate),
            "first": jnp.float32(first),
            "last": jnp.float32(last),
            "seed": jnp.uint32(self.seed),
        }


def _temperature(step, steps, first, last):
    progress = step / jnp.maximum(steps - 1, 1)
    return first * (last / first) ** progress


def _learning_rate(step, steps, initial):
    # optax.cosine_decay_schedule(initial, steps), with `steps` an array
    return initial * 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(step, steps) / steps))


def _rd_cost(model, params, y, z, x, weight, lmbda, quantize, post_filter=None, step=1.0):
    """RD cost: bits per pixel + λ·MSE(0–255), over the pixels where `weight` is 1.

    `post_filter`, if given, maps the synthesis output to the image the decoder shows;
    `step` is y's quantisation step (entropy/coarseness.py).
    """
    x_hat, bits = model.apply(
        {"params": params}, y, z, quantize, step, method="relaxed_forward"
    )
    if post_filter is not None:
        x_hat = post_filter(x_hat)
    pixels = weight.sum()
    squared_error = (weight * (x_hat - x) ** 2).sum() / (3 * pixels)
    return bits.sum() / pixels + lmbda * squared_error * 255.0**2


def _single_pass(module, params, x_hat):
    return module.apply({"params": params}, x_hat)


def _flip(x, axis, flag):
    return jnp.where(flag, jnp.flip(x, axis), x)


def _oriented_pass(module, params, x_hat, orientation, transposed):
    """The filter run on the image turned to `orientation`, turned back.

    `orientation` (traced, 0…7): bit 1 flips rows, bit 2 columns, bit 0 transposes, which
    must equal the static `transposed` (a shape change needs its own compilation). The
    flips are selects, not `lax.switch` over eight branches: under `jax.grad` the switch
    made a 512×512 step 2.7× slower on XLA:CPU (4.8 against 1.8 s; session 37).
    """
    flip_rows, flip_columns = orientation & 2, orientation & 4
    v = jnp.swapaxes(x_hat, 1, 2) if transposed else x_hat
    v = _flip(_flip(v, 1, flip_rows), 2, flip_columns)
    v = _single_pass(module, params, v)
    v = _flip(_flip(v, 2, flip_columns), 1, flip_rows)
    return jnp.swapaxes(v, 1, 2) if transposed else v


def _ensemble_pass(module, params, gain, x_hat):
    """The self-ensemble the decoder shows (post_filter_weights.LoadedPostFilter)."""
    mean = dihedral_mean(functools.partial(_single_pass, module, params), x_hat)
    return x_hat + gain * (mean - x_hat)


@functools.lru_cache(maxsize=8)
def _refine_fns(model, filter_module=None, ensemble=False):
    """(init, step, choose), each jitted once per model, post-filter architecture and mode.

    The schedule (`Refinement._traced`) and the step index are arguments, not constants,
    so every number of steps, learning rate and λ shares one compilation (a warm-up of
    one step compiles them all). The loop over steps runs in Python, one jitted step per
    iteration: under `lax.fori_loop` XLA:CPU ran the same step 1.5× slower (1.59 vs
    1.07 s at 500×500 on 2 cores; measured, the cause not traced).
    """
    adam = optax.scale_by_adam()  # optax.adam without its learning rate

    def shown(filter_params, gain, orientation, transposed):
        # What the cost sees of the synthesis output: itself without a filter; with one,
        # the filter's pass (in `orientation` when refining for the ensemble), or the
        # ensemble itself when `orientation` is None and the decoder will show it.
        if filter_module is None:
            return None
        if not ensemble:
            return functools.partial(_single_pass, filter_module, filter_params)
        if orientation is None:
            return functools.partial(_ensemble_pass, filter_module, filter_params, gain)

        def one_pass(x_hat):
            filtered = _oriented_pass(
                filter_module, filter_params, x_hat, orientation, transposed
            )
            return x_hat + gain * (filtered - x_hat)

        return one_pass

    def cost(
        latents, params, x, weight, lmbda, quantize, orientation=None, transposed=False
    ):
        # params: (codec params, filter params or None, the ensemble's gain, y's step)
        codec_params, filter_params, gain, step = params
        post = shown(filter_params, gain, orientation, transposed)
        return _rd_cost(
            model, codec_params, *latents, x, weight, lmbda, quantize, post, step
        )

    def relaxed_cost(latents, params, x, weight, schedule, i, transposed):
        rng = jax.random.fold_in(jax.random.key(schedule["seed"]), i)
        temperature = _temperature(
            i, schedule["steps"], schedule["first"], schedule["last"]
        )
        calls = itertools.count()  # one fresh key per rounding call, in trace order

        def quantize(v):
            return annealed_round(v, jax.random.fold_in(rng, next(calls)), temperature)

        lmbda = schedule["lmbda"]
        return cost(latents, params, x, weight, lmbda, quantize, i % 8, transposed)

    def hard_cost(latents, params, x, weight, lmbda):
        return cost(latents, params, x, weight, lmbda, jnp.round)

    def step(latents, state, params, x, weight, schedule, i, transposed):
        grads = jax.grad(relaxed_cost)(
            latents, params, x, weight, schedule, i, transposed
        )
        directions, state = adam.update(grads, state)
        rate = _learning_rate(i, schedule["steps"], schedule["learning_rate"])
        latents = jax.tree.map(lambda v, d: v - rate * d, latents, directions)
        return latents, state

    def choose(start, refined, params, x, weight, lmbda):
        before = hard_cost(start, params, x, weight, lmbda)
        after = hard_cost(refined, params, x, weight, lmbda)
        keep = after < before
        chosen = jax.tree.map(lambda new, old: jnp.where(keep, new, old), refined, start)
        return chosen, {"cost_before": before, "cost_after": jnp.minimum(after, before)}

    step = jax.jit(step, static_argnames="transposed")
    return jax.jit(adam.init), step, jax.jit(choose)


def refine_latents(
    model,
    params,
    x: jax.Array,
    size: tuple[int, int],
    y,
    z,
    refinement: Refinement,
    *,
    progress: bool = False,
    post_filter=None,
    ensemble: bool = False,
    placement: tuple[int, int] = (0, 0),
    coarseness: int = 0,
):
    """Refines the latents (y, z) of one padded image `x` for `refinement.lmbda`.

    Args:
      model: a registry model whose latent codec supports `relaxed_forward`.
      params: its parameters (frozen).
      x: float32 [1, H', W', 3] in [0, 1], padded to the model's multiple.
      size: (H, W) of the original image inside `x`.
      y, z: the analysis latents of `x`, the starting point.
      refinement: the schedule.
      progress: show a progress bar over the steps on stderr.
      post_filter: a `LoadedPostFilter` the decoder will apply: the distortion is then
        that of the filtered reconstruction.
      ensemble: the decoder will show `post_filter`'s self-ensemble (its mean over the
        eight orientations, residual scaled by its gain): step i filters the image in
        orientation i mod 8, and the costs returned are the ensemble's.
      placement: (top, left) of the image in `x` (coding/placement.py).
      coarseness: the coder will quantise y with the step r**coarseness
        (entropy/coarseness.py); `refinement.lmbda` should suit that step.

    Returns:
      ((y, z) refined, {"cost_before", "cost_after"}: hard-rounded RD costs, floats).

    Raises:
      NotImplementedError: the model's latent codec has no relaxed forward.
      ValueError: `ensemble` without a `post_filter`.
    """
    if ensemble and post_filter is None:
        raise ValueError("refining for the post-filter's ensemble needs a post-filter")
    (h, w), (top, left) = size, placement
    weight = jnp.zeros(x.shape[:3] + (1,), x.dtype)
    weight = weight.at[:, top : top + h, left : left + w].set(1.0)
    # One cache key per (model, filter architecture), None included, whichever the caller.
    filter_module, filter_params, gain = (
        (None, None, 1.0)
        if post_filter is None
        else (post_filter.module, post_filter.params, post_filter.ensemble_gain)
    )
    init, step, choose = _refine_fns(model, filter_module, bool(ensemble))
    params = (params, filter_params, jnp.float32(gain), latent_step(coarseness))
    schedule = refinement._traced()
    latents = start = (y, z)
    state = init(start)
    steps = range(refinement.steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="refining latents", unit="step", leave=False)
    for i in steps:
        transposed = ensemble and bool(i % 2)  # orientation i mod 8's bit 0
        latents, state = step(
            latents, state, params, x, weight, schedule, jnp.int32(i), transposed
        )
        if progress:  # dispatch is asynchronous: count finished steps, not queued ones
            jax.block_until_ready(latents)
    (y, z), costs = choose(start, latents, params, x, weight, schedule["lmbda"])
    return (y, z), {name: float(value) for name, value in costs.items()}
