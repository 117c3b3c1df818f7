"""Trains a model from a config file: the entry point of train/train_lib.py.

  python -m train.main --config configs/llic_elic.py:quality=3 --workdir DIR \
      --config.input.folder=TRAIN_DIR [--config.total_steps=N --config.batch_size=B ...]

Rerunning the same command resumes from the latest checkpoint in DIR. Multi-host
(docs/training.md): `--distributed` (Cloud TPU, Slurm, Open MPI: detected), or
`--coordinator_address HOST:PORT --num_processes P --process_id I` (defaults from
$LLIC_COORDINATOR_ADDRESS, $LLIC_NUM_PROCESSES, $LLIC_PROCESS_ID).

Exit status: 0 done; 1 bad config or input, or stopped by non-finite steps (one line on
stderr); 143 preempted (SIGTERM) after saving a checkpoint.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Training config: FILE.py[:ARG].", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (checkpoints, logs).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize (multi-host)."
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", os.environ.get("LLIC_COORDINATOR_ADDRESS"),
    "Process 0's HOST:PORT (implies --distributed).",
)  # fmt: skip
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Number of processes (with --coordinator_address)."
)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0…P-1.")
flags.mark_flags_as_required(["config", "workdir"])

PREEMPTED_EXIT_STATUS = 143  # 128 + SIGTERM, after the checkpoint is saved


def _env(name: str):
    value = os.environ.get(name)
    return int(value) if value else None


def _parse_flags(argv):
    """Parses the flags; a bad flag or config ends in one line on stderr (status 1)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:  # config_flags puts the config's traceback in the message
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        message = lines[-1] if lines else str(e)
    except (AttributeError, KeyError) as e:  # an override of a field that does not exist
        name = str(e).strip("\"'")
        message = f"no config field '{name}'"
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax is chatty at INFO
    from llic_jax import sharding

    coordinator = _COORDINATOR.value
    if _DISTRIBUTED.value or coordinator:
        sharding.initialize_distributed(
            coordinator,
            _NUM_PROCESSES.value or _env("LLIC_NUM_PROCESSES"),
            _PROCESS_ID.value
            if _PROCESS_ID.value is not None
            else _env("LLIC_PROCESS_ID"),
        )
    from llic_jax import data
    from train import train_lib

    data.import_tensorflow()  # hides the GPUs from TensorFlow before it can claim them
    try:
        result = train_lib.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except (ValueError, train_lib.NonFiniteError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    if result["status"] == "preempted":
        sys.exit(PREEMPTED_EXIT_STATUS)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
