import csv

import mlflow
import pytest
import torch

from conftest import make_config
from dcgan import paths
from dcgan.checkpoint import load_checkpoint
from dcgan.io import load_tensors, save_tensors
from dcgan.models import build_models, model_spec
from dcgan.train import LOGGED, train

TINY = dict(image_size=16, nz=8, ngf=8, ndf=8, batch_size=16, epochs=2, log_every=3, sample_every=4,
            eval_every=5, device="cpu")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A project folder with 64 preprocessed 16x16 images and its own MLflow store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / ".dvc").mkdir()
    images = torch.randint(0, 256, (64, 1, 16, 16), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    save_tensors(paths.TRAIN_DATA, {"images": images, "labels": torch.zeros(64, dtype=torch.int64)})
    return tmp_path


def test_training_logs_checkpoints_and_tracks(workdir):
    cfg = make_config(**TINY)
    train(cfg)

    rows = list(csv.DictReader(open(paths.TRAIN_LOG)))
    steps = cfg.epochs * (64 // cfg.batch_size)  # 8 steps, logged at 3, 6 and the last
    assert [int(row["step"]) for row in rows] == [3, 6, 8]
    for row in rows:
        assert 0 < float(row["d_real"]) < 1 and 0 < float(row["d_fake_before"]) < 1
        assert float(row["loss_d"]) > 0 and float(row["loss_g"]) > 0
    assert sorted(p.name for p in paths.TRAIN_GRIDS.iterdir()) == ["step_0000004.png", "step_0000008.png"]
    assert paths.TRAIN_CURVES.stat().st_size > 0
    snapshots = sorted(paths.SNAPSHOTS.iterdir())
    assert [load_tensors(p)["step"] for p in snapshots] == [5, 8]  # every eval_every steps and the last

    checkpoint = load_checkpoint(paths.CHECKPOINT, model_spec(cfg))
    assert checkpoint["step"] == steps and checkpoint["epoch"] == cfg.epochs
    torch.manual_seed(cfg.seed)
    initial_generator, _ = build_models(cfg)
    assert not torch.equal(checkpoint["generator"]["main.0.weight"], initial_generator.state_dict()["main.0.weight"])

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    run = mlflow.get_run(checkpoint["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == str(cfg.lr) and run.data.tags["device"] == "cpu"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "d_fake_after")
    assert [m.step for m in history] == [3, 6, 8]
    assert set(LOGGED) <= set(run.data.metrics)


def test_same_params_on_the_cpu_give_the_same_weights(workdir, tmp_path_factory, monkeypatch):
    cfg = make_config(**TINY)
    train(cfg)
    first = load_checkpoint(paths.CHECKPOINT, model_spec(cfg))
    train(cfg)
    second = load_checkpoint(paths.CHECKPOINT, model_spec(cfg))
    for net in ("generator", "discriminator"):
        for name, tensor in first[net].items():
            assert torch.equal(tensor, second[net][name]), f"{net}.{name} differs between identical runs"
