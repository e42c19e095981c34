import os
import pickle

import pytest
import torch

from conftest import make_config
from dcgan.checkpoint import load_checkpoint, save_checkpoint
from dcgan.errors import CheckpointError
from dcgan.io import load_tensors, save_tensors
from dcgan.models import build_models, model_spec


def write_checkpoint(path, cfg):
    generator, discriminator = build_models(cfg)
    opt_g = torch.optim.Adam(generator.parameters())
    opt_d = torch.optim.Adam(discriminator.parameters())
    save_checkpoint(path, spec=model_spec(cfg), generator=generator, discriminator=discriminator,
                    opt_g=opt_g, opt_d=opt_d, step=10, epoch=1, mlflow_run_id="abc")
    return generator


def test_round_trip(tmp_path):
    cfg = make_config(image_size=16, ngf=8, ndf=8)
    generator = write_checkpoint(tmp_path / "c.pt", cfg)
    checkpoint = load_checkpoint(tmp_path / "c.pt", model_spec(cfg))
    assert checkpoint["step"] == 10 and checkpoint["mlflow_run_id"] == "abc"
    for name, tensor in generator.state_dict().items():
        assert torch.equal(checkpoint["generator"][name], tensor)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_a_checkpoint_of_another_model_names_both(tmp_path):
    write_checkpoint(tmp_path / "c.pt", make_config(image_size=16, ngf=8, ndf=8))
    with pytest.raises(CheckpointError, match="image_size: checkpoint 16 vs params 32.*ngf: checkpoint 8 vs params 16"):
        load_checkpoint(tmp_path / "c.pt", model_spec(make_config(image_size=32, ngf=16, ndf=8)))


class Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned",))


def test_a_crafted_pickle_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pt", "wb") as f:
        pickle.dump({"format_version": 1, "payload": Exploit()}, f)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint("evil.pt", {})
    assert not (tmp_path / "pwned").exists()


def test_truncated_and_missing_checkpoints(tmp_path):
    cfg = make_config(image_size=16, ngf=8, ndf=8)
    write_checkpoint(tmp_path / "c.pt", cfg)
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "c.pt", model_spec(cfg))
    with pytest.raises(CheckpointError, match="dvc repro train"):
        load_checkpoint(tmp_path / "missing.pt", model_spec(cfg))


def test_a_run_folder_is_held_by_one_training_at_a_time(tmp_path):
    from dcgan.checkpoint import RunFolder
    from dcgan.errors import UserError

    first = RunFolder(tmp_path, {"lr": 0.0002})
    first.lock()
    with pytest.raises(UserError, match=rf"already running \(pid {os.getpid()}\).*Wait for it to finish"):
        RunFolder(tmp_path, {"lr": 0.0002}).lock()
    RunFolder(tmp_path, {"lr": 0.0001}).lock()  # other params: another folder, free
    first._lock_file.close()  # the process holding it ended
    RunFolder(tmp_path, {"lr": 0.0002}).lock()


def test_the_same_tensors_saved_twice_are_the_same_bytes(tmp_path):
    """DVC hashes outputs by their bytes: a stage that writes what it wrote before must leave the
    stages after it cached (and a resumed training's data digest unchanged)."""
    data = {"images": torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16), "labels": torch.zeros(1)}
    save_tensors(tmp_path / "first.pt", data)
    save_tensors(tmp_path / "second" / "train.pt", data)
    assert (tmp_path / "first.pt").read_bytes() == (tmp_path / "second" / "train.pt").read_bytes()
    assert torch.equal(load_tensors(tmp_path / "first.pt")["images"], data["images"])
