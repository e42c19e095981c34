"""End to end: `dvc repro`, `dvc exp run -S lr=0.0001` and a `--temp` run, in a copy of the project."""

import csv
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from conftest import (ROOT, TINY_PROJECT, in_users_shell, make_config, make_project, requires_fashion_mnist, run,
                      stop_queue)
from dcgan import paths
from dcgan.io import load_tensors
from dcgan.models import build_generator

@pytest.mark.slow
@requires_fashion_mnist
def test_dvc_exp_show_lists_both_learning_rates_and_scores(project):
    copy, env = project
    rows = json.loads(run(["dvc", "exp", "show", "--json"], copy, env))
    found = {}

    def collect(node):  # dvc's JSON nests experiments under their baseline commit
        if isinstance(node, dict):
            data = node.get("data") or {}
            lr = data.get("params", {}).get("params.yaml", {}).get("data", {}).get("lr")
            metrics = data.get("metrics", {}).get(str(paths.METRICS), {}).get("data", {})
            if lr is not None and "fd_classifier" in metrics.get("scores", {}):
                found[lr] = metrics["scores"]["fd_classifier"]
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(rows)
    assert {0.0002, 0.0001, 0.0003} <= set(found), found


@pytest.mark.slow
@requires_fashion_mnist
def test_the_readmes_commands_work_as_typed_after_activating_the_venv(project):
    copy, env = project
    # COLUMNS: a terminal wide enough for the table (rich cuts the experiment names in a narrow one)
    shown = in_users_shell("COLUMNS=250 dvc exp show --only-changed --no-pager && dvc metrics diff && mlflow --version",
                           copy, env)
    assert "lower-lr" in shown and "mlflow, version" in shown


@pytest.mark.slow
@requires_fashion_mnist
def test_each_pipeline_run_is_one_mlflow_run_with_everything(project):
    copy, _ = project
    mlflow.set_tracking_uri(f"sqlite:///{copy / 'mlflow.db'}")
    runs = [mlflow_run for mlflow_run in mlflow.search_runs(experiment_names=["dcgan"], output_format="list")
            if mlflow_run.data.params["arch"] == "dcgan" and mlflow_run.data.params["dataset"] == "fashion_mnist"
            and mlflow_run.data.params["sample_bn_mode"] == "eval" and mlflow_run.data.params["keep_g"] == "last"]
    assert sorted(mlflow_run.data.params["lr"] for mlflow_run in runs) == ["0.0001", "0.0002", "0.0003"]
    client = mlflow.MlflowClient()
    for mlflow_run in runs:
        assert mlflow_run.info.status == "FINISHED"
        for name in ("gan/loss_d", "gan/loss_g", "gan/d_x", "gan/d_g_z_before_d_step", "gan/d_g_z_after_d_step"):
            assert len(client.get_metric_history(mlflow_run.info.run_id, name)) > 1, name
        for name in ("scores/fd_classifier", "scores_floor/fd_classifier", "scores/kid_classifier",
                     "scores_sample_spread/kid_classifier", "scores_floor/recall_classifier", "setup/n_generated"):
            assert math.isfinite(mlflow_run.data.metrics[name]), name
        assert not [name for name in mlflow_run.data.metrics if "/" not in name]  # every value in a section
        steps = [m.step for m in client.get_metric_history(mlflow_run.info.run_id, "scores_over_training/fd_classifier")]
        assert steps == [4, 8]
        images = [a.path for folder in ("train_grids", "samples", "figures")
                  for a in client.list_artifacts(mlflow_run.info.run_id, folder)]
        assert any(p.endswith(".png") for p in images) and any(p.endswith(".gif") for p in images), images
        assert any(p.endswith("class_histogram.png") for p in images), images
        # Image charts: the fixed-noise grid at each sample_every step, the final samples at the last step.
        charts = [a.path.removeprefix("images/") for a in client.list_artifacts(mlflow_run.info.run_id, "images")]
        grid_steps = {int(name.split("+step+")[1].split("+")[0]) for name in charts
                      if name.startswith("gan~fixed_noise_grid+")}
        assert grid_steps == {0, 4, 8}, charts  # step 0: the untrained G
        assert any(name.startswith("samples~grid+step+8+") for name in charts), charts
        assert any(name.startswith("samples~real_vs_fake+step+8+") for name in charts), charts
        assert mlflow_run.data.tags["mlflow.loggedImages"] == "True"
        assert any(name.startswith("system/cpu_utilization_percentage") for name in mlflow_run.data.metrics)
        assert Path(mlflow_run.info.artifact_uri.removeprefix("file://")).is_relative_to(copy / "mlartifacts")
    by_lr = {mlflow_run.data.params["lr"]: mlflow_run for mlflow_run in runs}
    assert by_lr["0.0001"].info.run_name == "lower-lr"
    assert by_lr["0.0001"].data.tags["dvc_exp_name"] == "lower-lr"
    assert by_lr["0.0002"].data.tags["dvc_exp_name"] == "(workspace)"
    assert by_lr["0.0003"].info.run_name == "in-temp-clone"


def runs_by_name(copy: Path) -> dict:
    """The runs of the copy's MLflow store by run name (the DVC experiment's)."""
    mlflow.set_tracking_uri(f"sqlite:///{copy / 'mlflow.db'}")
    return {run.info.run_name: run for run in mlflow.search_runs(experiment_names=["dcgan"], output_format="list")}


@pytest.mark.slow
@requires_fashion_mnist
def test_a_variant_that_reuses_a_trained_g_gets_its_own_run_and_leaves_the_other_intact(project):
    copy, _ = project
    runs = runs_by_name(copy)
    derived, trained = runs["bn-train"], runs["lower-lr"]
    assert derived.data.tags["derived_from_run"] == trained.info.run_id  # train came from DVC's run cache
    assert derived.data.tags["changed_params"] == "sample_bn_mode"
    assert derived.data.params["sample_bn_mode"] == "train" and trained.data.params["sample_bn_mode"] == "eval"
    client = mlflow.MlflowClient()
    assert len(client.get_metric_history(derived.info.run_id, "loss_d")) == \
        len(client.get_metric_history(trained.info.run_id, "loss_d"))  # its training curves came along
    assert math.isfinite(derived.data.metrics["scores/fd_classifier"])
    assert "`sample_bn_mode`: eval → train" in derived.data.tags["mlflow.note.content"]
    assert {d.dataset.digest for d in derived.inputs.dataset_inputs} >= \
        {d.dataset.digest for d in trained.inputs.dataset_inputs}  # what it was trained on came along
    # The trained run keeps its own scores: the workspace holds lower-lr's results (--temp runs leave it).
    workspace_metrics = json.loads((copy / paths.METRICS).read_text())
    assert trained.data.metrics["scores/fd_classifier"] == pytest.approx(workspace_metrics["scores"]["fd_classifier"])
    assert len(client.get_metric_history(trained.info.run_id, "scores/fd_classifier")) == 1


@pytest.mark.slow
@requires_fashion_mnist
def test_keeping_the_best_g_reuses_the_training_and_keeps_the_snapshot_best_on_validation(project):
    copy, _ = project
    runs = runs_by_name(copy)
    best, last = runs["best-g"], runs["lower-lr"]
    assert best.data.tags["derived_from_run"] == last.info.run_id  # train came from DVC's run cache
    assert best.data.tags["changed_params"] == "keep_g"
    # keep_g is part of a configuration: the two are compared as two, not as seeds of one.
    assert best.data.tags["config"] != last.data.tags["config"] and "keep_g=best" in best.data.tags["config_name"]
    client = mlflow.MlflowClient()
    curve = {m.step: m.value for m in client.get_metric_history(best.info.run_id, "scores_over_training/fd_classifier")}
    assert sorted(curve) == [4, 8]
    chosen = int(best.data.metrics["selection/chosen_step"])
    assert chosen == min(curve, key=lambda step: (curve[step], -step))
    assert best.data.metrics["selection/chosen_validation_score"] == pytest.approx(curve[chosen])
    assert best.data.metrics["selection/last_validation_score"] == pytest.approx(curve[8])
    assert last.data.metrics["selection/chosen_step"] == last.data.metrics["selection/last_step"] == 8
    # The logged model is the kept snapshot's G (the workspace holds the same training's snapshots).
    model = mlflow.pytorch.load_model(best.data.tags["generator_model_uri"])
    generator = build_generator(make_config(**TINY_PROJECT))
    generator.load_state_dict(load_tensors(copy / paths.SNAPSHOTS / f"step_{chosen:07d}.pt")["generator"])
    latents = torch.randn(3, TINY_PROJECT["nz"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(latents), generator.eval()(latents.reshape(3, -1, 1, 1)), atol=1e-5)
    assert "figures/quality_curve.png" in {a.path for a in client.list_artifacts(best.info.run_id, "figures")}


@pytest.mark.slow
@requires_fashion_mnist
def test_the_mlp_baseline_lands_in_mlflow_beside_the_dcgan_runs(project):
    copy, _ = project
    mlflow.set_tracking_uri(f"sqlite:///{copy / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["dcgan"], filter_string="params.arch = 'mlp'", output_format="list")
    assert len(runs) == 1 and runs[0].info.run_name == "mlp-baseline" and runs[0].info.status == "FINISHED"
    assert math.isfinite(runs[0].data.metrics["scores/fd_classifier"])
    generator = mlflow.pytorch.load_model(f"runs:/{runs[0].info.run_id}/generator")  # the mlp's G is a model too
    assert generator(torch.zeros(2, TINY_PROJECT["nz"])).shape == (2, 1, 16, 16)
    dcgan_runs = mlflow.search_runs(experiment_names=["dcgan"], filter_string="params.arch = 'dcgan'")
    assert len(dcgan_runs) >= 3


@pytest.mark.slow
@requires_fashion_mnist
def test_an_unlabelled_image_folder_runs_and_says_why_classifier_scores_are_skipped(project):
    copy, _ = project
    mlflow.set_tracking_uri(f"sqlite:///{copy / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["dcgan"], filter_string="params.dataset = 'folder'",
                              output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run_ = runs[0]
    assert run_.data.tags["classifier_scores"].startswith("skipped: folder has no labels")
    assert "scores/fd_classifier" not in run_.data.metrics
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_.info.run_id, artifact_path="metrics.json"))
    metrics = json.loads(local.read_text())
    assert metrics["notes"]["classifier_scores"].startswith("skipped") and metrics["setup"]["n_test"] == 100
    assert len(mlflow.MlflowClient().get_metric_history(run_.info.run_id, "gan/loss_d")) > 1


@pytest.mark.slow
@pytest.mark.smoke
@requires_fashion_mnist
def test_metrics_file_has_finite_scores_next_to_the_floor(repro_project):
    copy, _ = repro_project  # the tiny `dvc repro`: every stage ran (or, after `project`, its lr=0.0001 run)
    metrics = json.loads((copy / paths.METRICS).read_text())
    assert list(metrics) == ["gan", "scores", "scores_sample_spread", "scores_floor", "scores_floor_sample_spread",
                             "setup", "notes", "selection"]
    for score in ("fd_classifier", "kid_classifier", "precision_classifier", "recall_classifier",
                  "density_classifier", "coverage_classifier", "class_entropy_ratio", "is_classifier",
                  "pixel_intensity_emd", "near_copy_share_classifier"):
        for section in ("scores", "scores_floor"):
            assert math.isfinite(metrics[section][score]), (section, score)
    for section, spread in (("scores_sample_spread", "fd_classifier"), ("scores_sample_spread", "kid_classifier"),
                            ("scores_floor_sample_spread", "precision_classifier")):
        assert math.isfinite(metrics[section][spread]) and metrics[section][spread] >= 0, spread
    rows = list(csv.DictReader(open(copy / paths.TRAIN_LOG)))
    assert metrics["gan"]["loss_d"] == pytest.approx(float(rows[-1]["loss_d"]))  # the last logged window
    assert metrics["gan"]["images_per_second"] > 0
    assert 0 < metrics["setup"]["classifier_test_accuracy"] <= 1
    assert metrics["setup"]["n_generated"] == TINY_PROJECT["n_samples"] == metrics["setup"]["n_floor"]
    # The floor's real images took the samples' path: the training size, then eval_image_size.
    assert (metrics["setup"]["floor_image_size"], metrics["setup"]["eval_image_size"]) == (16, 32)
    assert "at 16 px" in metrics["notes"]["floor_path"] and "resized to 32 px" in metrics["notes"]["floor_path"]
    assert 0 <= metrics["scores"]["near_copy_share_classifier"] <= 1
    kept = metrics["selection"]  # keep_g: last; of the 256 training images, half are validation images
    assert (kept["keep_g"], kept["score"], kept["chosen_step"], kept["last_step"], kept["validation_images"]) == \
        ("last", "fd_classifier", 8, 8, 128)
    assert kept["chosen_validation_score"] == kept["last_validation_score"] > kept["curve_floor"] > 0
    curve = list(csv.DictReader(open(copy / paths.QUALITY_CURVE)))
    assert [int(row["step"]) for row in curve] == [4, 8]  # 256 images / batch 32 = 8 steps, every 4
    assert all(math.isfinite(float(row["fd_classifier"])) for row in curve)
    data = json.loads((copy / paths.DATA_REPORT).read_text())
    assert data["count"] == TINY_PROJECT["max_train_images"] and data["shape"] == [1, 16, 16]
    assert -1.0 <= data["normalized_min"] < 0 < data["normalized_max"] <= 1.0  # downscaling softens extremes


def experiments(copy: Path, env: dict) -> dict[str, dict]:
    """`dvc exp show --json`: each named experiment's (or commit's) params and metrics."""
    found = {}

    def collect(node):
        if isinstance(node, dict):
            if node.get("name") and isinstance(node.get("data"), dict):
                found[node["name"]] = node["data"]
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(json.loads(run(["dvc", "exp", "show", "--json"], copy, env)))
    return found


@pytest.mark.slow
@requires_fashion_mnist
def test_returning_to_earlier_params_restores_every_stage_from_the_run_cache(project):
    copy, env = project  # trained lr=0.0002 (`dvc repro`), then 0.0001 and 0.0003
    mlflow.set_tracking_uri(f"sqlite:///{copy / 'mlflow.db'}")
    runs_before = len(mlflow.search_runs(experiment_names=["dcgan"]))
    output = run(["dvc", "exp", "run", "--temp", "-n", "back-to-0.0002", "-S", "lr=0.0002"], copy, env)
    for stage in ("train", "select_g", "sample", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run" in output, output
    assert "Running stage" not in output, output
    found = experiments(copy, env)
    baseline = next(data for name, data in found.items() if name not in ("workspace",) and
                    data["params"]["params.yaml"]["data"]["lr"] == 0.0002 and name != "back-to-0.0002"
                    and "fd_classifier" in data.get("metrics", {}).get(str(paths.METRICS), {}).get("data", {}).get(
                        "scores", {}))
    restored = found["back-to-0.0002"]["metrics"][str(paths.METRICS)]["data"]
    assert restored["scores"] == baseline["metrics"][str(paths.METRICS)]["data"]["scores"]
    # Nothing ran, so MLflow has no new run: the experiment's run is the one that trained these params,
    # and the experiment's restored models/mlflow_run.json names it, so the compare view finds it.
    assert len(mlflow.search_runs(experiment_names=["dcgan"])) == runs_before
    ref = next(line for line in run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], copy, env).split()
               if line.endswith("/back-to-0.0002"))
    lock = yaml.safe_load(run(["git", "show", f"{ref}:dvc.lock"], copy, env))
    md5 = next(out["md5"] for out in lock["stages"]["train"]["outs"] if out["path"] == str(paths.MLFLOW_RUN))
    run_id = json.loads((copy / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).read_text())["run_id"]
    trained = mlflow.get_run(run_id)
    assert trained.data.params["lr"] == "0.0002" and trained.info.status == "FINISHED"


@pytest.mark.slow
@requires_fashion_mnist
def test_dvc_push_to_a_remote_then_pull_into_a_fresh_clone_restores_every_output(project, tmp_path):
    copy, env = project
    remote = tmp_path / "dvc-remote"  # a local folder; S3, GCS or Azure take a URL instead (README)
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], copy, env)
    run(["dvc", "push", "--all-commits"], copy, env)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(copy), str(clone)], tmp_path, env)
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(remote)], clone, env)
    run(["dvc", "pull"], clone, env)
    for output in (paths.CHECKPOINT, paths.TRAIN_LOG, paths.SAMPLES, paths.CLASSIFIER, paths.QUALITY_CURVE):
        assert (clone / output).is_file(), output
    status = json.loads(run(["dvc", "status", "--json"], clone, env))
    assert status == {}, status  # every stage up to date: nothing to re-run after a pull


@pytest.mark.slow
@requires_fashion_mnist
def test_killing_dvc_repro_mid_training_and_running_it_again_resumes(tmp_path, prepared_stages):
    # 320 steps (8 a epoch): the kill lands at the first checkpoint, step 20, well before the end.
    copy, env = make_project(tmp_path / "project", {**TINY_PROJECT, "epochs": 40, "checkpoint_every": 20},
                             prepared_stages)
    process = subprocess.Popen(["dvc", "repro"], cwd=copy, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while not list((copy / paths.UNFINISHED_RUNS).glob("*/step_*.pt")):
        assert process.poll() is None and time.monotonic() < deadline, "dvc repro ended before a checkpoint"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # DVC and the stage at once, as a pre-empted machine
    process.wait()
    output = run(["dvc", "repro"], copy, env)
    step = int(output.split("resuming from step ")[1].split()[0])
    assert 0 < step < 320
    assert json.loads(run(["dvc", "status", "--json"], copy, env)) == {}
    assert math.isfinite(json.loads((copy / paths.METRICS).read_text())["scores"]["fd_classifier"])


@pytest.mark.slow
@requires_fashion_mnist
def test_a_queued_experiment_whose_worker_is_killed_resumes_when_queued_again(tmp_path, prepared_stages):
    copy, env = make_project(tmp_path / "project", {**TINY_PROJECT, "epochs": 40, "checkpoint_every": 20,
                                                    "sample_every": 10_000, "eval_every": 10_000}, prepared_stages)
    env["OMP_NUM_THREADS"] = "1"  # tiny nets: one thread each leaves a core for DVC's worker
    env["SHELL"] = "/bin/sh"  # DVC runs the stage in it; dash forks, so a shell stands between the stage and DVC
    unfinished = copy / paths.UNFINISHED_RUNS

    def queue(name: str) -> None:
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", "lr=0.00015"], copy, env)
        # The worker outlives this call: it must not hold our pipes open.
        subprocess.run(["dvc", "queue", "start"], cwd=copy, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)

    def state(name: str) -> str:
        for line in run(["dvc", "queue", "status"], copy, env).splitlines():
            if f" {name} " in line:
                return line.split()[-1]
        return "?"

    def wait_for(condition, what: str, seconds: float = 600, poll: float = 0.5) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(poll)

    run(["dvc", "repro", "classifier"], copy, env)  # the stages before train, so the queued run soon trains
    try:
        queue("killed")
        wait_for(lambda: list(unfinished.glob("*/step_*.pt")), "a checkpoint of the queued run", poll=0.02)
        # Frozen, the stage cannot finish its 320 steps before the kill lands, however fast this machine:
        # the kill always hits a run mid-training. What it does on the worker's death waits for SIGCONT.
        [trainer] = _processes_running("stages/train.py", under=copy)
        os.kill(trainer, signal.SIGSTOP)
        run(["dvc", "queue", "kill", "--force", "killed"], copy, env)  # SIGKILL to the worker's experiment
        wait_for(lambda: state("killed") == "Failed", "the killed run to be marked Failed")
        os.kill(trainer, signal.SIGCONT)
        # The stage stops too (its starter's death is its SIGTERM, see dcgan.lifetime), with a checkpoint:
        # nothing keeps writing to the folder that the next run resumes from.
        folder = next(unfinished.iterdir())
        wait_for(lambda: not (folder / ".lock").exists() or _unlocked(folder / ".lock"), "the orphaned stage to stop")
        stopped_at = max(int(p.stem.removeprefix("step_")) for p in folder.glob("step_*.pt"))
        assert 0 < stopped_at < 320

        # A worker idle for 10 s shuts down, and one shutting down can take a newly queued run with it,
        # which then shows Running forever (DVC #10427): queue again once the worker is gone.
        wait_for(lambda: not _processes_running("queue-worker", under=copy), "the queue's worker to stop")
        queue("again")
        wait_for(lambda: state("again") in ("Success", "Failed"), "the queued-again run")
        logs = run(["dvc", "queue", "logs", "again"], copy, env)
        assert state("again") == "Success", logs[-3000:]
        assert f"resuming from step {stopped_at} of 320" in logs, logs[-3000:]
        assert not list(unfinished.iterdir())  # completed: its folder is gone
        scores = experiments(copy, env)["again"]["metrics"][str(paths.METRICS)]["data"]["scores"]
        assert math.isfinite(scores["fd_classifier"])
    finally:
        stop_queue(copy, env)


def _processes_running(arg: str, under: Path) -> list[int]:
    """The pids of the processes with `arg` in their command line and a working folder inside `under`
    (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = (proc / "cwd").resolve()
        except (OSError, ValueError):
            continue  # not a process, or gone meanwhile
        if arg.encode() in args and cwd.is_relative_to(under.resolve()):
            found.append(int(proc.name))
    return found


def _unlocked(lock: Path) -> bool:
    import fcntl

    with open(lock) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False


def test_every_stage_imports_the_package_of_the_checkout_it_runs_in(tmp_path):
    """A queued experiment runs in a copy of the repository: its stages must run the copy's code."""
    copy, env = make_project(tmp_path / "copy", {})
    for name, stage in yaml.safe_load((copy / "dvc.yaml").read_text())["stages"].items():
        script = f"python stages/{name}.py"
        assert stage["cmd"].endswith(script), stage["cmd"]
        probe = stage["cmd"].replace(script, "python -c 'import dcgan; print(dcgan.__file__)'")
        imported = Path(run(["sh", "-c", probe], copy, env).strip())
        assert imported.is_relative_to(copy), f"stage {name} imports dcgan from {imported}, not from {copy}"


def test_paths_in_the_package_are_the_ones_dvc_yaml_declares():
    dvc_yaml = (ROOT / "dvc.yaml").read_text()
    for name, value in vars(paths).items():
        if isinstance(value, Path) and value != paths.UNFINISHED_RUNS:  # no stage's output, on purpose
            assert f"{value}" in dvc_yaml, f"paths.{name} = {value} is not declared in dvc.yaml"
    stages = yaml.safe_load(dvc_yaml)["stages"]
    assert not [out for stage in stages.values() for out in stage.get("outs", []) if isinstance(out, dict)
                and any(spec.get("persist") for spec in out.values())]  # a persistent output ends run-caching

