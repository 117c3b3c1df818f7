"""Runs 3 train steps in a fresh process (the device count is fixed at JAX's start).

  python tests/train/parallel_worker.py PARAMS.msgpack OUT.npz modes
      one process (XLA_FLAGS=--xla_force_host_platform_device_count=8): the step on the
      8-device mesh (jit) and with pmap; saves "jit", "pmap" (the test runs the step on
      one device itself, with `train`, meanwhile).
  python tests/train/parallel_worker.py PARAMS.msgpack OUT.npz multi PORT PROCESS_ID
      one of 2 processes (4 devices each) joined by jax.distributed on 127.0.0.1:PORT:
      the jit-mesh step, this process feeding its half of the batch; saves "jit".

The initial parameters come from PARAMS.msgpack (written by the test: the model's own
initialisation, whose Adam updates are well conditioned), the batches are a fixed
function of the step, so every run starts from the same state and sees the same data.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

# tests/conftest.py's small options: in a full run its eager init is compiled already.
MODEL = ("bmshj2018-hyperprior", {"N": 16, "M": 24})
GLOBAL_BATCH, PATCH, STEPS = 8, 64, 3


def global_batch(step: int):
    import numpy as np

    rng = np.random.default_rng(step)
    return rng.random((GLOBAL_BATCH, PATCH, PATCH, 3), dtype=np.float32)


def train(params, parallel):
    """(params, losses): numpy, after STEPS steps of the train step under `parallel`."""
    import numpy as np
    import optax

    import llic_jax
    from train import steps

    model = llic_jax.create_model(MODEL[0], **MODEL[1])
    # Adam with a large epsilon: plain Adam turns the rounding noise of near-zero
    # gradients (summation order differs per layout) into ±lr steps; this one stays
    # proportional to the gradient there, so params can be compared to float tolerance.
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.scale_by_adam(eps=1e-3))
    schedule = steps.learning_rate_schedule((1e-3, 1e-4), (0.5,), STEPS)
    fn = steps.make_train_step(model, optimizer, metric="mse", global_batch=GLOBAL_BATCH,
                               seed=0)  # fmt: skip
    step_fn = parallel.compile(fn)
    state = parallel.put_state({"params": params, "opt_state": optimizer.init(params)})
    ids = parallel.local_ids(GLOBAL_BATCH)
    losses = []
    for step in range(STEPS):
        rows = global_batch(step)[ids]  # this process's rows
        scalars = parallel.put_scalars(
            {"step": step, "lr": schedule(step), "lmbda": 0.01}
        )
        state, metrics = step_fn(state, parallel.put_batch(rows), parallel.put_batch(ids),
                                 scalars)  # fmt: skip
        metrics = parallel.get_metrics(metrics)
        assert metrics["finite"]
        losses.append(metrics["loss"])
    return parallel.host(state)["params"], np.array(losses)


def main(params_path: str, out: str, mode: str, *args: str) -> None:
    import flax.serialization
    import jax
    import numpy as np

    from llic_jax import sharding

    if mode == "multi":
        port, process_id = args
        sharding.initialize_distributed(f"127.0.0.1:{port}", 2, int(process_id))
    params_in = flax.serialization.msgpack_restore(Path(params_path).read_bytes())
    if mode == "modes":
        runs = {
            "jit": sharding.DataParallel("jit"),
            "pmap": sharding.DataParallel("pmap"),
        }
    else:
        assert jax.process_count() == 2 and jax.device_count() == 8
        runs = {"jit": sharding.DataParallel("jit")}
    results = {}
    for name, parallel in runs.items():
        params, losses = train(params_in, parallel)
        results.update(
            {f"{name}/{i}": leaf for i, leaf in enumerate(jax.tree.leaves(params))}
        )
        results[f"loss/{name}"] = losses
    np.savez(out, **results)
    if mode == "multi":
        jax.distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
