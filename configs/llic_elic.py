"""LLIC-ELIC: LLIC transforms + ELIC's uneven channel groups with checkerboard context.

`get_config("quality=3,metric=mse,compact=False,quicktest=False")`: `llic-elic` (N=192,
M=320, groups 16/16/32/64/192) or `llic-elic-compact` (N=64, M=160); the training
recipe and overrides are in configs/common.py and docs/training.md.
"""

from configs import common


def get_config(arg=None):
    quick = {"N": 16, "M": 32, "groups": (2, 2, 4, 8, 16)}
    return common.llic_config(
        arg, "llic-elic", fields={"groups": tuple}, quicktest_model=quick
    )
