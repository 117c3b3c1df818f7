"""train/after_lease.sh refuses what it cannot use before it starts any work."""

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "train" / "after_lease.sh"


def _run(tmp_path, lease, **env):
    return subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=SCRIPT.parents[1],
        env={
            **os.environ,
            "LEASE": str(lease),
            "WORK": str(tmp_path / "work"),
            "PY": sys.executable,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_folder_without_lease_parameters_is_refused(tmp_path):
    result = _run(tmp_path, tmp_path)
    assert result.returncode == 2
    assert "no " in result.stderr and "params_*.msgpack" in result.stderr
    assert not (tmp_path / "work").exists()


def test_a_missing_image_folder_is_refused(tmp_path):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "params_0.0067.msgpack").write_bytes(b"")
    result = _run(tmp_path, tmp_path, DATA=str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "no image folder" in result.stderr


def test_a_lambda_no_bundled_model_has_is_refused(tmp_path):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "params_0.5.msgpack").write_bytes(b"")
    result = _run(tmp_path, tmp_path, DATA=str(tmp_path), VAL=str(tmp_path))
    assert result.returncode != 0
    assert "no bundled model has λ 0.5" in result.stderr
    assert not (tmp_path / "work" / "wd_q3").exists()
