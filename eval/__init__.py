"""Evaluation, benchmarks and demos (run as `python -m eval.NAME`)."""
