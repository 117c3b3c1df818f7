"""The public functions of DESIGN.md §4 that are not coding: init, tables, eval forward."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from llic_jax.entropy.coarseness import check_coarseness

__all__ = ["build_tables", "init", "reconstruct"]


def init(model, rng: jax.Array, image_size: tuple[int, int] = (256, 256)) -> dict:
    """Initialises the parameters of `model` → `{"params": ...}`.

    Args:
      model: a module from `create_model`.
      rng: a `jax.random` key.
      image_size: (H, W) of the dummy input; parameters do not depend on it.
    """
    h, w = image_size
    multiple = model.pad_multiple
    h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    params_rng, noise_rng = jax.random.split(rng)
    x = jnp.zeros((1, h, w, 3), jnp.float32)
    variables = model.init({"params": params_rng, "noise": noise_rng}, x)
    return {"params": variables["params"]}


def build_tables(model, variables: dict) -> dict:
    """Adds the integer coding tables (`tables` collection) built from `params`.

    Run once after training; the tables are saved with the weights and never rebuilt
    at decode time.
    """
    from llic_jax.entropy import tables  # late import: the only path that needs TF

    return {**variables, "tables": tables.build(model, variables["params"])}


@functools.lru_cache(maxsize=16)
def _eval_forward_fn(model, coarseness: int = 0):
    return jax.jit(
        lambda params, x: model.apply(
            {"params": params}, x, coarseness, method="eval_forward"
        )
    )


def reconstruct(
    model,
    variables: dict,
    img: np.ndarray,
    placement: tuple[int, int] | None = None,
    coarseness: int = 0,
) -> tuple[np.ndarray, float]:
    """Eval-mode forward without entropy coding.

    Args:
      img: uint8 [H, W, 3].
      placement: (top, left) of the image in its padded canvas; None centres it, as
        the codec does (coding/placement.py).
      coarseness: y's quantisation step is r**coarseness (entropy/coarseness.py).

    Returns:
      (reconstruction uint8 [H, W, 3], estimated bits = Σ −log2 p over y and z).
    """
    # codec imports this module
    from llic_jax.coding.codec import crop_image, pad_image, to_uint8
    from llic_jax.coding.placement import centred_placement

    if placement is None:
        placement = centred_placement(model, *np.shape(img)[:2])
    x, size = pad_image(model, img, placement)
    x_hat, bits = _eval_forward_fn(model, check_coarseness(coarseness))(
        variables["params"], x
    )
    total = float(np.asarray(bits["y"]).sum() + np.asarray(bits["z"]).sum())
    return to_uint8(crop_image(x_hat, size, placement)), total
