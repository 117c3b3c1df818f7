"""Data parallelism: one device, the jit mesh and pmap agree; so do 2 hosts × 4 devices.

The device count is fixed when JAX starts, so the runs are fresh processes
(parallel_worker.py), all three started at once: one process with 8 simulated CPU
devices (jit mesh, pmap), and two processes with 4 devices each joined by
jax.distributed on 127.0.0.1 (gloo collectives); the one-device run is made here
meanwhile.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import flax.serialization
import jax
import numpy as np
import parallel_worker
import pytest

import llic_jax
from llic_jax import checkpoints, sharding

WORKER = Path(__file__).parent / "parallel_worker.py"
TIMEOUT_S = 600  # generous: the machine may be shared


def _env(devices: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(procs: dict) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for name, proc in procs.items():
            _, err = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
            assert proc.returncode == 0, f"{name} failed:\n{err.decode()[-3000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("parallel")
    name, options = parallel_worker.MODEL
    model = llic_jax.create_model(name, **options)
    params = jax.tree.map(np.asarray, llic_jax.init(model, jax.random.key(0))["params"])
    params_path = tmp / "params.msgpack"
    params_path.write_bytes(flax.serialization.msgpack_serialize(params))
    port = _free_port()

    def start(out: str, devices: int, *args: str):
        command = [sys.executable, str(WORKER), str(params_path), str(tmp / out), *args]
        return subprocess.Popen(command, env=_env(devices), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip

    procs = {"one process": start("modes.npz", 8, "modes")}
    for i in range(2):
        procs[f"process {i} of 2"] = start(f"multi{i}.npz", 4, "multi", str(port), str(i))
    # Meanwhile, the step on one device, here.
    single, losses = parallel_worker.train(
        params, sharding.DataParallel("jit", jax.devices()[:1])
    )
    _wait(procs)
    out = {
        name: dict(np.load(tmp / f"{name}.npz")) for name in ("modes", "multi0", "multi1")
    }
    out["modes"].update({f"single/{i}": p for i, p in enumerate(jax.tree.leaves(single))})
    out["modes"]["loss/single"] = losses
    return out


def _params(run: dict, name: str) -> list:
    return [run[f"{name}/{i}"] for i in range(sum(k.startswith(f"{name}/") for k in run))]


def _assert_same_run(run: dict, name: str, reference: dict, reference_name: str) -> None:
    """Same losses at every step, same params after 3 steps, to float tolerance.

    Parameters move by up to ~2e-3 in the 3 steps; summation order (per device, then
    all-reduced) changes them by ~2e-6.
    """
    np.testing.assert_allclose(run[f"loss/{name}"], reference[f"loss/{reference_name}"],
                               rtol=1e-5)  # fmt: skip
    a, b = _params(run, name), _params(reference, reference_name)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


def test_jit_mesh_pmap_and_one_device_give_the_same_params(runs):
    modes = runs["modes"]
    assert all(np.isfinite(p).all() for p in _params(modes, "single"))
    assert modes["loss/single"][-1] < modes["loss/single"][0]
    _assert_same_run(modes, "jit", modes, "single")
    _assert_same_run(modes, "pmap", modes, "single")


def test_two_processes_agree_with_each_other_and_with_one_process(runs):
    first, second = _params(runs["multi0"], "jit"), _params(runs["multi1"], "jit")
    for x, y in zip(first, second, strict=True):
        np.testing.assert_array_equal(x, y)
    _assert_same_run(runs["multi0"], "jit", runs["modes"], "jit")


def test_checkpoint_restores_onto_another_device_count(tmp_path):
    assert jax.device_count() >= 8  # tests/conftest.py
    tree = {"params": {"w": np.arange(12.0).reshape(3, 4)}, "opt_state": (np.ones(3),)}
    eight = sharding.DataParallel("jit")
    saver = checkpoints.Checkpointer(tmp_path, keep=2)
    assert saver.save(3, eight.put_state(tree), {"note": "x"})
    # A state with a NaN is refused, whatever the step.
    bad = {**tree, "params": {"w": np.full((3, 4), np.nan)}}
    assert not saver.save(4, eight.put_state(bad))
    saver.close()

    two = sharding.DataParallel("jit", jax.devices()[:2])
    abstract = checkpoints.abstract_tree(tree, two.replicated)
    restored, meta = checkpoints.Checkpointer(tmp_path).restore(abstract)
    assert meta == {"step": 3, "note": "x"}
    assert restored["params"]["w"].sharding == two.replicated
    np.testing.assert_array_equal(restored["params"]["w"], tree["params"]["w"])
    assert checkpoints.Checkpointer(tmp_path, read_only=True).all_steps() == [3]


def test_batch_must_split_over_the_devices():
    with pytest.raises(ValueError, match="not a multiple of the 8 devices"):
        sharding.DataParallel("jit").local_batch_size(12)
    with pytest.raises(ValueError, match="parallel"):
        sharding.DataParallel("spmd")
