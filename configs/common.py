"""Shared parts of the training configs: λ tables, the LLIC recipe, argument parsing.

A config file is `get_config(arg)`, arg a string like "quality=3,metric=mse,compact=True,
quicktest=True" (big_vision style), returning an `ml_collections.ConfigDict`; fields are
then overridden on the command line (`--config.total_steps=20`,
`--config.input.folder=DIR`, tuples as `--config.input.patch_sizes="(128,)"`).

λ (DESIGN.md §5, the paper's sets): quality 1…6 ↔ MSE λ {0.0018, 0.0035, 0.0067, 0.0130,
0.0250, 0.0483} for `bpp + λ·MSE₂₅₅`, MS-SSIM λ {2.4, 4.58, 8.73, 16.64, 31.73, 60.5} for
`bpp + λ·(1 − MS-SSIM)`.

Recipe (DESIGN.md §6): 256² crops, 512² from 1.2M steps on, 2.0M steps in all; Adam
1e-4, 3e-5 from 1.7M, 1e-5 from 1.8M, 3e-6 from 1.9M; gradient clipping at norm 1.0.
Schedule boundaries are *fractions of total_steps* (0.6; 0.85, 0.9, 0.95), so a shorter
`--config.total_steps` keeps the recipe's proportions.
"""

import ml_collections
from ml_collections import config_dict

__all__ = [
    "ARG_DEFAULTS",
    "MSE_LMBDAS",
    "MS_SSIM_LMBDAS",
    "LLIC_MODEL_FIELDS",
    "llic_config",
    "lmbda_for",
    "parse_arg",
    "training_config",
]

MSE_LMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483}
MS_SSIM_LMBDAS = {1: 2.4, 2: 4.58, 3: 8.73, 4: 16.64, 5: 31.73, 6: 60.5}
ARG_DEFAULTS = {"quality": 3, "metric": "mse", "compact": False, "quicktest": False}
# The LLIC transform options every llic-* model has (llic_jax/models/llic.py).
LLIC_MODEL_FIELDS = {
    "N": int,
    "M": int,
    "analysis_depths": tuple,
    "synthesis_depths": tuple,
    "analysis_kernels": tuple,
    "synthesis_kernels": tuple,
    "num_kernels": int,
    "dynamic": bool,
}


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses "k=v,k2=v2" into a ConfigDict over `defaults`, values of their types.

    Raises:
      ValueError: an unknown key, a malformed item or a value of the wrong type.
    """
    out = dict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in defaults:
            raise ValueError(
                f"config arg {item!r}: expected key=value, keys {sorted(defaults)}"
            )
        out[key] = _convert(key, value, type(defaults[key]))
    return ml_collections.ConfigDict(out)


def _convert(key: str, value: str, kind: type):
    if kind is bool:
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"config arg {key}: {value!r} is not a boolean")
        return value.lower() in ("true", "1")
    try:
        return kind(value)
    except ValueError:
        raise ValueError(
            f"config arg {key}: {value!r} is not a {kind.__name__}"
        ) from None


def lmbda_for(quality: int, metric: str) -> float:
    """The paper's λ of `quality` (1…6) for `metric` ("mse" or "ms-ssim")."""
    tables = {"mse": MSE_LMBDAS, "ms-ssim": MS_SSIM_LMBDAS}
    if metric not in tables:
        raise ValueError(f"metric: {metric!r} is not one of {sorted(tables)}")
    if quality not in tables[metric]:
        raise ValueError(f"quality: {quality} is not one of {sorted(tables[metric])}")
    return tables[metric][quality]


def training_config(
    arg: ml_collections.ConfigDict,
    model_name: str,
    *,
    model_fields: dict[str, type],
    quicktest_model: dict,
) -> ml_collections.ConfigDict:
    """The full training config of `model_name` for parsed args (see `parse_arg`).

    Args:
      arg: quality, metric, quicktest (and compact, used by the caller).
      model_name: the registry key.
      model_fields: model options settable as `config.model.<name>` (unset: the
        registry's defaults).
      quicktest_model: the model options of `quicktest=True` (tiny, for CPU smoke runs).
    """
    config = ml_collections.ConfigDict()
    config.model_name = model_name
    config.model = ml_collections.ConfigDict(
        {name: config_dict.placeholder(kind) for name, kind in model_fields.items()}
    )
    config.quality = arg.quality
    config.metric = arg.metric
    config.lmbda = lmbda_for(arg.quality, arg.metric)
    config.seed = 0

    # Exactly one of folder / tfds_name. Crops: patch_sizes[k] from patch_boundaries[k-1].
    config.input = ml_collections.ConfigDict()
    config.input.folder = config_dict.placeholder(str)
    config.input.tfds_name = config_dict.placeholder(str)
    config.input.split = "train"
    config.input.data_dir = config_dict.placeholder(str)
    config.input.downscale = 1
    config.input.small_images = "skip"
    config.input.horizontal_flip = True
    config.input.vertical_flip = False
    config.input.shuffle_buffer = 256
    config.input.patch_sizes = (256, 512)
    config.input.patch_boundaries = (0.6,)

    config.batch_size = 16  # global, over all devices and hosts
    config.total_steps = 2_000_000
    config.lr_values = (1e-4, 3e-5, 1e-5, 3e-6)
    config.lr_boundaries = (0.85, 0.9, 0.95)
    config.grad_clip_norm = 1.0
    config.parallel = "jit"  # or "pmap"
    config.checkpoint_every = 5000
    config.keep_checkpoints = 3
    config.log_every = 100
    config.max_consecutive_nonfinite = 20

    # Held-out images (e.g. Kodak): estimated bpp and PSNR every `every` steps, real
    # bitstreams (llic_jax.compress) every `real_bpp_every` steps and at the end.
    config.eval = ml_collections.ConfigDict()
    config.eval.folder = config_dict.placeholder(str)
    config.eval.every = 10_000
    config.eval.real_bpp_every = 50_000
    config.eval.max_images = 24
    config.eval.downscale = 1

    if arg.quicktest:
        _quicktest(config, arg.metric, quicktest_model)
    return config


def llic_config(
    arg: str | None, name: str, *, fields: dict[str, type], quicktest_model: dict
) -> ml_collections.ConfigDict:
    """The config of the LLIC variant `name` (`name`-compact with `compact=True`).

    Args:
      arg: the config file's argument string (`ARG_DEFAULTS` keys).
      name: the registry key of the full-size variant.
      fields: model options beyond the LLIC transform's (`LLIC_MODEL_FIELDS`).
      quicktest_model: the model options of `quicktest=True`.
    """
    arg = parse_arg(arg, **ARG_DEFAULTS)
    return training_config(
        arg,
        f"{name}-compact" if arg.compact else name,
        model_fields={**LLIC_MODEL_FIELDS, **fields},
        quicktest_model=quicktest_model,
    )


def _quicktest(config: ml_collections.ConfigDict, metric: str, model: dict) -> None:
    """A tiny model and a short run for CPU smoke tests."""
    for name, value in model.items():
        config.model[name] = value
    # MS-SSIM's 5 scales need ≥ 161 pixels: the smallest multiple of 64 above is 192.
    config.input.patch_sizes = (192,) if metric == "ms-ssim" else (64,)
    config.input.patch_boundaries = ()
    config.batch_size = 8
    config.total_steps = 100
    config.lr_values = (1e-3, 1e-4)
    config.lr_boundaries = (0.9,)
    config.checkpoint_every = 50
    config.keep_checkpoints = 2
    config.log_every = 10
    config.eval.every = 50
    config.eval.real_bpp_every = 100
    config.eval.max_images = 2
