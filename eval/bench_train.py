"""Training throughput: compile time, step time, images/s and peak memory of a train step.

  python -m eval.bench_train --model llic-elic-compact --batch 8 --patch 256

Times the jitted step of `train/single_device.py` (forward, rate–distortion loss,
gradients, gradient clipping, Adam update) on random inputs: the first call (trace +
compile + one step) is reported as compile time, then `--steps` calls are timed, each
waited for; the table shows the median step. Peak RSS is the process's resident-memory
high-water mark (host memory: on CPU that includes the step's buffers; on a GPU see the
device line instead). The sharded trainer's step will be benchmarked here too.
"""

import argparse
import resource
import statistics
import time

import jax
import numpy as np
import optax

import llic_jax
from train.single_device import make_train_step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="llic-elic-compact")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--lmbda", type=float, default=0.013)
    args = parser.parse_args(argv)
    if args.patch % 64:
        parser.error("--patch must be a multiple of 64")

    model = llic_jax.create_model(args.model)
    params = jax.jit(lambda k: llic_jax.init(model, k, (64, 64)))(jax.random.key(0))
    params = params["params"]
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-4))
    state = (params, optimizer.init(params))
    step = make_train_step(model, optimizer, args.lmbda)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, args.patch, args.patch, 3), np.float32)

    start = time.perf_counter()
    state, metrics = step(state, x, jax.random.key(0))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    times = []
    for i in range(args.steps):
        start = time.perf_counter()
        state, metrics = step(state, x, jax.random.key(i + 1))
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n_params = sum(p.size for p in jax.tree.leaves(params))

    device = jax.devices()[0]
    print(f"{args.model} ({n_params / 1e6:.2f} M params), batch {args.batch}, "
          f"{args.patch}² crops, on {device.platform} ({device.device_kind}, "
          f"{jax.device_count()} device(s) visible, step on one)")  # fmt: skip
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
