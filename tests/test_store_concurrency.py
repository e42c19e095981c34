"""Several pipeline processes on one new store at once, as `dvc queue start -j 2` starts them: the
project's SQLite file, or a tracking server on 127.0.0.1."""

from __future__ import annotations

import multiprocessing
import queue
import time

import mlflow
import pytest
from mlflow.entities import Metric

from conftest import free_port, mlflow_server

from dcgan.paths import project_root
from dcgan.tracking import store

PROCESSES, RUNS, STEPS = 4, 2, 200


def _pipeline(worker: int, barrier, results) -> None:
    """What a train stage does with the store: open it, find or make the experiment, log runs."""
    try:
        barrier.wait(timeout=60)  # all at once on the still missing store: that is the race
        tracking = store.connect()
        experiment = store.experiment_id(tracking)
        client = tracking.MlflowClient()
        artifact = project_root() / f"note-{worker}.txt"
        artifact.write_text(f"worker {worker}\n")
        for index in range(RUNS):
            run_id = client.create_run(experiment, tags={"worker": str(worker), "index": str(index)}).info.run_id
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (step + 1), now, step) for step in range(STEPS)])
            client.set_tag(run_id, "stage", "evaluated")
            client.log_artifact(run_id, str(artifact))
            client.set_terminated(run_id, "FINISHED")
        results.put((worker, None))
    except BaseException as exc:  # reported to the test, which would otherwise only see an exit code
        results.put((worker, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))


@pytest.fixture(params=["project store", "tracking server"])
def tracking(request, tmp_path, monkeypatch):
    """The client URI of the store the processes share: the project's SQLite file, or an `mlflow server`
    on 127.0.0.1 with a new SQLite store of its own and two workers (stopped afterwards)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # the project root, so the store is tmp_path/mlflow.db
    if request.param == "project store":
        yield store.local_store_uri()
        return
    port = free_port()
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", port, "--workers", "2", cwd=tmp_path):
        uri = f"http://127.0.0.1:{port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


def test_concurrent_processes_create_the_store_and_log_every_run(tracking):
    # fork: the children start in milliseconds and already have mlflow imported (seconds of CPU each otherwise)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    workers = [context.Process(target=_pipeline, args=(worker, barrier, results)) for worker in range(PROCESSES)]
    for process in workers:
        process.start()
    try:
        errors = {}
        for _ in workers:
            worker, error = results.get(timeout=90)
            if error:
                errors[worker] = error
    except queue.Empty:
        errors = {"timeout": "a process neither finished nor failed within 90 s"}
    finally:
        for process in workers:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    assert not errors, errors

    client = mlflow.MlflowClient(tracking)
    experiment = client.get_experiment_by_name(store.EXPERIMENT)
    assert experiment.tags[store.EXPERIMENT_KIND_TAG] == store.EXPERIMENT_KIND
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert sorted((run.data.tags["worker"], run.data.tags["index"]) for run in runs) == sorted(
        (str(worker), str(index)) for worker in range(PROCESSES) for index in range(RUNS))
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["stage"] == "evaluated"
        assert len(client.get_metric_history(run.info.run_id, "loss")) == STEPS
        assert [item.path for item in client.list_artifacts(run.info.run_id)] == [f"note-{run.data.tags['worker']}.txt"]
