import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import llic_jax
from llic_jax.cli import enable_compilation_cache, main


@pytest.fixture(scope="module")
def weights(small_weights_file):
    return small_weights_file


@pytest.fixture()
def png(tmp_path, photo):
    path = tmp_path / "in.png"
    Image.fromarray(np.ascontiguousarray(photo[:40, :56])).save(path)
    return path


def test_encode_then_decode(tmp_path, png, weights, capsys):
    stream, out = tmp_path / "x.llic", tmp_path / "out.png"
    assert main(["encode", str(png), str(stream), "--weights", str(weights)]) == 0
    assert "bpp" in capsys.readouterr().out
    assert main(["decode", str(stream), str(out), "--weights", str(weights)]) == 0
    decoded = np.asarray(Image.open(out))
    model, variables = llic_jax.load_weights(weights)
    expected = llic_jax.decompress(model, variables, stream.read_bytes())
    np.testing.assert_array_equal(decoded, expected)


def test_decoding_without_the_weights_that_made_the_stream_says_so(
    tmp_path, png, weights, capsys
):
    stream, out = tmp_path / "x.llic", tmp_path / "out.png"
    assert main(["encode", str(png), str(stream), "--weights", str(weights)]) == 0
    capsys.readouterr()
    assert main(["decode", str(stream), str(out)]) == 1  # no bundled model made it
    err = capsys.readouterr().err
    assert "not made by a bundled model" in err and "--weights" in err
    assert err.count("\n") == 1 and not out.exists()


def test_gray_png_is_converted(tmp_path, photo, weights):
    gray = tmp_path / "gray.png"
    Image.fromarray(np.ascontiguousarray(photo[:16, :16, 0])).save(gray)
    assert (
        main(["encode", str(gray), str(tmp_path / "g.llic"), "--weights", str(weights)])
        == 0
    )


@pytest.mark.parametrize("kind", ["not-an-image", "transparent", "missing"])
def test_bad_images_fail_with_one_line(tmp_path, photo, weights, kind, capsys):
    path = tmp_path / "bad.png"
    if kind == "not-an-image":
        path.write_bytes(b"hello")
    elif kind == "transparent":
        rgba = np.concatenate([photo[:8, :8], np.zeros((8, 8, 1), np.uint8)], -1)
        Image.fromarray(np.ascontiguousarray(rgba)).save(path)
    out = tmp_path / "out.llic"
    assert main(["encode", str(path), str(out), "--weights", str(weights)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("llic: error:") and err.count("\n") == 1
    assert not out.exists()


def test_corrupt_stream_keeps_the_existing_output(tmp_path, png, weights, capsys):
    stream, out = tmp_path / "x.llic", tmp_path / "out.png"
    main(["encode", str(png), str(stream), "--weights", str(weights)])
    stream.write_bytes(stream.read_bytes()[:-3])
    out.write_bytes(b"keep me")
    assert main(["decode", str(stream), str(out), "--weights", str(weights)]) == 1
    assert "error" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png", "x.llic"]


def test_wrong_weights_file_fails_cleanly(tmp_path, png, capsys):
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"\x00" * 100)
    assert (
        main(["encode", str(png), str(tmp_path / "x.llic"), "--weights", str(bogus)]) == 1
    )
    assert "llic: error:" in capsys.readouterr().err


def test_info_reports_parameters_and_macs(capsys):
    assert main(["info", "mbt2018-mean", "--size", "128x192"]) == 0
    out = capsys.readouterr().out
    assert "7,025,699" in out and "kMAC/pixel" in out and "8x12x192" in out
    assert main(["info", "mbt2018-mean", "--size", "big"]) == 1


def test_console_entry_point_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.llic"
    bad.write_bytes(b"LLIC garbage")
    result = subprocess.run(
        [sys.executable, "-m", "llic_jax", "decode", str(bad), str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("llic: error:")


def test_outputs_get_the_permissions_open_would_give(tmp_path, png, weights):
    stream = tmp_path / "x.llic"
    assert main(["encode", str(png), str(stream), "--weights", str(weights)]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(stream.stat().st_mode) == 0o666 & ~umask


def test_refined_encode_decodes_and_needs_a_lambda(tmp_path, png, weights, capsys):
    stream, out = tmp_path / "x.llic", tmp_path / "out.png"
    # The test weights record no λ: refinement must be told it.
    assert main(["encode", str(png), str(stream), "--weights", str(weights),
                 "--refine", "2"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "--lmbda" in err and "\n" not in err and not stream.exists()
    assert main(["encode", str(png), str(stream), "--weights", str(weights),
                 "--refine", "2", "--lmbda", "0.01"]) == 0  # fmt: skip
    assert "refining latents" in capsys.readouterr().err  # the steps' progress bar
    assert main(["decode", str(stream), str(out), "--weights", str(weights)]) == 0
    assert np.asarray(Image.open(out)).shape == (40, 56, 3)
    assert main(["encode", str(png), str(stream), "--weights", str(weights),
                 "--refine", "2", "--lmbda", "0.01", "--quiet"]) == 0  # fmt: skip
    assert capsys.readouterr().err == ""
    assert main(["encode", str(png), str(stream), "--weights", str(weights),
                 "--refine", "0", "--lmbda", "0.01"]) == 1  # fmt: skip
    assert "positive" in capsys.readouterr().err


def test_oriented_encode_decodes_to_the_original_frame(tmp_path, png, weights, capsys):
    stream, out = tmp_path / "x.llic", tmp_path / "out.png"
    args = ["encode", str(png), str(stream), "--weights", str(weights), "--orient"]
    assert main(args) == 1  # the test weights record no λ
    assert "--lmbda for --orient" in capsys.readouterr().err
    assert main([*args, "--lmbda", "0.01"]) == 0
    assert ", orientation " in capsys.readouterr().out
    assert main(["decode", str(stream), str(out), "--weights", str(weights)]) == 0
    assert np.asarray(Image.open(out)).shape == (40, 56, 3)


def test_placed_encode_reports_and_decodes(tmp_path, png, weights, capsys):
    from llic_jax.coding import container

    stream, out = tmp_path / "x.llic", tmp_path / "out.png"
    args = ["encode", str(png), str(stream), "--weights", str(weights), "--place"]
    assert main(args) == 1  # the test weights record no λ
    assert "--lmbda for --place" in capsys.readouterr().err
    assert main([*args, "--orient", "--lmbda", "0.01"]) == 0
    report = capsys.readouterr().out
    header, _ = container.unpack(stream.read_bytes())
    assert f"placed at row {header.pad_top}, column {header.pad_left}" in report
    assert main(["decode", str(stream), str(out), "--weights", str(weights)]) == 0
    assert np.asarray(Image.open(out)).shape == (40, 56, 3)


@pytest.fixture()
def restore_jax_cache_config():
    import jax

    names = ["jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs"]
    saved = {name: getattr(jax.config, name) for name in names}
    yield jax.config
    for name, value in saved.items():
        jax.config.update(name, value)


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"HOME": "/h"}, "/h/.cache/llic_jax/xla"),
        ({"XDG_CACHE_HOME": "/xdg"}, "/xdg/llic_jax/xla"),
        ({"LLIC_JAX_CACHE_DIR": "/mine", "XDG_CACHE_HOME": "/xdg"}, "/mine"),
    ],
)
def test_console_command_keeps_compiled_programs(
    environ, expected, restore_jax_cache_config, monkeypatch
):
    monkeypatch.setenv("HOME", environ.get("HOME", "/h"))
    assert enable_compilation_cache(environ) == expected
    assert restore_jax_cache_config.jax_compilation_cache_dir == expected
    assert restore_jax_cache_config.jax_persistent_cache_min_compile_time_secs == 0


@pytest.mark.parametrize(
    "environ, expected",
    [({"LLIC_JAX_CACHE_DIR": ""}, None), ({"JAX_COMPILATION_CACHE_DIR": "/j"}, "/j")],
)
def test_compilation_cache_off_or_left_to_jax(
    environ, expected, restore_jax_cache_config
):
    before = restore_jax_cache_config.jax_compilation_cache_dir
    assert enable_compilation_cache(environ) == expected
    assert restore_jax_cache_config.jax_compilation_cache_dir == before
