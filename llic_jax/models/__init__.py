"""Models: transform pairs with their latent codecs, looked up by registry name."""

from llic_jax.models.base import CompressionModel
from llic_jax.models.hyperprior import MeanScaleHyperprior, ScaleHyperprior
from llic_jax.models.llic import LLICElic, LLICStf, LLICTcm
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
register("llic-tcm", LLICTcm)
# The sibling with TCM's entropy model: 5 slices of 32, support 5; slice-transform
# widths scale with N (see LLICTcm), SWAtten at 64 channels (4 heads of 16) and hyper
# blocks at TCM-S's width, 128 (our choice).
register("llic-tcm-compact", LLICTcm, N=64, M=160, hyper_channels=128, attention_dim=64)

__all__ = [
    "CompressionModel",
    "LLICElic",
    "LLICStf",
    "LLICTcm",
    "MeanScaleHyperprior",
    "ScaleHyperprior",
    "create_model",
    "list_models",
    "model_config",
    "register",
]
