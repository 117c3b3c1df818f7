"""Data parallelism over every device of every host: `jax.jit` on a mesh, or `jax.pmap`.

One mesh axis, "data", spans all devices (`jax.devices()`, every process). The training
state is replicated; a batch is split along its first axis. Each process feeds only its
own rows (`jax.make_array_from_process_local_data`): with P processes and a global batch
B, process p holds rows [p·B/P, (p+1)·B/P) of the global batch.

- `mode="jit"` (the default): one `jax.jit` with `NamedSharding`s, state donated. XLA
  inserts the gradient all-reduce; the loss of a global array is its global mean.
- `mode="pmap"`: `jax.pmap` over each process's local devices, the state with a leading
  device axis; the step function reduces with `lax.psum` over the axis "data".

Either way the step functions of train/steps.py reduce *sums* over the examples and
divide by the global batch size, so losses, metrics and gradients are per-example means
over the global batch, whatever the split.

Multi-host: call `initialize_distributed` first thing (before any other JAX call); on
Cloud TPU, Slurm and Open MPI it needs no arguments. On CPU (tests: several processes
on one machine) it selects gloo collectives.
"""

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "AXIS",
    "MODES",
    "DataParallel",
    "any_process",
    "initialize_distributed",
]

AXIS = "data"
MODES = ("jit", "pmap")


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    cpu_collectives: str = "gloo",
) -> None:
    """`jax.distributed.initialize`, with gloo collectives when the backend is the CPU.

    Must run before anything else touches JAX's backends. All three arguments None:
    JAX detects the cluster (Cloud TPU, Slurm, Open MPI, Kubernetes).
    """
    # Cross-process collectives of the CPU backend (off by default in jax 0.5; other
    # backends ignore the option; later versions may lack it).
    with contextlib.suppress(AttributeError, ValueError, KeyError):
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )


def any_process(flag: bool, mesh: Mesh | None = None) -> bool:
    """True on every process if `flag` is True on any (a collective: all must call)."""
    if jax.process_count() == 1:
        return bool(flag)
    mesh = mesh or Mesh(np.asarray(jax.devices()), (AXIS,))
    per_device = np.full((len(mesh.local_devices),), int(bool(flag)), np.int32)
    votes = jax.make_array_from_process_local_data(
        NamedSharding(mesh, PartitionSpec(AXIS)), per_device
    )
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, PartitionSpec()))(votes)
    return bool(np.asarray(total) > 0)


class DataParallel:
    """Places state and batches and compiles step functions for one parallel mode.

    A step function has the signature `fn(state, batch, ids, scalars, axis_name)`:
    `batch` [b, ...] and `ids` [b] (the examples' indices in the global batch) are split
    over the devices, `state` is replicated, `scalars` a dict of replicated scalars; it
    returns `(state, metrics)`, metrics replicated scalars. `axis_name` is None under
    jit and "data" under pmap (the function psums its per-device sums).

    Attributes:
      mode: "jit" or "pmap".
      mesh: the 1-D mesh over `devices` (axis "data").
      replicated, batch_sharding: the `NamedSharding`s of state and batches.
    """

    def __init__(self, mode: str = "jit", devices: Sequence[jax.Device] | None = None):
        if mode not in MODES:
            raise ValueError(f"parallel: {mode!r} is not one of {MODES}")
        self.mode = mode
        self.devices = list(devices if devices is not None else jax.devices())
        self.mesh = Mesh(np.asarray(self.devices), (AXIS,))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batch_sharding = NamedSharding(self.mesh, PartitionSpec(AXIS))
        self.local_devices = [
            d for d in self.devices if d.process_index == jax.process_index()
        ]
        if mode == "pmap" and len(self.local_devices) != jax.local_device_count():
            raise ValueError("parallel='pmap' runs on all devices (no device subset)")

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    def local_batch_size(self, global_batch: int) -> int:
        """Rows of the global batch this process feeds.

        Raises:
          ValueError: if the batch does not split evenly over the devices.
        """
        if global_batch % self.num_devices:
            raise ValueError(
                f"batch size {global_batch} is not a multiple of the {self.num_devices} "
                "devices"
            )
        return global_batch * len(self.local_devices) // self.num_devices

    def local_ids(self, global_batch: int) -> np.ndarray:
        """int32 [local batch]: this process's rows of the global batch."""
        local = self.local_batch_size(global_batch)
        return (jax.process_index() * local + np.arange(local)).astype(np.int32)

    def compile(self, fn: Callable, *, donate: bool = True) -> Callable:
        """The step `fn` compiled for this mode: `(state, batch, ids, scalars) → …`."""
        if self.mode == "jit":
            return jax.jit(
                lambda state, batch, ids, scalars: fn(state, batch, ids, scalars, None),
                in_shardings=(
                    self.replicated,
                    self.batch_sharding,
                    self.batch_sharding,
                    self.replicated,
                ),
                out_shardings=(self.replicated, self.replicated),
                donate_argnums=(0,) if donate else (),
            )
        return jax.pmap(
            lambda state, batch, ids, scalars: fn(state, batch, ids, scalars, AXIS),
            axis_name=AXIS,
            in_axes=(0, 0, 0, None),
            donate_argnums=(0,) if donate else (),
        )

    def put_state(self, tree: Any) -> Any:
        """A state (host arrays, or replicated jax arrays) placed for the step."""
        if self.mode == "jit":
            return jax.tree.map(self._replicate, tree)
        n = len(self.local_devices)
        return jax.tree.map(lambda x: np.broadcast_to(_host(x), (n, *np.shape(x))), tree)

    def put_batch(self, local: np.ndarray) -> Any:
        """This process's rows [b_local, ...] → the step's batch argument."""
        if self.mode == "jit":
            return jax.make_array_from_process_local_data(self.batch_sharding, local)
        n = len(self.local_devices)
        return np.reshape(local, (n, local.shape[0] // n, *local.shape[1:]))

    def put_scalars(self, scalars: dict) -> Any:
        """Host scalars (step, lr, λ …) as the step's replicated scalar argument."""
        scalars = {k: np.asarray(v, np.int32 if k == "step" else np.float32)
                   for k, v in scalars.items()}  # fmt: skip
        if self.mode == "jit":
            return {k: self._replicate(v) for k, v in scalars.items()}
        return scalars

    def get_state(self, state: Any) -> Any:
        """The step's state as replicated global arrays (for checkpoints)."""
        if self.mode == "jit":
            return state
        return jax.tree.map(lambda x: self._replicate(np.array(x[0], copy=True)), state)

    def get_metrics(self, metrics: Any) -> dict:
        """Replicated scalar metrics → {name: numpy scalar} on the host."""
        if self.mode == "pmap":
            metrics = jax.tree.map(lambda x: x[0], metrics)
        return jax.tree.map(lambda x: np.array(x, copy=True), metrics)

    def host(self, tree: Any) -> Any:
        """Numpy copies of a replicated state (either mode's layout)."""
        if self.mode == "pmap":
            return jax.tree.map(lambda x: np.array(x[0], copy=True), tree)
        return jax.tree.map(_host, tree)

    def _replicate(self, x: Any) -> jax.Array:
        if isinstance(x, jax.Array) and x.sharding == self.replicated:
            return x
        x = _host(x)
        return jax.make_array_from_callback(
            x.shape, self.replicated, lambda index: x[index]
        )


def _host(x: Any) -> np.ndarray:
    """A numpy copy of a host array or a (fully replicated or addressable) jax array.

    A copy, not a view: on CPU a view would pin the device buffer, which the next step
    donates.
    """
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = x.addressable_data(0)
    return np.array(x, copy=True)
