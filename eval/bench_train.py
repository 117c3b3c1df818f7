"""Training throughput: compile time, step time, images/s and peak memory of a train step.

  python -m eval.bench_train --model llic-elic-compact --batch 8 --patch 256
  python -m eval.bench_train --model llic-elic --batch 32 --patch 256 --parallel pmap

Times the step of the sharded trainer (train/steps.py, compiled by llic_jax.sharding as
train/train_lib.py does: forward per example, rate–distortion loss, gradients, clipping,
Adam, NaN guard) over every visible device, `--batch` being the global batch, on random
inputs. The first call (trace + compile + one step) is reported as compile time, then
`--steps` calls are timed, each waited for; the table shows the median step. Peak RSS is
the process's resident-memory high-water mark (host memory: on CPU that includes the
step's buffers); on a GPU the device's peak is shown too.
"""

import argparse
import resource
import statistics
import time

import jax
import numpy as np

import llic_jax
from llic_jax import sharding
from train import steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="llic-elic-compact")
    parser.add_argument("--batch", type=int, default=8, help="global batch")
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--lmbda", type=float, default=0.013)
    parser.add_argument("--parallel", choices=sharding.MODES, default="jit")
    args = parser.parse_args(argv)
    if args.patch % 64:
        parser.error("--patch must be a multiple of 64")
    parallel = sharding.DataParallel(args.parallel)
    if args.batch % parallel.num_devices:
        parser.error(f"--batch must be a multiple of the {parallel.num_devices} devices")

    model = llic_jax.create_model(args.model)
    params = llic_jax.init(model, jax.random.key(0), (64, 64))["params"]
    optimizer = steps.make_optimizer(1.0)
    fn = steps.make_train_step(model, optimizer, metric="mse", global_batch=args.batch,
                               seed=0)  # fmt: skip
    step = parallel.compile(fn)
    state = parallel.put_state({"params": params, "opt_state": optimizer.init(params)})
    local = parallel.local_batch_size(args.batch)
    x = np.random.default_rng(0).random((local, args.patch, args.patch, 3), np.float32)
    batch, ids = parallel.put_batch(x), parallel.put_batch(parallel.local_ids(args.batch))

    start = time.perf_counter()
    scalars = lambda i: parallel.put_scalars({"step": i, "lr": 1e-4, "lmbda": args.lmbda})
    state, metrics = step(state, batch, ids, scalars(0))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        state, metrics = step(state, batch, ids, scalars(i + 1))
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_params = sum(p.size for p in jax.tree.leaves(params))

    device = jax.devices()[0]
    print(f"{args.model} ({n_params / 1e6:.2f} M params), batch {args.batch}, "
          f"{args.patch}² crops, on {device.platform} ({device.device_kind}), "
          f"{parallel.num_devices} device(s), {args.parallel}")  # fmt: skip
    print(f"{'compile + 1st step':<20} {compile_s:8.1f} s")
    print(f"{'step (median)':<20} {step_s:8.3f} s   ({args.steps} steps, "
          f"min {min(times):.3f}, max {max(times):.3f})")  # fmt: skip
    print(f"{'images/s':<20} {args.batch / step_s:8.2f}")
    print(f"{'peak RSS':<20} {peak_mib:8.0f} MiB")
    if device.platform == "gpu":
        stats = device.memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        if peak:
            print(f"{'peak device memory':<20} {peak / 2**20:8.0f} MiB")


if __name__ == "__main__":
    main()
