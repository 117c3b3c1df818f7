"""Where the image sits in its padded canvas, and the search for the cheapest place.

The analysis transform needs a canvas whose sides are multiples of `model.pad_multiple`
(64 for llic-elic-compact), so an image of another size is padded by edge replication
(codec.py). The padding need not all go below and right of the image: the header stores
how many rows lie above it and how many columns left of it (container.py, "placement"),
and the decoder crops the image back from there.

Where it sits changes the cost, most likely because the convolutions zero-pad at the
canvas edge, which the networks, trained on crops from inside photos, never saw next to
image content: an image in the canvas' top-left corner has two sides on it. Measured with the
bundled quality-3 model, post-filter and Wiener filter on kodak24 (500×500 in a 512×512
canvas, real coding; docs/results-history.md, "Session 31"): against the corner
placement (0, 0) of the streams before, (8, 8) costs 0.28% less `bpp + λ·MSE` on
average, and the cheapest of the 25 placements {0, 4, 6, 8, 12}² per photo (estimated
costs, first twelve photos) 0.81% less; the search below tries {0, 4, 8, 12}² there.
So the encoder puts the image near the centre by default (`centred_placement`), and
`choose_placement` searches a grid of placements on request (`llic encode --place`).

A placement is (top, left): the rows of padding above the image and the columns left of
it, each between 0 and the padding on that axis. Placements are chosen per coded image,
i.e. after its orientation (orientation.py): odd orientations swap height and width.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "candidate_placements",
    "centred_placement",
    "choose_orientation_and_placement",
    "choose_placement",
    "rd_costs",
]

# Placements move in steps of this many pixels (see `centred_placement`).
_STEP = 4
# Offsets the search tries per axis: at most this many multiples of _STEP (so at most
# 25 placements), spread evenly over the padding, the default one among them.
_OFFSETS_PER_AXIS = 5


def _padding(model, height: int, width: int) -> tuple[int, int]:
    from llic_jax.coding.codec import padded_size  # codec imports this module

    padded_height, padded_width = padded_size(model, height, width)
    return padded_height - height, padded_width - width


def centred_placement(model, height: int, width: int) -> tuple[int, int]:
    """The default placement: half the padding above/left, rounded to a multiple of 4.

    Rounded (halves up) because offsets of 2 mod 4 cost MS-SSIM: on kodak24 at quality
    3, (6, 6) gave +0.020 dB PSNR but −0.0005 MS-SSIM against the corner, (8, 8)
    +0.011 dB and −0.00015, (4, 4) and (8, 4) as little MS-SSIM ("Session 31").
    """
    pad_h, pad_w = _padding(model, height, width)
    return _centred(pad_h), _centred(pad_w)


def _centred(padding: int) -> int:
    return min(padding, _STEP * ((padding + _STEP) // (2 * _STEP)))


def candidate_placements(model, height: int, width: int) -> list[tuple[int, int]]:
    """The placements `choose_placement` tries, the centred one first (wins ties)."""

    def offsets(padding: int) -> list[int]:
        steps = list(range(0, padding + 1, _STEP))
        last, n = len(steps) - 1, _OFFSETS_PER_AXIS - 1
        spread = {steps[(i * last + n // 2) // n] for i in range(n + 1)}
        return sorted(spread | {_centred(padding)})

    pad_h, pad_w = _padding(model, height, width)
    grid = [(top, left) for top in offsets(pad_h) for left in offsets(pad_w)]
    centred = centred_placement(model, height, width)
    return [centred] + [p for p in grid if p != centred]


def rd_costs(
    model, variables, img: np.ndarray, lmbda: float, placements, coarseness: int = 0
) -> np.ndarray:
    """Estimated `bpp + λ·MSE(0–255)` of `img` coded at each placement, float [n].

    The eval-mode forward (`llic_jax.reconstruct`) as for the orientations: estimated
    bits, no post-filter, bpp over the image's own pixels, at `coarseness`.
    """
    from llic_jax.api import reconstruct
    from llic_jax.coding.codec import as_rgb

    img = as_rgb(img)
    pixels = img.shape[0] * img.shape[1]
    costs = []
    for placement in placements:
        x_hat, bits = reconstruct(
            model, variables, img, placement=placement, coarseness=coarseness
        )
        error = np.asarray(x_hat, np.float64) - img
        costs.append(float(bits) / pixels + lmbda * float(np.mean(error**2)))
    return np.asarray(costs)


def choose_placement(
    model, variables, img: np.ndarray, lmbda: float, coarseness: int = 0
) -> tuple[int, int]:
    """The candidate placement of lowest estimated RD cost; ties → the centred one."""
    if not lmbda > 0:
        raise ValueError(f"λ must be positive, got {lmbda}")
    placements = candidate_placements(model, *np.shape(img)[:2])
    if len(placements) == 1:
        return placements[0]
    costs = rd_costs(model, variables, img, lmbda, placements, coarseness)
    return placements[int(np.argmin(costs))]


def choose_orientation_and_placement(
    model,
    variables,
    img: np.ndarray,
    orientation_lmbda: float | None = None,
    placement_lmbda: float | None = None,
    coarseness: int = 0,
) -> tuple[int, tuple[int, int] | None]:
    """`--orient`, then `--place` in the chosen orientation: (orientation, placement).

    A search whose λ is None is skipped: orientation 0, placement None (the encoder's
    default, centred). The two are searched one after the other, not jointly (8 + up
    to 25 forwards instead of 8 × 25).
    """
    from llic_jax.coding.orientation import choose_orientation, orient

    orientation = 0
    if orientation_lmbda is not None:
        orientation = choose_orientation(
            model, variables, img, orientation_lmbda, coarseness
        )
    placement = None
    if placement_lmbda is not None:
        turned = orient(img, orientation)
        placement = choose_placement(
            model, variables, turned, placement_lmbda, coarseness
        )
    return orientation, placement
