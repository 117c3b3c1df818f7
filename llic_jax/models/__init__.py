"""Models: transform pairs with their latent codecs, looked up by registry name."""

from llic_jax.models.base import CompressionModel
from llic_jax.models.hyperprior import MeanScaleHyperprior, ScaleHyperprior
from llic_jax.models.llic import LLICElic, LLICStf
from llic_jax.models.registry import create_model, list_models, model_config, register

register("bmshj2018-hyperprior", ScaleHyperprior, N=128, M=192)
register("mbt2018-mean", MeanScaleHyperprior, N=128, M=192)
register("llic-elic", LLICElic)
# A small sibling for CPU work: a third of the channels, groups in proportion.
register("llic-elic-compact", LLICElic, N=64, M=160, groups=(8, 8, 16, 32, 96))
register("llic-stf", LLICStf)
# The same sibling with STF's entropy model: 10 slices of 16, support 5; the hyper and
# slice-transform widths scale with N and M (see LLICStf).
register("llic-stf-compact", LLICStf, N=64, M=160)

__all__ = [
    "CompressionModel",
    "LLICElic",
    "LLICStf",
    "MeanScaleHyperprior",
    "ScaleHyperprior",
    "create_model",
    "list_models",
    "model_config",
    "register",
]
