"""Export: trained parameters → one self-describing weights file with coding tables.

`llic export --workdir RUN --out W.safetensors` reads the latest training state of a
workdir, builds the integer coding tables from those parameters, and writes weights,
tables, the model config, the format version and the fingerprint (weights.py).
`--weights W` re-exports an existing weights file instead (e.g. to float16).

With `float16=True` the parameters are rounded to float16 *before* the tables are
built, so the file is self-consistent: the model that encodes is exactly the stored one.

Workdir layout read here (train/single_device.py): `config.json` with
`{"model": {"name", "options"}, ...}` and `state.msgpack` with `{"step", "state":
{"0": params, "1": optimizer state}}`.
"""

import json
import os
from pathlib import Path

import jax
import numpy as np

__all__ = ["export_weights", "load_workdir"]


def load_workdir(workdir: str | os.PathLike):
    """(model, params, metadata) of the latest training state in `workdir`."""
    import flax.serialization

    from llic_jax.models import create_model
    from llic_jax.weights import WeightsError

    workdir = Path(workdir)
    config_path, state_path = workdir / "config.json", workdir / "state.msgpack"
    for path in (config_path, state_path):
        if not path.is_file():
            raise WeightsError(f"{workdir}: no {path.name}; is this a training workdir?")
    try:
        config = json.loads(config_path.read_text())
        model = create_model(config["model"]["name"], **config["model"]["options"])
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{config_path}: bad training config ({e})") from None
    try:
        restored = flax.serialization.msgpack_restore(state_path.read_bytes())
        params, step = restored["state"]["0"], int(restored["step"])
    except Exception as e:  # msgpack raises several types on damaged files
        raise WeightsError(
            f"{state_path}: cannot read the training state ({e})"
        ) from None
    metadata = {k: str(v) for k, v in config.items() if k != "model"}
    metadata["steps"] = str(step)
    return model, params, metadata


def export_weights(
    out: str | os.PathLike,
    model,
    params,
    *,
    float16: bool = False,
    metadata: dict[str, str] | None = None,
):
    """Builds tables from `params` (rounded to float16 first if asked) and saves all.

    Returns the variables written (float32 parameters and tables).
    """
    import llic_jax

    params = jax.tree.map(lambda p: np.asarray(p, np.float32), params)
    if float16:
        params = jax.tree.map(lambda p: p.astype(np.float16).astype(np.float32), params)
    variables = llic_jax.build_tables(model, {"params": params})
    llic_jax.save_weights(
        out, model, variables, metadata, param_dtype="float16" if float16 else None
    )
    return variables
