"""Where a training step spends its time: the top operations of a profiled step, as tables.

  python -m eval.profile_train_step --model llic-elic-compact --models 4 --batch 16 --patch 128
  python -m eval.profile_train_step --data .data/bsds300 --downscale 1 --batch 16 --patch 256

Runs the step of `train/lambda_sweep.py` (`--models` λ side by side, vmapped; 1 = a plain
single-model step), compiles it, then records `--steps` steps with `jax.profiler` and sums
the recorded events by name. On a GPU the device's kernels and XLA ops are listed (per
profiler thread: "XLA Ops", streams); on CPU the host's XLA op events. Times are totals over
the recorded steps, in ms, and as a share of the busy time of that thread.

A second table sums the same time by model part and pass: each XLA operation is traced back
to the Flax module it came from through the `op_name` of the compiled HLO (e.g. `g_s/STB/
DepthRB`, the repeated blocks' indices dropped) and to the forward pass (`jvp`), the backward
(`transpose`) or neither (crops, optimizer). XLA keeps one copy of a jitted sub-function
called with the same shapes, named after its first caller (e.g. the `jit(fft)` inside
`depthwise_conv`: every SCST's FFTs read as g_a's), so trust block kinds over positions
for such operations.

With `--data` (and `train.lambda_sweep`'s `--downscale`, `--clip`) the step sees the same
argument shapes as a `train.lambda_sweep` run on that folder, so with JAX's persistent
compilation cache (`JAX_COMPILATION_CACHE_DIR`) one of the two compiles and the other
loads it (train/gpu_lease.sh's PROFILE=1); without, random images of `--patch` + 32 px.
`--trace-dir` keeps the trace for TensorBoard's or Perfetto's viewer, and the compiled
step's HLO (`step.hlo.txt`) whose instructions its events name.
"""

import argparse
import collections
import gzip
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import llic_jax
from train.lambda_sweep import (
    init_adam,
    init_models,
    learning_rate,
    make_sweep_step,
    training_images,
)

# Host-side wrappers around the real work: never the answer to "where does the time go".
_WRAPPERS = ("ThunkExecutor", "TfrtCpuExecutable", "PjitFunction", "Execute")


# An HLO instruction line: `[ROOT] %name = <shape> opcode(operands), ..., metadata={op_name="…" …}`.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%(\S+) = .*? ([\w-]+)\(")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%(\S+) \(.*\{$")
_OP_NAME = re.compile(r'metadata=\{[^}]*?op_name="([^"]*)"')
_CALLEE = re.compile(r"(?:calls|to_apply)=%([\w.\-]+)")
_OPERAND = re.compile(r"%([\w.\-]+)")
# Instructions that only call other computations: their events enclose their callees' events.
_CONTAINERS = {"call", "while", "conditional", "async-start", "async-done"}


def hlo_op_names(hlo_text: str) -> dict[str, str | None]:
    """Instruction name → the `op_name` it was lowered from ("" if none; None: a container).

    Where the compiler left an instruction unnamed (layout changes, the weight gradients'
    convolutions on CPU), it takes the first name found in the computation it calls (a
    weight's layout change is named after the parameter: `state[0]['g_a']…`), else that of
    its first operand that has one, up to three steps back.
    """
    names, callee, operands, first_in = {}, {}, {}, {}
    computation = None
    for line in hlo_text.splitlines():
        if match := _COMPUTATION.match(line):
            computation = match.group(1)
            continue
        if not (match := _INSTRUCTION.match(line)):
            continue
        name, opcode = match.groups()
        op_name = _OP_NAME.search(line)
        names[name] = (
            None if opcode in _CONTAINERS else op_name.group(1) if op_name else ""
        )
        if op_name:
            first_in.setdefault(computation, op_name.group(1))
        elif called := _CALLEE.search(line):
            callee[name] = called.group(1)
        if not op_name:
            operands[name] = _OPERAND.findall(line[match.end(2) :])

    def inferred(name: str, steps: int) -> str:
        if names.get(name) or steps == 0:
            return names.get(name) or ""
        if first_in.get(callee.get(name)):
            return first_in[callee[name]]
        for operand in operands.get(name, ()):
            if found := inferred(operand, steps - 1):
                return found
        return ""

    return {
        name: inferred(name, 3) if op_name == "" else op_name
        for name, op_name in names.items()
    }


def model_part(op_name: str, depth: int = 3) -> tuple[str, str]:
    """(pass, module path) of an `op_name`.

    The pass is "forward" (under `jvp`), "backward" (under `transpose`), "weights" (a
    parameter's own op_name, `state[0]['g_s']['STB_3']…`: layout changes) or "other"; the
    path keeps `depth` Flax modules below the model's method scope
    (`LLICElic.synthesis/g_s/STB_3/DepthRB_0/mul` → `g_s/STB/DepthRB`), with repeated
    blocks' indices and methods (`latent_codec.two_pass` → `latent_codec`) dropped.
    Operations outside the model (crops, loss, gradient vector, optimizer) → "(outside the
    model)", those without a name → "(unnamed)".
    """
    if not op_name:
        return "other", "(unnamed)"
    if op_name.startswith("state["):
        keys = re.findall(r"\[\\?'([^'\\]+)\\?'\]", op_name)
        return "weights", _module_path(keys[:-1], depth)  # keys[-1]: kernel, bias…
    parts = op_name.split("/")
    # Checked in this order: a backward op's name has jvp(…) inside transpose(…).
    passes = {"transpose(": "backward", "jvp(": "forward"}
    pass_ = next((p for marker, p in passes.items() if marker in op_name), "other")
    method_scope = next(
        (i for i, p in enumerate(parts) if re.fullmatch(r"[A-Za-z_]\w*\.\w+", p)), None
    )
    if method_scope is None:
        return pass_, "(outside the model)"
    # The last part is the primitive; jit(depthwise_conv), vmap(…) are transforms.
    modules = [p.split(".")[0] for p in parts[method_scope + 1 : -1] if "(" not in p]
    return pass_, _module_path(modules, depth)


def _module_path(modules: list[str], depth: int) -> str:
    names = []
    for module in modules:
        name = re.sub(r"_\d+$", "", module)
        if not names or names[-1] != name:
            names.append(name)
    return "/".join(names[:depth]) or "(model top level)"


def _instruction(event_name: str, op_names: dict[str, str | None]) -> str:
    """The HLO instruction an event names (CPU events add `.clone` to some)."""
    return event_name if event_name in op_names else event_name.removesuffix(".clone")


def read_trace(trace_file: Path) -> tuple[list[dict], dict, dict]:
    """(complete events, process names, thread names) of a gzipped perfetto trace."""
    with gzip.open(trace_file) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    processes, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    return [e for e in events if e.get("ph") == "X"], processes, threads


def summarise_trace(
    trace: tuple[list[dict], dict, dict],
    top: int,
    op_names: dict[str, str | None] | None = None,
) -> list[tuple[str, str, float, float]]:
    """(thread, event, total ms, share of the thread's time) of the heaviest events.

    `trace` as `read_trace` returns it. With the step's `op_names`, container instructions
    (CPU `call`s around each parallel task) are left out: their time is their callees'.
    """
    op_names = op_names or {}
    events, processes, threads = trace
    on_device = any(name.startswith("/device:") for name in processes.values())
    totals, per_thread = collections.Counter(), collections.Counter()
    for e in events:
        process = processes.get(e["pid"], "")
        name = e["name"]
        if on_device and not process.startswith("/device:"):
            continue
        if not on_device and (name.startswith("$") or name.startswith(_WRAPPERS)):
            continue  # Python frames and executor wrappers
        instruction = _instruction(name, op_names)
        if instruction in op_names and op_names[instruction] is None:
            continue  # a container
        thread = f"{process} {threads.get((e['pid'], e.get('tid')), '')}".strip()
        totals[(thread, name)] += e.get("dur", 0) / 1e3
        per_thread[thread] += e.get("dur", 0) / 1e3
    return [
        (thread, name, ms, ms / per_thread[thread])
        for (thread, name), ms in totals.most_common(top)
    ]


def time_by_model_part(
    trace: tuple[list[dict], dict, dict], op_names: dict[str, str | None], depth: int
) -> tuple[str, float, list[tuple[str, str, float]]]:
    """(timeline, its ms traced to HLO instructions, [(pass, part, ms)] heaviest first).

    `trace` as `read_trace` returns it. The timeline is the one whose events name the most
    time in HLO instructions: on a GPU its "XLA Ops" line, on CPU all host threads together
    (CPU time, more than the wall clock). Container instructions (call, while) are left
    out, their callees counted instead.
    """
    events, processes, threads = trace
    by_timeline = collections.defaultdict(collections.Counter)
    for e in events:
        name = _instruction(e["name"], op_names)
        if op_names.get(name) is None:
            continue  # not an HLO instruction, or a container
        process = processes.get(e["pid"], "")
        # A device's ops lie on one timeline ("XLA Ops"; its streams name kernels instead);
        # a CPU's run on a pool of host threads, so those add up (to CPU time).
        timeline = (
            f"{process} {threads.get((e['pid'], e.get('tid')), '')}".strip()
            if process.startswith("/device:")
            else f"{process} (all threads)"
        )
        by_timeline[timeline][model_part(op_names[name], depth)] += e.get("dur", 0) / 1e3
    if not by_timeline:
        return "", 0.0, []
    timeline = max(by_timeline, key=lambda t: sum(by_timeline[t].values()))
    parts = by_timeline[timeline]
    return (
        timeline,
        sum(parts.values()),
        [(p, m, ms) for (p, m), ms in parts.most_common()],
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="llic-elic-compact")
    parser.add_argument("--models", type=int, default=1, help="λ trained side by side")
    parser.add_argument("--batch", type=int, default=16, help="crops per model")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--data", type=Path, help="crop from this image folder's photos")
    parser.add_argument(
        "--downscale", type=int, default=2, help="as train.lambda_sweep's"
    )
    parser.add_argument("--clip", type=float, default=1.0, help="as train.lambda_sweep's")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--depth", type=int, default=3, help="module levels per model part"
    )
    parser.add_argument("--trace-dir", type=Path, help="keep the trace here")
    args = parser.parse_args(argv)

    if args.data is not None:
        try:
            pixels = training_images(args.data, args.downscale, args.patch)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
    else:
        size = (32, args.patch + 32, args.patch + 32, 3)
        pixels = np.random.default_rng(0).integers(0, 256, size, np.uint8)
    images = jax.device_put(pixels)
    model = llic_jax.create_model(args.model)
    params = init_models(model, jax.random.key(0), args.models)
    state = (params, init_adam(params))
    lmbdas = jnp.geomspace(0.0035, 0.025, args.models).astype(jnp.float32)
    # The learning rate and keys as train.lambda_sweep makes them: the same argument types.
    lr = learning_rate(0, 1000, 1e-4, 100, 0.5)
    key = jax.random.key(1)

    start = time.perf_counter()
    step = make_sweep_step(model, args.clip, args.batch, args.patch)
    step = step.lower(state, images, key, lmbdas, lr).compile()
    hlo_text = step.as_text()
    state, metrics = step(state, images, key, lmbdas, lr)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    times = []
    for i in range(3):  # warm, untraced: the step time without the profiler's overhead
        start = time.perf_counter()
        state, metrics = step(state, images, jax.random.fold_in(key, 2 + i), lmbdas, lr)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)

    trace_dir = args.trace_dir or Path(tempfile.mkdtemp(prefix="llic_profile_"))
    trace_dir.mkdir(parents=True, exist_ok=True)
    (trace_dir / "step.hlo.txt").write_text(hlo_text)  # the names its events use
    with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
        for i in range(args.steps):
            state, metrics = step(
                state, images, jax.random.fold_in(key, 10 + i), lmbdas, lr
            )
            jax.block_until_ready(metrics)
    trace_file = sorted(trace_dir.rglob("perfetto_trace.json.gz"))[-1]

    device = jax.devices()[0]
    source = f"{len(pixels)} images {pixels.shape[1:3]}" if args.data else "random images"
    print(f"{device.platform} {device.device_kind}: {args.model} × {args.models} model(s), "
          f"{args.batch}×{args.patch}² crops each from {source}; compile + first step "
          f"{compile_s:.1f} s, step {statistics.median(times) * 1e3:.1f} ms (median of 3, "
          "unprofiled)")  # fmt: skip
    print(f"top events over {args.steps} profiled steps (trace: {trace_file})")
    print(f"{'ms':>10} {'share':>6}  thread | event")
    op_names, trace = hlo_op_names(hlo_text), read_trace(trace_file)
    for thread, name, ms, share in summarise_trace(trace, args.top, op_names):
        print(f"{ms:10.1f} {share:6.1%}  {thread} | {name[:110]}")

    thread, traced_ms, parts = time_by_model_part(trace, op_names, args.depth)
    print(f"\nby model part and pass ({thread}: {traced_ms:.1f} ms traced to HLO "
          f"instructions, per step {traced_ms / args.steps:.1f} ms)")  # fmt: skip
    print(f"{'ms/step':>9} {'share':>6}  {'pass':<8} part")
    for pass_, part, ms in parts[: args.top]:
        print(f"{ms / args.steps:9.2f} {ms / traced_ms:6.1%}  {pass_:<8} {part}")


if __name__ == "__main__":
    main()
