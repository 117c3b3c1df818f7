"""llic_jax: LLIC (large receptive field transform coding) and friends in JAX/Flax."""

from llic_jax.api import build_tables, init, reconstruct
from llic_jax.coding.codec import compress, decompress
from llic_jax.coding.container import BitstreamError
from llic_jax.coding.latent_refinement import Refinement
from llic_jax.coding.orientation import choose_orientation
from llic_jax.models import create_model, list_models
from llic_jax.post_filter_weights import bundled_post_filter, load_post_filter
from llic_jax.weights import load_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "BitstreamError",
    "Refinement",
    "build_tables",
    "bundled_post_filter",
    "choose_orientation",
    "compress",
    "create_model",
    "decompress",
    "init",
    "list_models",
    "load_post_filter",
    "load_weights",
    "reconstruct",
    "save_weights",
]
