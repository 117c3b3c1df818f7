"""`python -m llic_jax` runs the `llic` command line."""

import sys

from llic_jax.cli import console_main

sys.exit(console_main())
