import json

import numpy as np
import pytest

import llic_jax
from llic_jax.weights import WeightsError, flatten, read_metadata


def test_save_and_load_round_trip(tmp_path, make_small_model, photo):
    model, variables = make_small_model("mbt2018-mean")
    path = tmp_path / "w.safetensors"
    llic_jax.save_weights(path, model, variables, extra={"lmbda": "0.013"})
    loaded_model, loaded = llic_jax.load_weights(path)
    assert loaded_model == model
    for name, value in flatten(variables).items():
        np.testing.assert_array_equal(flatten(loaded)[name], np.asarray(value))
    assert read_metadata(path)["lmbda"] == "0.013"
    # A stream made with the original decodes with the loaded copy.
    img = np.ascontiguousarray(photo[:20, :20])
    blob = llic_jax.compress(model, variables, img)
    np.testing.assert_array_equal(
        llic_jax.decompress(loaded_model, loaded, blob),
        llic_jax.decompress(model, variables, blob),
    )


def test_float16_storage_loads_as_float32(tmp_path, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    path = tmp_path / "w16.safetensors"
    llic_jax.save_weights(path, model, variables, param_dtype="float16")
    _, loaded = llic_jax.load_weights(path)
    kernel = loaded["params"]["g_a"]["layers_0"]["kernel"]
    assert kernel.dtype == np.float32
    original = np.asarray(variables["params"]["g_a"]["layers_0"]["kernel"])
    np.testing.assert_allclose(kernel, original, rtol=1e-3, atol=1e-4)


def test_bad_files_raise_weights_error(tmp_path, make_small_model):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a weights file at all")
    with pytest.raises(WeightsError):
        llic_jax.load_weights(junk)
    with pytest.raises(WeightsError):
        llic_jax.load_weights(tmp_path / "missing.safetensors")
    # Weights of another size under the same model name do not fit.
    model, variables = make_small_model("mbt2018-mean")
    path = tmp_path / "w.safetensors"
    llic_jax.save_weights(path, model, variables)
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    config = json.loads(header["__metadata__"]["model"])
    config["options"]["N"] = 32
    header["__metadata__"]["model"] = json.dumps(config)
    new_header = json.dumps(header).encode()
    path.write_bytes(
        len(new_header).to_bytes(8, "little") + new_header + raw[8 + header_len :]
    )
    with pytest.raises(WeightsError, match="do not fit|shape"):
        llic_jax.load_weights(path)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"previous")
    broken = {"params": variables["params"], "tables": {"bad": object()}}
    with pytest.raises(Exception):  # noqa: B017 - any failure must keep the old file
        llic_jax.save_weights(path, model, broken)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_edited_tensor_is_refused_by_the_fingerprint(tmp_path, make_small_model):
    model, variables = make_small_model("mbt2018-mean")
    path = tmp_path / "w.safetensors"
    llic_jax.save_weights(path, model, variables, param_dtype="float16")
    assert len(read_metadata(path)["fingerprint"]) == 16
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x10  # inside the last tensor's data; the header still parses
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="fingerprint"):
        llic_jax.load_weights(path)


def test_fingerprint_is_the_one_streams_carry(tmp_path, make_small_model, photo):
    model, variables = make_small_model("mbt2018-mean")
    path = tmp_path / "w.safetensors"
    llic_jax.save_weights(path, model, variables)
    _, loaded = llic_jax.load_weights(path)
    from llic_jax.coding.codec import fingerprint

    assert fingerprint(loaded).hex() == read_metadata(path)["fingerprint"]
