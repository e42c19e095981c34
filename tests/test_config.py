import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, make_config, project_params
from dcgan.config import Config, load_config
from dcgan.errors import ConfigError


def write_params(tmp_path, **overrides):
    params = {**project_params(), **overrides}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_project_params_are_valid_and_the_tutorial_defaults(tmp_path):
    cfg = load_config(write_params(tmp_path))
    assert (cfg.nz, cfg.ngf, cfg.ndf, cfg.batch_size, cfg.lr, cfg.beta1) == (100, 64, 64, 128, 2e-4, 0.5)
    assert (cfg.image_size, cfg.epochs, cfg.dataset, cfg.max_train_images) == (64, 5, "fashion_mnist", 0)
    assert cfg.nc == 1


def test_each_param_is_described_once_by_its_comment_in_params_yaml():
    """params.yaml is the one description of each key: every key line carries its comment, and the schema
    carries none (pydantic `description=`), so the two cannot drift apart."""
    keys = [line.split(":")[0] for line in (ROOT / "params.yaml").read_text().splitlines()
            if line and not line.startswith((" ", "#"))]
    assert set(keys) == set(Config.model_fields)
    undescribed = [line for line in (ROOT / "params.yaml").read_text().splitlines()
                   if line and not line.startswith((" ", "#")) and "#" not in line]
    assert not undescribed, f"params.yaml keys without a comment: {undescribed}"
    assert not [name for name, field in Config.model_fields.items() if field.description]


def test_lr_sets_both_learning_rates_unless_overridden():
    cfg = make_config(lr=1e-4)
    assert cfg.lr_d_effective == cfg.lr_g_effective == 1e-4
    cfg = make_config(lr=1e-4, lr_d=4e-4)
    assert (cfg.lr_d_effective, cfg.lr_g_effective) == (4e-4, 1e-4)


@pytest.mark.parametrize("key, value, expected", [
    ("dataset", "imagenet", "Supported: fashion_mnist, mnist, cifar10, celeba, folder"),
    ("lr", 0, "`lr` = 0 is not allowed: Input should be greater than 0"),
    ("lr", -1e-3, "`lr` = -0.001 is not allowed"),
    ("image_size", 48, "`image_size` = 48 is not allowed: must be one of 16, 28, 32, 64, 128, 256"),
    ("arch", "resnet", "`arch` = 'resnet' is not allowed: Input should be 'dcgan' or 'mlp'"),
    ("noise", "gaussian", "`noise` = 'gaussian' is not allowed: Input should be 'normal' or 'uniform'"),
    ("sample_bn_mode", "off", "`sample_bn_mode` = 'off' is not allowed"),
    ("d_dropout", 1.0, "`d_dropout` = 1.0 is not allowed"),
    ("label_smoothing", 0.5, "`label_smoothing` = 0.5 is not allowed"),
    ("ema_decay", -0.1, "`ema_decay` = -0.1 is not allowed"),
    ("max_bad_image_fraction", 2, "`max_bad_image_fraction` = 2 is not allowed"),
    ("batch_size", 0, "`batch_size` = 0 is not allowed: Input should be greater than or equal to 1"),
    ("epochs", "many", "`epochs` = 'many' is not allowed"),
    ("beta1", 1.0, "`beta1` = 1.0 is not allowed"),
    ("device", "tpu", "`device` = 'tpu' is not allowed"),
    ("learning_rate", 0.1, "`learning_rate` is not a known parameter"),
])
def test_bad_values_name_the_key_the_value_and_what_is_allowed(tmp_path, key, value, expected):
    with pytest.raises(ConfigError) as error:
        load_config(write_params(tmp_path, **{key: value}))
    assert expected in str(error.value)


def test_missing_key_and_broken_yaml(tmp_path):
    params = project_params()
    del params["nz"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="`nz` is missing"):
        load_config(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("lr: [0.1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "params.yaml")


def test_folder_needs_its_path_and_channels_and_other_data_sets_refuse_them(tmp_path):
    with pytest.raises(ConfigError, match="'folder' needs `path` and `channels`"):
        load_config(write_params(tmp_path, dataset="folder"))
    with pytest.raises(ConfigError, match="`channels` apply only to `dataset: folder`"):
        load_config(write_params(tmp_path, dataset="mnist", channels=3))
    cfg = load_config(write_params(tmp_path, dataset="folder", path="/images", channels=3))
    assert cfg.nc == 3


def test_channels_follow_the_data_set():
    assert {name: make_config(dataset=name).nc for name in ("fashion_mnist", "mnist", "cifar10", "celeba")} == \
        {"fashion_mnist": 1, "mnist": 1, "cifar10": 3, "celeba": 3}


def test_data_mirror_auto_is_the_data_sets_usual_place():
    assert make_config(dataset="fashion_mnist", data_mirror="auto").mirror == "/usr/share/datasets/fashion-mnist"
    assert make_config(dataset="cifar10", data_mirror="auto").mirror is None
    assert make_config(dataset="cifar10", data_mirror="/data/cifar").mirror == "/data/cifar"


def test_yaml_on_and_off_mean_on_and_off(tmp_path):
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(project_params()).replace("inception: auto", "inception: on"))
    assert load_config(tmp_path / "p.yaml").inception == "on"  # YAML 1.1 reads a bare `on` as true
    assert make_config(inception=False).inception == "off"


def test_all_problems_are_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(write_params(tmp_path, lr=-1, batch_size=0))
    assert "`lr`" in str(error.value) and "`batch_size`" in str(error.value)


def test_flat_params_hold_every_key_for_mlflow():
    flat = make_config().flat()
    assert set(Config.model_fields) <= set(flat)
    assert flat["lr_d_effective"] == flat["lr"]


@pytest.mark.parametrize("stage", ["download", "preprocess", "train", "sample", "evaluate"])
def test_a_stage_with_bad_params_fails_cleanly_before_any_work(tmp_path, stage):
    write_params(tmp_path, lr=-1)
    result = subprocess.run([sys.executable, str(ROOT / "stages" / f"{stage}.py")], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "error:" in result.stderr and "`lr` = -1 is not allowed" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written
