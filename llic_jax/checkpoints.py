"""Training checkpoints: an orbax `CheckpointManager` under `WORKDIR/checkpoints`.

Each checkpoint is a step folder with three items: `params` and `opt_state` (pytrees of
arrays, orbax's standard format, sharded writes on pods) and `meta` (JSON: the step's
counters). The last `keep` checkpoints are kept. A save is asynchronous (arrays are
copied to the host, then written in the background) and atomic: a step folder appears
only once complete, so a run killed mid-save restarts from the previous checkpoint.

Restoring takes the *abstract* state (shapes, dtypes and target shardings, e.g. from
`jax.eval_shape` of the initialiser): orbax reads each array straight into the target
sharding, so a run resumes on any number of devices or hosts.

A state with a non-finite value is never saved (`save` refuses it and returns False).
"""

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Checkpointer", "abstract_tree", "all_finite"]

ITEMS = ("params", "opt_state", "meta")


def _finite(x: Any) -> bool:
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return True
    if not isinstance(x, jax.Array):
        return bool(np.isfinite(x).all())
    # Each distinct shard once (replica 0); no compilation, no global computation.
    return all(
        np.isfinite(np.asarray(shard.data)).all()
        for shard in x.addressable_shards
        if shard.replica_id == 0
    )


def _host_copy(x: Any) -> np.ndarray:
    """A numpy copy of a replicated (or host) array.

    On the CPU backend a device buffer *is* host memory: orbax would write it through
    zero-copy numpy views from its background thread, and the train step's donation of
    the same buffer (or its deletion) waits for those views while holding the GIL that
    thread needs, a deadlock. Checkpoints of CPU runs therefore save host copies (the
    state is replicated: every process holds all of it; orbax writes it once).
    """
    if isinstance(x, jax.Array):
        x = x.addressable_data(0) if not x.is_fully_addressable else x
    return np.array(x, copy=True)


def all_finite(tree: Any) -> bool:
    """True if every floating-point value of `tree` is finite.

    A collective in multi-host runs (all processes call it): each checks its own
    shards on the host, then they agree.
    """
    from llic_jax.sharding import any_process

    return not any_process(not all(_finite(x) for x in jax.tree.leaves(tree)))


def _orbax_compat() -> None:
    """Lets orbax-checkpoint 0.11.24 save on jax 0.5.3.

    That orbax records array sizes with `jax.monitoring.record_scalar`, which jax
    0.5.3 does not have (later versions do); a no-op stands in for it there.
    """
    if not hasattr(jax.monitoring, "record_scalar"):
        jax.monitoring.record_scalar = lambda *args, **kwargs: None


def abstract_tree(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """`jax.ShapeDtypeStruct`s of `tree` (arrays or abstract values) with `sharding`."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding), tree
    )


class Checkpointer:
    """Saves and restores `{"params", "opt_state"}` states with a JSON `meta` dict.

    All processes call every method (orbax coordinates the hosts; the primary host
    writes the metadata).

    Args:
      directory: the checkpoint folder (created unless `read_only`).
      keep: how many of the latest checkpoints to keep.
      async_save: write in a background thread (`wait` or `close` to finish).
      read_only: open an existing folder without creating or changing anything.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        keep: int = 3,
        async_save: bool = True,
        read_only: bool = False,
    ):
        import orbax.checkpoint as ocp

        _orbax_compat()
        self._ocp = ocp
        self.directory = Path(directory).absolute()
        # Read-only: nothing is created, saved or deleted (orbax's own read_only option
        # logs warnings on every use).
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else keep,
            create=not read_only,
            enable_async_checkpointing=async_save and not read_only,
        )
        self._read_only = read_only
        self._manager = ocp.CheckpointManager(
            self.directory, item_names=ITEMS, options=options
        )

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, None if there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: dict, meta: dict | None = None) -> bool:
        """Saves `state` (replicated or sharded jax arrays) as checkpoint `step`.

        Returns:
          False, saving nothing, if `state` holds a non-finite value or `step` is
          already saved; True otherwise.
        """
        if self._read_only:
            raise ValueError(f"{self.directory}: opened read-only")
        if step in self._manager.all_steps():
            return False
        if jax.default_backend() == "cpu":
            state = jax.tree.map(_host_copy, state)
        if not all_finite(state):
            logging.warning("step %d: non-finite state, checkpoint not saved", step)
            return False
        args = self._ocp.args
        self._manager.save(
            step,
            args=args.Composite(
                params=args.StandardSave(state["params"]),
                opt_state=args.StandardSave(state["opt_state"]),
                meta=args.JsonSave({"step": int(step), **(meta or {})}),
            ),
            force=True,
        )
        return True

    def restore(self, abstract_state: dict, step: int | None = None) -> tuple[dict, dict]:
        """(state, meta) of checkpoint `step` (default: the latest).

        The arrays are laid out as `abstract_state` says (see `abstract_tree`).
        """
        step = self._step(step)
        args = self._ocp.args
        restored = self._manager.restore(
            step,
            args=args.Composite(
                params=args.StandardRestore(abstract_state["params"]),
                opt_state=args.StandardRestore(abstract_state["opt_state"]),
                meta=args.JsonRestore(),
            ),
        )
        state = {"params": restored["params"], "opt_state": restored["opt_state"]}
        return state, dict(restored["meta"])

    def restore_params(
        self, abstract_params: Any, step: int | None = None
    ) -> tuple[Any, int]:
        """(params, step) of checkpoint `step` (default: the latest) only."""
        step = self._step(step)
        args = self._ocp.args
        restored = self._manager.restore(
            step, args=args.Composite(params=args.StandardRestore(abstract_params))
        )
        return restored["params"], step

    def reached_preemption(self, step: int) -> bool:
        """True at the step where all hosts agreed to save after a preemption notice.

        Multi-host runs only (JAX's preemption sync service, started by
        `jax.distributed.initialize`); every process must call it at every step.
        """
        return self._manager.reached_preemption(step)

    def wait(self) -> None:
        """Blocks until a background save has finished."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._manager.wait_until_finished()
        self._manager.close()

    def _step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: no checkpoint")
        return step
