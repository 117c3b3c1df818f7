"""Sharded training: `train_and_evaluate(config, workdir)` (configs/*.py, train/main.py).

Data parallel over every device of every host (llic_jax.sharding: `jax.jit` on a mesh,
or `config.parallel = "pmap"`); each process reads its own slice of the data
(llic_jax.data). Loss `bpp + λ·MSE₂₅₅` or `bpp + λ·(1 − MS-SSIM)` (DESIGN.md §5).

Workdir:
  config.json          model config, λ, metric: what `llic export --workdir` reads
  train_config.json    the full training config of the latest start
  checkpoints/<step>/  orbax checkpoints (params, opt_state, meta), the last k kept
  tensorboard/         event files (process 0): train/*, eval/*

Restarting with the same workdir resumes from the latest checkpoint: the state, the
step, the crops (the input stream is a function of the step) and the noise (a function
of step and example) continue exactly, so the run ends as an uninterrupted one would,
on any device count. Checkpoints: every `checkpoint_every` steps, at the end, and on
preemption (SIGTERM on one host; on pods JAX's preemption sync point), then the run
exits cleanly. Non-finite steps are skipped and counted; `max_consecutive_nonfinite` of
them in a row stop the run (`NonFiniteError`) without saving: the last checkpoint stays
the last good state.
"""

import contextlib
import json
import math
import signal
import threading
import time
from pathlib import Path

import jax
import numpy as np

import llic_jax
from llic_jax import checkpoints, data, sharding
from llic_jax.losses import METRICS
from llic_jax.metrics import ms_ssim, psnr
from llic_jax.models import model_config
from train import steps

__all__ = ["NonFiniteError", "train_and_evaluate"]


class NonFiniteError(RuntimeError):
    """Too many consecutive non-finite steps; the last checkpoint is intact."""


def train_and_evaluate(config, workdir) -> dict:
    """Trains `config` in `workdir`, resuming from its latest checkpoint if any.

    Returns:
      {"step", "status": "done" | "preempted", "metrics": the last logged metrics}.

    Raises:
      ValueError: a bad config or input (one line).
      NonFiniteError: `config.max_consecutive_nonfinite` non-finite steps in a row.
    """
    # ------------------------------------------------------------------------ setup
    workdir = Path(workdir)
    is_main = jax.process_index() == 0
    parallel = sharding.DataParallel(config.parallel)
    model = llic_jax.create_model(config.model_name, **_model_options(config))
    _check_config(config, model, parallel)
    if is_main:
        _write_run_config(config, model, workdir)
    writer = _Writer(workdir / "tensorboard", enabled=is_main)
    total = config.total_steps
    sizes, size_fractions = config.input.patch_sizes, config.input.patch_boundaries
    patch_at = lambda s: steps.patch_size_at(s, sizes, size_fractions, total)

    # --------------------------------------------------------- model and train step
    optimizer = steps.make_optimizer(config.grad_clip_norm)
    schedule = steps.learning_rate_schedule(config.lr_values, config.lr_boundaries, total)
    scalars = lambda s: {"step": s, "lr": schedule(s), "lmbda": config.lmbda}

    # ------------------------------------------------------------ state: resume or init
    ckpt = checkpoints.Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
    init = lambda: _init_state(model, optimizer, config.seed)
    step, meta = 0, {}
    if ckpt.latest_step() is not None:
        abstract = checkpoints.abstract_tree(jax.eval_shape(init), parallel.replicated)
        state, meta = ckpt.restore(abstract)
        step = int(meta["step"])
        _print(is_main, f"resuming from step {step} ({ckpt.directory})")
    else:
        state = init()
    state = parallel.put_state(state)
    eval_images = _load_eval_images(config) if is_main else []

    # ------------------------------------------------------------------ training loop
    nonfinite = {"total": int(meta.get("nonfinite_total", 0)), "run": 0}
    window, logged = _Window(), {}
    ids = parallel.put_batch(parallel.local_ids(config.batch_size))
    patch = batches = pending = None
    status = "done"

    def account(done_step, metrics, fresh):
        """Host side of a finished step: NaN guard, logging (one step behind)."""
        nonlocal logged
        metrics = parallel.get_metrics(metrics)
        if metrics.pop("finite"):
            nonfinite["run"] = 0
            window.add(metrics)
        else:
            nonfinite["run"] += 1
            nonfinite["total"] += 1
            _print(
                is_main, f"step {done_step}: non-finite loss or gradient, update skipped"
            )
            if nonfinite["run"] >= config.max_consecutive_nonfinite:
                ckpt.wait()  # a save in flight is the last good state: name it
                raise NonFiniteError(
                    f"stopped at step {done_step}: {nonfinite['run']} consecutive "
                    f"non-finite steps (loss or gradient); last checkpoint: step "
                    f"{ckpt.latest_step()} in {ckpt.directory}"
                )
        if fresh:  # steps/s leave out compilation
            window.restart_clock()
        if done_step % config.log_every == 0 or done_step == total:
            logged = window.report(done_step, config, patch_at(done_step - 1), nonfinite)
            writer.scalars(done_step, {f"train/{k}": v for k, v in logged.items()})
            _print(is_main, _progress_line(done_step, total, logged))

    stop = _SigtermFlag()
    try:
        with stop:
            while step < total:
                if patch_at(step) != patch:
                    patch, fresh = patch_at(step), True
                    train_step = _compiled_step(parallel, model, config, patch)
                    batches = _train_batches(config, patch, step)
                local = next(batches)
                state, metrics = train_step(
                    state,
                    parallel.put_batch(local),
                    ids,
                    parallel.put_scalars(scalars(step)),
                )
                step += 1
                previous, pending = pending, (step, metrics, fresh)
                fresh = False
                if previous is not None:
                    account(*previous)
                preempted = ckpt.reached_preemption(step) or stop.requested
                checkpoint = step % config.checkpoint_every == 0 or step == total
                evaluate = bool(eval_images) and (
                    step % config.eval.every == 0 or step == total
                )
                if preempted or checkpoint or evaluate:
                    account(*pending)
                    pending = None
                if checkpoint or preempted:
                    meta = {"nonfinite_total": nonfinite["total"]}
                    ckpt.save(step, parallel.get_state(state), meta)
                    window.restart_clock()
                if evaluate:
                    real = step % config.eval.real_bpp_every == 0 or step == total
                    params = parallel.host(state)["params"]
                    results = _evaluate(model, params, eval_images, real=real)
                    writer.scalars(step, {f"eval/{k}": v for k, v in results.items()})
                    _print(is_main, _eval_line(step, results))
                    window.restart_clock()
                if preempted:
                    status = "preempted"
                    _print(is_main, f"preempted at step {step}: checkpoint saved, rerun "
                           "the same command to resume")  # fmt: skip
                    break
            if pending is not None:
                account(*pending)
    finally:
        ckpt.close()
        writer.close()
    return {"step": step, "status": status, "metrics": logged}


# ----------------------------------------------------------------------------- helpers


_COMPILED = {}  # compiled steps, reused by later runs in the same process (tests)


def _compiled_step(parallel, model, config, patch: int):
    """The train step for crops of side `patch`, compiled for `parallel` (memoised).

    λ, the learning rate and the step are inputs of the step, so runs that differ only
    in those (a resumed run with another λ or schedule) share one compilation.
    """
    with_ms_ssim = patch >= 161
    key = (parallel.mode, tuple(d.id for d in parallel.devices), model, config.metric,
           config.batch_size, config.seed, config.grad_clip_norm, with_ms_ssim)  # fmt: skip
    if key not in _COMPILED:
        fn = steps.make_train_step(
            model, steps.make_optimizer(config.grad_clip_norm), metric=config.metric,
            global_batch=config.batch_size, seed=config.seed, with_ms_ssim=with_ms_ssim,
        )  # fmt: skip
        _COMPILED[key] = parallel.compile(fn)
    return _COMPILED[key]


def _model_options(config) -> dict:
    """The model overrides of `config.model` that are set (placeholders are None)."""
    options = {k: v for k, v in config.model.items() if v is not None}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def _check_config(config, model, parallel) -> None:
    """Raises ValueError (one line) for settings the run cannot use."""
    if config.metric not in METRICS:
        raise ValueError(f"config.metric: {config.metric!r} is not one of {METRICS}")
    multiple = model.pad_multiple
    for size in config.input.patch_sizes:
        if size % multiple:
            raise ValueError(
                f"config.input.patch_sizes: {size} is not a multiple of {multiple} "
                f"({config.model_name} downsamples by {multiple})"
            )
        if config.metric == "ms-ssim" and size < 161:
            raise ValueError(
                f"metric ms-ssim needs crops of at least 161 pixels, not {size}"
            )
    for name in (
        "total_steps",
        "checkpoint_every",
        "log_every",
        "max_consecutive_nonfinite",
    ):
        if config[name] < 1:
            raise ValueError(f"config.{name} must be at least 1, not {config[name]}")
    if config.eval.folder and min(config.eval.every, config.eval.real_bpp_every) < 1:
        raise ValueError("config.eval.every and real_bpp_every must be at least 1")
    parallel.local_batch_size(config.batch_size)
    steps.learning_rate_schedule(
        config.lr_values, config.lr_boundaries, config.total_steps
    )
    steps.patch_size_at(0, config.input.patch_sizes, config.input.patch_boundaries,
                        config.total_steps)  # fmt: skip
    if _source(config).folder is not None:
        data.list_images(config.input.folder)  # fails early on a missing or empty folder
    if config.eval.folder:
        data.list_images(config.eval.folder)


def _source(config) -> data.Source:
    keys = ("folder", "tfds_name", "split", "data_dir")
    return data.Source.parse(
        {k: config.input[k] for k in keys if config.input[k] is not None}
    )


def _write_run_config(config, model, workdir: Path) -> None:
    """config.json (for `llic export`) and train_config.json; refuses another model."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.json"
    source = _source(config)
    run = {
        "model": model_config(model),
        "lmbda": config.lmbda,
        "metric": config.metric,
        "quality": config.get("quality"),
        "data": source.folder or f"tfds:{source.tfds_name}:{source.split}",
        "batch": config.batch_size,
        "patch": list(config.input.patch_sizes),
    }
    if path.exists():
        previous = json.loads(path.read_text()).get("model")
        if previous != run["model"]:
            raise ValueError(
                f"{workdir} holds a run of another model ({previous}); use a new workdir"
            )
    path.write_text(json.dumps(run, indent=1) + "\n")
    (workdir / "train_config.json").write_text(
        config.to_json_best_effort(indent=1) + "\n"
    )


def _init_state(model, optimizer, seed: int) -> dict:
    params = llic_jax.init(model, jax.random.key(seed), (64, 64))["params"]
    return {"params": params, "opt_state": optimizer.init(params)}


def _train_batches(config, patch: int, start_step: int):
    """This process's batches from `start_step` on (crops of side `patch`)."""
    return data.make_train_iterator(
        _source(config),
        patch_size=patch,
        batch_size=config.batch_size,
        seed=config.seed,
        start_step=start_step,
        downscale=config.input.downscale,
        small_images=config.input.small_images,
        horizontal_flip=config.input.horizontal_flip,
        vertical_flip=config.input.vertical_flip,
        shuffle_buffer=config.input.shuffle_buffer,
    )


def _load_eval_images(config) -> list:
    if not config.eval.folder:
        return []
    images = data.load_eval_images(config.eval.folder, downscale=config.eval.downscale)
    return images[: config.eval.max_images]


def _evaluate(model, params, images, *, real: bool) -> dict:
    """Means over the held-out images: estimated bpp, PSNR, MS-SSIM; real bpp if asked."""
    from llic_jax.evaluate import evaluate_model

    rows = []
    for _, img in images:
        img_hat, bits = llic_jax.reconstruct(model, {"params": params}, img)
        row = {
            "bpp_estimated": bits / (img.shape[0] * img.shape[1]),
            "psnr": psnr(img, img_hat),
        }
        if min(img.shape[:2]) >= 161:
            row["ms_ssim"] = ms_ssim(img, img_hat)
        rows.append(row)
    out = {k: float(np.mean([r[k] for r in rows if k in r])) for k in rows[0]}
    if real:
        variables = llic_jax.build_tables(model, {"params": params})
        coded = evaluate_model(model, variables, images, progress=False)["images"]
        out["bpp_real"] = float(np.mean([r["bpp"] for r in coded]))
        out["psnr_real"] = float(np.mean([r["psnr"] for r in coded]))
    return out


class _Window:
    """Means of the finite steps' metrics and the throughput since the last report."""

    def __init__(self):
        self.sums, self.count, self.timed = {}, 0, 0
        self.restart_clock()

    def restart_clock(self):
        self.start, self.timed = time.perf_counter(), 0

    def add(self, metrics: dict):
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.lr = float(metrics["lr"])  # reported as is, not averaged
        self.count += 1
        self.timed += 1

    def report(self, step: int, config, patch: int, nonfinite: dict) -> dict:
        out = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        if self.count:
            out["lr"] = self.lr
        elapsed = time.perf_counter() - self.start
        rate = self.timed / elapsed if self.timed and elapsed > 0 else 0.0
        out.update(lmbda=config.lmbda, patch_size=patch, steps_per_sec=rate,
                   images_per_sec=rate * config.batch_size,
                   nonfinite_steps=nonfinite["total"])  # fmt: skip
        self.sums, self.count = {}, 0
        self.restart_clock()
        return out


def _progress_line(step: int, total: int, m: dict) -> str:
    line = f"step {step}/{total}: loss {m.get('loss', math.nan):.4f}"
    line += f" bpp {m.get('bpp', math.nan):.4f} psnr {m.get('psnr', math.nan):.2f} dB"
    if "ms_ssim" in m:
        line += f" ms-ssim {m['ms_ssim']:.4f}"
    line += f" | lr {m.get('lr', math.nan):.1e} grad {m.get('grad_norm', math.nan):.3g}"
    line += f" | {m['patch_size']}² | {m['steps_per_sec']:.2f} steps/s"
    line += f" {m['images_per_sec']:.1f} img/s"
    return line + (f" | skipped {m['nonfinite_steps']}" if m["nonfinite_steps"] else "")


def _eval_line(step: int, r: dict) -> str:
    line = f"eval @ {step}: {r['bpp_estimated']:.4f} bpp (estimated) {r['psnr']:.2f} dB"
    if "bpp_real" in r:
        line += f" | real {r['bpp_real']:.4f} bpp {r['psnr_real']:.2f} dB"
    return line


def _print(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)


class _Writer:
    """TensorBoard scalars through `tf.summary` on process 0; a no-op elsewhere."""

    def __init__(self, logdir: Path, enabled: bool):
        self._tf = data.import_tensorflow() if enabled else None
        if self._tf is not None:
            self._writer = self._tf.summary.create_file_writer(str(logdir))

    def scalars(self, step: int, values: dict) -> None:
        if self._tf is None:
            return
        with self._writer.as_default(step=step):
            for name, value in values.items():
                self._tf.summary.scalar(name, float(value))
        self._writer.flush()

    def close(self) -> None:
        if self._tf is not None:
            self._writer.close()


class _SigtermFlag(contextlib.AbstractContextManager):
    """While entered, SIGTERM sets `requested` instead of killing the process.

    Only in single-process runs from the main thread: multi-host runs use JAX's
    preemption sync point (`Checkpointer.reached_preemption`), which needs its own
    SIGTERM handler.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if (
            jax.process_count() == 1
            and threading.current_thread() is threading.main_thread()
        ):
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        del signum, frame
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False
