"""Image quality metrics (DESIGN.md §5): PSNR on 8-bit RGB, per image."""

import numpy as np

__all__ = ["psnr"]


def psnr(x: np.ndarray, y: np.ndarray, max_val: float = 255.0) -> float:
    """PSNR in dB between two images of the same shape (8-bit values, RGB jointly).

    Identical images give `inf`.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {y.shape}")
    mse = np.mean((x - y) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(max_val**2 / mse))
