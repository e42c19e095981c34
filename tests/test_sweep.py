"""A sweep over seeds, as the README has users run it: 2 configurations x 3 seeds through DVC's queue
with two workers at once, on the project's SQLite store; then dcgan-compare on what MLflow holds."""

import json
import re
import subprocess
import time

import mlflow
import pytest

from conftest import TINY_PROJECT, in_users_shell, make_project, requires_fashion_mnist, run, stop_queue
from dcgan.tracking.store import EXPERIMENT

pytestmark = [pytest.mark.slow, requires_fashion_mnist]
SEEDS, LEARNING_RATES = (1, 2, 3), ("0.0001", "0.0002")
HEADLINE = ("fd_classifier", "kid_classifier", "precision_classifier", "recall_classifier", "coverage_classifier",
            "pixel_intensity_emd")  # metric_keys.HEADLINE_SCORES less the Inception scores, which a CPU run has not


def queue_states(copy, env) -> list[str]:
    """The state of each experiment `dvc queue status` lists (Queued, Running, Success, Failed)."""
    lines = run(["dvc", "queue", "status"], copy, env).splitlines()
    return [line.split()[-1] for line in lines if re.match(r"[0-9a-f]{7} ", line)]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, prepared_stages):
    copy, env = make_project(tmp_path_factory.mktemp("sweep") / "project", TINY_PROJECT, prepared_stages)
    env["OMP_NUM_THREADS"] = "1"  # two tiny runs at once on two cores
    # The stages every run shares, once (as `make pipeline` leaves them): two experiments that run the
    # same stage at once race on DVC's cache ("unable to remove ... without a confirmation").
    run(["dvc", "repro", "classifier"], copy, env)
    run(["dvc", "exp", "run", "--queue", "-S", f"seed=range({SEEDS[0]},{SEEDS[-1] + 1})",
         "-S", f"lr={','.join(LEARNING_RATES)}"], copy, env)
    assert queue_states(copy, env) == ["Queued"] * 6
    started = time.monotonic()
    try:
        printed = subprocess.run(["bash", "scripts/run-queue.sh", "2"], cwd=copy, env=env, capture_output=True,
                                 text=True, timeout=1500, stdin=subprocess.DEVNULL)
        assert printed.returncode == 0, printed.stdout + printed.stderr
    finally:
        stop_queue(copy, env)
    assert queue_states(copy, env) == ["Success"] * 6
    print(f"sweep of 6 tiny runs with -j 2: {time.monotonic() - started:.0f} s; {printed.stderr.strip()}")
    return copy, env


def training_runs(copy) -> list:
    mlflow.set_tracking_uri(f"sqlite:///{copy / 'mlflow.db'}")
    try:
        return [run for run in mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list")
                if "config" in run.data.tags]
    finally:
        mlflow.set_tracking_uri(None)


def test_every_run_of_a_parallel_sweep_lands_finished_and_tagged(sweep):
    copy, _ = sweep
    runs = training_runs(copy)
    assert len(runs) == 6 and {run.info.status for run in runs} == {"FINISHED"}
    pairs = {(run.data.params["lr"], run.data.params["seed"]) for run in runs}
    assert pairs == {(lr, str(seed)) for lr in LEARNING_RATES for seed in SEEDS}
    names = {run.data.params["lr"]: run.data.tags["config_name"] for run in runs}
    assert names == {"0.0001": "lr=0.0001", "0.0002": "baseline"}
    assert len({run.data.tags["config"] for run in runs}) == 2


def test_dcgan_compare_gives_both_configurations_three_seeds_and_a_verdict_per_score(sweep):
    copy, env = sweep
    printed = in_users_shell("dcgan-compare", copy, env)  # the baseline: params.yaml at HEAD, lr=0.0002
    result = json.loads((copy / "reports/compare/comparison.json").read_text())
    assert {config["name"]: config["n_seeds"] for config in result["configurations"]} == {
        "baseline": 3, "lr=0.0001": 3}
    [against] = result["against_baseline"]
    assert against["name"] == "lr=0.0001" and set(against["scores"]) == set(HEADLINE)
    for score, entry in against["scores"].items():
        assert entry["verdict"] in ("better", "worse", "can't tell with these seeds"), score
        assert entry["ci95_welch"][0] <= entry["difference"] <= entry["ci95_welch"][1]
    for score in HEADLINE:
        assert any(line.startswith(f"| {score} (") and ("better" in line or "can't tell" in line or "worse" in line)
                   for line in printed.splitlines()), score
    assert (copy / "reports/compare/comparison.md").read_text() in printed
    assert (copy / "reports/compare/comparison.png").stat().st_size > 10_000
    # Logged beside the training runs' experiment, not in it: no seed run more.
    assert len(training_runs(copy)) == 6
    assert "logged to MLflow: experiment 'dcgan-comparisons'" in printed


def test_running_one_config_and_seed_again_restores_it_and_counts_it_once(sweep):
    copy, env = sweep
    printed = run(["dvc", "exp", "run", "-S", "seed=2", "-S", "lr=0.0001"], copy, env)
    for stage in ("train", "select_g", "sample", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in printed, printed[-3000:]
    assert len(training_runs(copy)) == 6
    run(["dcgan-compare", "--no-mlflow"], copy, env)
    result = json.loads((copy / "reports/compare/comparison.json").read_text())
    assert [config["n_seeds"] for config in result["configurations"]] == [3, 3]
