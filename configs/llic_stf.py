"""LLIC-STF: LLIC transforms + STF's channel-autoregressive slices with LRP.

`get_config("quality=3,metric=mse,compact=False,quicktest=False")`: `llic-stf` (10
slices of 32, support 5, as WACNN) or `llic-stf-compact` (N=64, M=160); see
configs/common.py and docs/training.md for the recipe and the overrides.
"""

from configs import common


def get_config(arg=None):
    fields = {"num_slices": int, "max_support_slices": int}
    quick = {"N": 16, "M": 32, "num_slices": 4, "max_support_slices": 2}
    return common.llic_config(arg, "llic-stf", fields=fields, quicktest_model=quick)
