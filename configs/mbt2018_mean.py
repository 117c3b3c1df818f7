"""mbt2018-mean: Minnen et al. 2018's mean-scale hyperprior, the reference CNN codec.

Args as the LLIC configs but without `compact`: quality (1…6), metric (mse | ms-ssim),
quicktest (N=16, M=24, 100 steps of 64² crops). Recipe and overrides: configs/common.py.
"""

from configs import common


def get_config(arg=None):
    defaults = {k: v for k, v in common.ARG_DEFAULTS.items() if k != "compact"}
    arg = common.parse_arg(arg, **defaults)
    return common.training_config(
        arg,
        "mbt2018-mean",
        model_fields={"N": int, "M": int},
        quicktest_model={"N": 16, "M": 24},
    )
