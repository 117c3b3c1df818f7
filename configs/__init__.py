"""Training configs: `get_config(arg)` files for `python -m train.main --config FILE:ARG`."""
