"""Wall-clock seconds per phase of one encode or decode: network vs entropy coding.

`encode` / `decompress` accept a `PhaseTimes` and charge every jitted model call
(waited for with `block_until_ready`) to "network" and every range-coder call, symbol
gathering and CRC to "coding". Whatever is left of the total (container packing,
padding, host copies) is small; benchmarks report it as "other".
"""

import collections
import contextlib
import time

__all__ = ["PhaseTimes", "phase"]


class PhaseTimes:
    """Accumulates wall-clock seconds per named phase."""

    def __init__(self):
        self.seconds: dict[str, float] = collections.defaultdict(float)

    @contextlib.contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


def phase(times: PhaseTimes | None, name: str):
    """`times.phase(name)`, or a no-op context when no timing was asked for."""
    return contextlib.nullcontext() if times is None else times.phase(name)
