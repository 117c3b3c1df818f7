"""Classic codecs: the default quality sweeps bracket the rates learned codecs are run at."""

import numpy as np
import pytest

from llic_jax import classic_codecs


@pytest.mark.parametrize("codec", classic_codecs.CODECS)
def test_default_sweep_brackets_learned_codec_rates(codec, photo):
    # 0.13 bpp: below the lowest point of the learned codecs we compare with on kodak24;
    # WebP's quality 5 gives 0.157 bpp on this photo, so its sweep has to go lower.
    qualities = classic_codecs.default_qualities(codec)
    assert list(qualities) == sorted(set(qualities))

    def bpp(quality):
        data = classic_codecs.encode(codec, photo, quality)
        return 8 * len(data) / (photo.shape[0] * photo.shape[1])

    lowest, highest = bpp(qualities[0]), bpp(qualities[-1])
    assert lowest < 0.13 and highest > 1.5, (lowest, highest)
    decoded = classic_codecs.decode(classic_codecs.encode(codec, photo, qualities[-1]))
    assert decoded.shape == photo.shape and decoded.dtype == np.uint8
