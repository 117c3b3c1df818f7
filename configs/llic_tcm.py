"""LLIC-TCM: LLIC transforms + TCM's entropy model (5 slices, SWAtten, TCM hyperprior).

`get_config` takes quality (1…6), metric (mse | ms-ssim), compact (`llic-tcm-compact`:
N=64, M=160, narrower attention) and quicktest, like every LLIC config; the model
options below are settable as `--config.model.NAME=VALUE`.
"""

from configs import common

_FIELDS = ("num_slices", "max_support_slices", "hyper_channels", "hyper_head_dim",
           "attention_dim", "attention_head_dim")  # fmt: skip
_QUICK = (4, 2, 32, 8, 16, 8)


def get_config(arg=None):
    quick = {"N": 16, "M": 32, **dict(zip(_FIELDS, _QUICK, strict=True))}
    fields = dict.fromkeys(_FIELDS, int)
    return common.llic_config(arg, "llic-tcm", fields=fields, quicktest_model=quick)
