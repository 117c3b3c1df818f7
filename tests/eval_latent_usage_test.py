"""eval/latent_usage.py: where a model's bits go (rates add up, layout, bad input)."""

import json

import numpy as np
import pytest

import llic_jax
from eval import latent_usage


def test_rates_add_up_to_the_eval_forward_estimate(make_small_model, photo):
    model, variables = make_small_model("llic-elic-compact")
    # Both pad to 64×64 (one compiled size); the second is cropped back from its padding.
    images = [photo[:64, :64], photo[100:140, 200:249]]
    usage = latent_usage.measure(model, variables, images, active_share=0.01)

    pixels = sum(img.shape[0] * img.shape[1] for img in images)
    estimated = sum(llic_jax.reconstruct(model, variables, img)[1] for img in images)
    assert usage["bpp"] == pytest.approx(estimated / pixels, rel=1e-4)
    assert usage["bpp"] == pytest.approx(usage["bpp_z"] + usage["bpp_y"], rel=1e-6)
    assert sum(s["bpp"] for s in usage["steps"]) == pytest.approx(
        usage["bpp_y"], rel=1e-5
    )
    assert sum(usage["channel_bpp"]) == pytest.approx(usage["bpp_y"], rel=1e-5)

    # ELIC's layout: 5 groups (2, 2, 4, 8, 16 channels), anchors then non-anchors.
    assert len(usage["steps"]) == 10
    assert [s["first_channel"] for s in usage["steps"][::2]] == [0, 2, 4, 8, 16]
    assert usage["steps"][-1]["last_channel"] == 31
    assert all(s["position_share"] == pytest.approx(0.5) for s in usage["steps"])
    assert 0 <= usage["active_channels"] <= usage["channels"] == 32
    assert 1 <= usage["channels_holding_90pct"] <= 32
    assert all(0 <= share <= 1 for share in usage["channel_nonzero_share"])
    assert 0 <= usage["z_nonzero_share"] <= 1
    assert np.isfinite(usage["psnr_decoded"]) and np.isfinite(usage["psnr_unquantised"])


def test_a_stricter_threshold_never_finds_more_active_channels(make_small_model, photo):
    model, variables = make_small_model("llic-elic-compact")
    loose = latent_usage.measure(model, variables, [photo[:64, :64]], 0.001)
    strict = latent_usage.measure(model, variables, [photo[:64, :64]], 0.5)
    assert strict["active_channels"] <= loose["active_channels"]


def test_the_command_prints_and_writes_json(small_weights_file, tmp_path, capsys):
    out = tmp_path / "usage.json"
    status = latent_usage.main(["--weights", str(small_weights_file), "--json", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "small.safetensors (mbt2018-mean): 1 image(s)" in printed
    report = json.loads(out.read_text())
    (usage,) = report["models"].values()
    assert usage["model"] == "mbt2018-mean" and len(usage["steps"]) == 1
    assert f"{usage['bpp']:.4f} bpp" in printed


@pytest.mark.parametrize(
    "argv",
    [
        ["--data", "no/such/image.png"],
        ["--weights", "no/such/weights.safetensors"],
        ["--json", "no/such/folder/usage.json"],
        ["--active-share", "0"],
    ],
)
def test_bad_input_exits_with_one_line(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        latent_usage.main(argv)
    assert error.value.code == 2
    assert "error:" in capsys.readouterr().err.strip().splitlines()[-1]
