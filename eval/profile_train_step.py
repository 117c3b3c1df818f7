"""Where a training step spends its time: the top operations of a profiled step, as a table.

  python -m eval.profile_train_step --model llic-elic-compact --models 4 --batch 16 --patch 128

Runs the step of `train/lambda_sweep.py` (`--models` λ side by side, vmapped; 1 = a plain
single-model step) on random images, compiles it, then records `--steps` steps with
`jax.profiler` and sums the recorded events by name. On a GPU the device's kernels and XLA
ops are listed (per profiler thread: "XLA Ops", streams); on CPU the host's XLA op events.
Times are totals over the recorded steps, in ms, and as a share of the device busy time of
that thread. `--trace-dir` keeps the trace for TensorBoard's or Perfetto's viewer.
"""

import argparse
import collections
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import llic_jax
from train.lambda_sweep import init_adam, init_models, make_sweep_step

# Host-side wrappers around the real work: never the answer to "where does the time go".
_WRAPPERS = ("ThunkExecutor", "TfrtCpuExecutable", "PjitFunction", "Execute")


def summarise_trace(trace_file: Path, top: int) -> list[tuple[str, str, float, float]]:
    """(thread, event, total ms, share of the thread's time) of the heaviest events."""
    with gzip.open(trace_file) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    processes, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    on_device = any(name.startswith("/device:") for name in processes.values())
    totals, per_thread = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") != "X":
            continue
        process = processes.get(e["pid"], "")
        name = e["name"]
        if on_device and not process.startswith("/device:"):
            continue
        if not on_device and (name.startswith("$") or name.startswith(_WRAPPERS)):
            continue  # Python frames and executor wrappers
        thread = f"{process} {threads.get((e['pid'], e.get('tid')), '')}".strip()
        totals[(thread, name)] += e.get("dur", 0) / 1e3
        per_thread[thread] += e.get("dur", 0) / 1e3
    return [
        (thread, name, ms, ms / per_thread[thread])
        for (thread, name), ms in totals.most_common(top)
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="llic-elic-compact")
    parser.add_argument("--models", type=int, default=1, help="λ trained side by side")
    parser.add_argument("--batch", type=int, default=16, help="crops per model")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--trace-dir", type=Path, help="keep the trace here")
    args = parser.parse_args(argv)

    model = llic_jax.create_model(args.model)
    params = init_models(model, jax.random.key(0), args.models)
    state = (params, init_adam(params))
    size = (32, args.patch + 32, args.patch + 32, 3)
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, size, np.uint8))
    lmbdas = jnp.geomspace(0.0035, 0.025, args.models).astype(jnp.float32)
    step = make_sweep_step(model, 1.0, args.batch, args.patch)

    start = time.perf_counter()
    state, metrics = step(state, images, jax.random.key(1), lmbdas, 1e-4)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    times = []
    for i in range(3):  # warm, untraced: the step time without the profiler's overhead
        start = time.perf_counter()
        state, metrics = step(state, images, jax.random.key(2 + i), lmbdas, 1e-4)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)

    trace_dir = args.trace_dir or Path(tempfile.mkdtemp(prefix="llic_profile_"))
    with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
        for i in range(args.steps):
            state, metrics = step(state, images, jax.random.key(10 + i), lmbdas, 1e-4)
            jax.block_until_ready(metrics)
    trace_file = sorted(trace_dir.rglob("perfetto_trace.json.gz"))[-1]

    device = jax.devices()[0]
    print(f"{device.platform} {device.device_kind}: {args.model} × {args.models} model(s), "
          f"{args.batch}×{args.patch}² crops each; compile {compile_s:.1f} s, step "
          f"{statistics.median(times) * 1e3:.1f} ms (median of 3, unprofiled)")  # fmt: skip
    print(f"top events over {args.steps} profiled steps (trace: {trace_file})")
    print(f"{'ms':>10} {'share':>6}  thread | event")
    for thread, name, ms, share in summarise_trace(trace_file, args.top):
        print(f"{ms:10.1f} {share:6.1%}  {thread} | {name[:110]}")


if __name__ == "__main__":
    main()
