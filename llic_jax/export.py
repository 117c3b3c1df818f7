"""Export: trained parameters → one self-describing weights file with coding tables.

`llic export --workdir RUN --out W.safetensors` reads the latest training state of a
workdir, builds the integer coding tables from those parameters, and writes weights,
tables, the model config, the format version and the fingerprint (weights.py).
`--weights W` re-exports an existing weights file instead (e.g. to float16).

With `float16=True` the parameters are rounded to float16 *before* the tables are
built, so the file is self-consistent: the model that encodes is exactly the stored one.

Workdir layouts read here: `config.json` with `{"model": {"name", "options"}, ...}`, and
either orbax checkpoints in `checkpoints/<step>/` (train/main.py; the latest step's
`params` item) or `state.msgpack` with `{"step", "state": {"0": params, "1": optimizer
state}}` (train/lambda_sweep.py --to-workdir, and the retired single-device trainer).
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
    checkpoint_dir = workdir / "checkpoints"
    orbax = checkpoint_dir.is_dir()
    for path in (config_path,) if orbax else (config_path, state_path):
        if not path.is_file():
            raise WeightsError(f"{workdir}: no {path.name}; is this a training workdir?")
    try:
        config = json.loads(config_path.read_text())
        model = create_model(config["model"]["name"], **config["model"]["options"])
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{config_path}: bad training config ({e})") from None
    if orbax:
        params, step = _latest_checkpoint_params(model, checkpoint_dir)
    else:
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


def _latest_checkpoint_params(model, directory: Path):
    """(params as numpy, step) of the latest orbax checkpoint in `directory`."""
    import llic_jax
    from llic_jax.checkpoints import Checkpointer, abstract_tree
    from llic_jax.weights import WeightsError

    shapes = jax.eval_shape(
        lambda key: llic_jax.init(model, key, (64, 64)), jax.random.key(0)
    )
    abstract = abstract_tree(
        shapes["params"], jax.sharding.SingleDeviceSharding(jax.devices()[0])
    )
    try:
        checkpointer = Checkpointer(directory, read_only=True)
        params, step = checkpointer.restore_params(abstract)
    except Exception as e:  # orbax raises several types on missing or damaged files
        message = (str(e).strip() or type(e).__name__).splitlines()[0]
        raise WeightsError(f"{directory}: cannot read a checkpoint ({message})") from None
    return jax.tree.map(np.asarray, params), step


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
