import csv

import mlflow
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, make_config
from dcgan import paths
from dcgan.checkpoint import load_checkpoint
from dcgan.io import load_tensors
from dcgan.models import build_models, model_spec
from dcgan.gan_step import lr_scale
from dcgan.train import LOGGED, train

def test_training_logs_checkpoints_and_tracks(work_folder):
    cfg = make_config(**TINY)
    train(cfg)

    rows = list(csv.DictReader(open(paths.TRAIN_LOG)))
    steps = cfg.epochs * (64 // cfg.batch_size)  # 8 steps, logged at 3, 6 and the last
    assert [int(row["step"]) for row in rows] == [3, 6, 8]
    for row in rows:
        assert 0 < float(row["d_x"]) < 1 and 0 < float(row["d_g_z_before_d_step"]) < 1
        assert float(row["loss_d"]) > 0 and float(row["loss_g"]) > 0
    assert sorted(p.name for p in paths.TRAIN_GRIDS.iterdir()) == ["step_0000000.png", "step_0000004.png", "step_0000008.png"]
    assert paths.TRAIN_CURVES.stat().st_size > 0
    snapshots = sorted(paths.SNAPSHOTS.iterdir())
    assert [load_tensors(p)["step"] for p in snapshots] == [5, 8]  # every eval_every steps and the last

    checkpoint = load_checkpoint(paths.CHECKPOINT, model_spec(cfg))
    assert checkpoint["step"] == steps and checkpoint["epoch"] == cfg.epochs
    torch.manual_seed(cfg.seed)
    initial_generator, _ = build_models(cfg)
    assert not torch.equal(checkpoint["generator"]["main.0.weight"], initial_generator.state_dict()["main.0.weight"])

    mlflow.set_tracking_uri(f"sqlite:///{work_folder / 'mlflow.db'}")
    run = mlflow.get_run(checkpoint["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["lr"] == str(cfg.lr) and run.data.tags["device"] == "cpu"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "gan/d_g_z_after_d_step")
    assert [m.step for m in history] == [3, 6, 8]
    assert {f"gan/{name}" for name in LOGGED} <= set(run.data.metrics)


def test_same_params_on_the_cpu_give_the_same_weights(work_folder, tmp_path_factory, monkeypatch):
    cfg = make_config(**TINY)
    train(cfg)
    first = load_checkpoint(paths.CHECKPOINT, model_spec(cfg))
    train(cfg)
    second = load_checkpoint(paths.CHECKPOINT, model_spec(cfg))
    for net in ("generator", "discriminator"):
        for name, tensor in first[net].items():
            assert torch.equal(tensor, second[net][name]), f"{net}.{name} differs between identical runs"


def test_ema_of_g_is_checkpointed_and_is_what_sampling_uses(work_folder):
    from dcgan.sample import last_generator

    cfg = make_config(**TINY, ema_decay=0.9)
    train(cfg)
    checkpoint = load_checkpoint(paths.CHECKPOINT, model_spec(cfg))
    ema, raw = checkpoint["generator_ema"], checkpoint["generator"]
    assert ema.keys() == raw.keys()
    assert not torch.equal(ema["main.0.weight"], raw["main.0.weight"])  # an average lags the last weights
    generator, trained_steps = last_generator(cfg, torch.device("cpu"))
    sampled = generator.state_dict()
    assert trained_steps == checkpoint["step"]
    assert all(torch.equal(sampled[name], ema[name]) for name in ema)
    snapshot = load_tensors(sorted(paths.SNAPSHOTS.iterdir())[-1])["generator"]
    assert torch.equal(snapshot["main.0.weight"], ema["main.0.weight"])


def test_without_ema_the_checkpoint_holds_none(work_folder):
    cfg = make_config(**TINY)
    train(cfg)
    assert load_checkpoint(paths.CHECKPOINT, model_spec(cfg))["generator_ema"] is None


@pytest.mark.parametrize("variant", [dict(arch="mlp", ngf=32, ndf=32), dict(noise="uniform", label_smoothing=0.1,
                                                                           d_dropout=0.3)])
def test_training_variants_train_and_log(work_folder, variant):
    cfg = make_config(**{**TINY, **variant})
    train(cfg)
    rows = list(csv.DictReader(open(paths.TRAIN_LOG)))
    assert len(rows) == 3 and all(0 < float(row["d_x"]) < 1 for row in rows)
    checkpoint = load_checkpoint(paths.CHECKPOINT, model_spec(cfg))
    assert checkpoint["model_spec"]["arch"] == cfg.arch


def test_one_sided_label_smoothing_moves_only_ds_target_for_real_images(work_folder, monkeypatch):
    import dcgan.gan_step

    targets = []
    original = F.binary_cross_entropy_with_logits

    def spy(logits, target, *args, **kwargs):
        targets.append(target[0].item())
        return original(logits, target, *args, **kwargs)

    monkeypatch.setattr(dcgan.gan_step.F, "binary_cross_entropy_with_logits", spy)
    train(make_config(**{**TINY, "epochs": 1, "batch_size": 64}, label_smoothing=0.1))
    assert targets[:3] == [pytest.approx(0.9), 0.0, 1.0]  # D: real 0.9, fake 0; G: its fakes called real, 1


def test_lr_scale_is_constant_then_falls_linearly_to_one_nth():
    assert [lr_scale(step, 8, 0.5) for step in range(8)] == [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert [lr_scale(step, 8, 1.0) for step in range(8)] == [1] * 8  # the tutorial: constant
    assert lr_scale(0, 8, 0.0) == 1 and lr_scale(7, 8, 0.0) == 1 / 8


def test_with_lr_decay_both_optimizers_end_at_the_last_steps_share(work_folder):
    cfg = make_config(**TINY, lr_d=0.0004, lr_decay_start=0.5)
    train(cfg)
    checkpoint = load_checkpoint(paths.CHECKPOINT, model_spec(cfg))
    total = checkpoint["step"]
    last_share = lr_scale(total - 1, total, 0.5)
    assert last_share < 0.5
    assert checkpoint["opt_g"]["param_groups"][0]["lr"] == pytest.approx(cfg.lr * last_share)
    assert checkpoint["opt_d"]["param_groups"][0]["lr"] == pytest.approx(0.0004 * last_share)
