"""configs/*.py: every get_config parses with and without args; λ tables; schedules."""

import importlib
from pathlib import Path

import pytest

from configs import common
from train import steps

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
CONFIGS = sorted(
    p.stem for p in CONFIG_DIR.glob("*.py") if p.stem not in ("__init__", "common")
)
# Fields users set on the command line.
FIELDS = ("input.folder", "input.tfds_name", "total_steps", "batch_size",
          "checkpoint_every", "lmbda", "eval.folder", "parallel")  # fmt: skip


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config


def test_the_expected_configs_exist():
    assert CONFIGS == ["llic_elic", "llic_stf", "llic_tcm", "mbt2018_mean"]


@pytest.mark.parametrize("name", CONFIGS)
def test_get_config_with_and_without_args(name):
    module = importlib.import_module(f"configs.{name}")
    config = module.get_config()
    for field in FIELDS:
        _get(config, field)
    assert config.lmbda == 0.0067 and config.metric == "mse"
    assert config.input.patch_sizes == (256, 512) and config.total_steps == 2_000_000
    assert config.model_name.replace("-", "_").startswith(name.split("_")[0])

    quick = module.get_config("quality=1,metric=ms-ssim,quicktest=True")
    assert quick.lmbda == 2.4 and quick.total_steps < 1000
    assert min(quick.input.patch_sizes) >= 161  # MS-SSIM's five scales
    assert any(v is not None for v in quick.model.values())
    assert module.get_config("quality=6").lmbda == 0.0483
    if name.startswith("llic"):
        assert module.get_config("compact=True").model_name.endswith("-compact")
    for bad in ("quality=7", "colour=1", "quality", "quicktest=maybe"):
        with pytest.raises(ValueError):
            module.get_config(bad)


def test_lambda_tables_are_the_papers():
    assert [common.lmbda_for(q, "mse") for q in range(1, 7)] == [
        0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483,
    ]  # fmt: skip
    assert [common.lmbda_for(q, "ms-ssim") for q in range(1, 7)] == [
        2.4, 4.58, 8.73, 16.64, 31.73, 60.5,
    ]  # fmt: skip


def test_default_schedule_is_the_llic_recipe():
    config = importlib.import_module("configs.llic_elic").get_config()
    total = config.total_steps
    patch = lambda s: steps.patch_size_at(s, config.input.patch_sizes,
                                          config.input.patch_boundaries, total)  # fmt: skip
    assert (patch(0), patch(1_199_999), patch(1_200_000)) == (256, 256, 512)
    lr = steps.learning_rate_schedule(config.lr_values, config.lr_boundaries, total)
    at = {s: float(lr(s)) for s in (0, 1_699_999, 1_700_000, 1_800_000, 1_900_000)}
    assert at == pytest.approx(
        {0: 1e-4, 1_699_999: 1e-4, 1_700_000: 3e-5, 1_800_000: 1e-5, 1_900_000: 3e-6}
    )
    assert config.grad_clip_norm == 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["--config", f"{CONFIG_DIR}/llic_elic.py:quality=9"],
            "quality: 9 is not one of",
        ),
        (["--config", f"{CONFIG_DIR}/llic_elic.py", "--config.nope=1"], "nope"),
    ],
)
def test_bad_config_on_the_command_line_is_one_line(overrides, message, capsys):
    from train import main as train_main

    with pytest.raises(SystemExit) as info:
        train_main._parse_flags(["train.main", *overrides, "--workdir", "unused"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
