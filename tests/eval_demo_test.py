"""eval/demo.py (`make demo`): its table, with weights that do not record their λ."""

import numpy as np
from PIL import Image

from eval import demo


def test_the_demo_round_trips_and_says_why_the_wiener_filter_is_off(
    tmp_path, photo, small_weights_file, capsys
):
    image, stream = tmp_path / "in.png", tmp_path / "x.llic"
    Image.fromarray(np.ascontiguousarray(photo[150:190, 250:306])).save(image)
    demo.main(["--image", str(image), "--weights", str(small_weights_file),
               "--out", str(stream)])  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    table = {line[:30].strip(): line[30:].strip() for line in lines}  # names padded to 30
    assert table["decoded = encoder's image"] == "True"
    assert table["Wiener filter"].startswith("off")
    assert float(table["real bpp"]) == round(stream.stat().st_size * 8 / (40 * 56), 4)
