"""Turns a training run's weights into a shippable file: float16 parameters + tables.

  python -m train.export --weights RUN/weights.safetensors \
      --out llic_jax/assets/mbt2018-mean-q4.safetensors --float16

With `--float16` the parameters are rounded to float16 first and the coding tables are
rebuilt from the rounded values, so the file is self-consistent: the model that encodes
is exactly the one stored. (The `llic export --workdir` of the evaluation issue will
supersede this.)
"""

import argparse
from pathlib import Path

import jax
import numpy as np

import llic_jax
from llic_jax.weights import read_metadata


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--float16", action="store_true", help="store parameters as fp16")
    args = parser.parse_args(argv)

    model, variables = llic_jax.load_weights(args.weights)
    params = variables["params"]
    if args.float16:
        params = jax.tree.map(
            lambda p: np.asarray(p, np.float16).astype(np.float32), params
        )
    variables = llic_jax.build_tables(model, {"params": params})
    extra = {
        k: v
        for k, v in read_metadata(args.weights).items()
        if k not in ("format", "version", "model")
    }
    llic_jax.save_weights(
        args.out, model, variables, extra, param_dtype="float16" if args.float16 else None
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
