"""Test setup: 8 simulated CPU devices (set before JAX initialises its backend).

The suite is dominated by XLA compile time (small shapes, many distinct functions), so
XLA's backend (LLVM) optimisation level is 0 unless XLA_FLAGS sets it: measured on the
2-core CPU, it halves the CPU time of a model's init, gradient and round trips and does
not change what the compiled programs compute. Subprocesses inherit the flags, and the
`llic` command's compilation cache is off for them (it would fill the user's ~/.cache).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in flags:
    flags = f"{flags} --xla_force_host_platform_device_count=8"
if "xla_backend_optimization_level" not in flags:
    flags = f"{flags} --xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = flags.strip()
os.environ["LLIC_JAX_CACHE_DIR"] = ""

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

DATA = Path(__file__).parent / "data"
SAMPLE = Path(__file__).parent.parent / "llic_jax" / "assets" / "sample.png"

_TCM = {"hyper_channels": 32, "hyper_head_dim": 8, "attention_dim": 16,
        "attention_head_dim": 8}  # fmt: skip
# Narrow versions of every registered model: same code paths, fast on 2 CPU cores.
SMALL_OPTIONS = {
    "bmshj2018-hyperprior": {"N": 16, "M": 24},
    "mbt2018-mean": {"N": 16, "M": 24},
    # llic-elic and llic-elic-compact are one class with other defaults: small, they
    # are the same network.
    "llic-elic": {"N": 16, "M": 32, "groups": (2, 2, 4, 8, 16)},
    "llic-elic-compact": {"N": 16, "M": 32, "groups": (2, 2, 4, 8, 16)},
    # llic-stf: 5 slices of 8, support 3; the compact one another layout (4 × 8, 2).
    "llic-stf": {"N": 16, "M": 40, "num_slices": 5, "max_support_slices": 3},
    "llic-stf-compact": {"N": 16, "M": 32, "num_slices": 4, "max_support_slices": 2},
    # llic-tcm: the same slice layouts; narrow SWAtten and hyper blocks (2 heads of 8).
    "llic-tcm": {"N": 16, "M": 40, "num_slices": 5, "max_support_slices": 3, **_TCM},
    "llic-tcm-compact": {
        "N": 16,
        "M": 32,
        "num_slices": 4,
        "max_support_slices": 2,
        **_TCM,
    },  # fmt: skip
}


def small_options(name: str) -> dict:
    """Overrides that make a registered model small enough for tests."""
    return SMALL_OPTIONS[name]


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photo (Kodak kodim23 crop, 500×500), uint8 RGB."""
    from PIL import Image

    return np.asarray(Image.open(SAMPLE).convert("RGB"))


@pytest.fixture(scope="session")
def bsds_photo() -> np.ndarray:
    """A real photo from BSDS500 (481×321 JPEG), uint8 RGB."""
    from PIL import Image

    return np.asarray(Image.open(DATA / "bsds_100080.jpg").convert("RGB"))


_MODELS: dict = {}
# Variables by network (the module's attributes, registry key left out): llic-elic and
# llic-elic-compact are one network when small, and an init costs ~20 s on 2 cores.
_VARIABLES: dict = {}


def small_model(name: str):
    """(model, variables with tables) for a small random-init version of `name`, cached."""
    if name not in _MODELS:
        import jax

        import llic_jax

        model = llic_jax.create_model(name, **small_options(name))
        network = repr(model.clone(model_name=""))
        if network not in _VARIABLES:
            # Parameters do not depend on the input size; 64×64 is the cheapest to trace.
            variables = llic_jax.init(model, jax.random.key(0), (64, 64))
            _VARIABLES[network] = llic_jax.build_tables(model, variables)
        _MODELS[name] = (model, _VARIABLES[network])
    return _MODELS[name]


@pytest.fixture(scope="session")
def make_small_model():
    """The `small_model` function, as a fixture."""
    return small_model


@pytest.fixture(scope="session")
def small_weights_file(tmp_path_factory):
    """A weights file of the small random-init mbt2018-mean (with tables)."""
    import llic_jax

    model, variables = small_model("mbt2018-mean")
    path = tmp_path_factory.mktemp("weights") / "small.safetensors"
    llic_jax.save_weights(path, model, variables)
    return path


def round_trip(model, variables, img):
    """Codes `img` and checks the codec contract; returns (encoded, estimated bits).

    decompress(compress(x)) equals the encoder's own reconstruction bit for bit, and
    the eval-mode forward agrees with it within one 8-bit level on ≥ 99.9% of pixels
    and with the encoder's estimate of its bits (the forward rounds in a different
    traced function, so a symbol may flip: 0.1% slack).
    """
    import llic_jax
    from llic_jax.coding.codec import encode

    encoded = encode(model, variables, img, estimate=True)
    decoded = llic_jax.decompress(model, variables, encoded.blob)
    assert decoded.dtype == np.uint8 and decoded.shape == img.shape
    np.testing.assert_array_equal(decoded, encoded.reconstruction)
    forward, bits = llic_jax.reconstruct(model, variables, img)
    assert (np.abs(forward.astype(int) - decoded.astype(int)) <= 1).mean() >= 0.999
    assert np.isfinite(bits) and bits > 0
    assert encoded.estimated_bits == pytest.approx(bits, rel=1e-3)
    return encoded, bits


@pytest.fixture(scope="session")
def check_round_trip():
    """The `round_trip` function, as a fixture."""
    return round_trip
