"""Runs grouped by configuration in the MLflow UI, in a real browser (Debian's chromium, driven by
playwright): `make ui` saves a view in the experiment that groups the runs table by the tag
`config_name` (its seeds inside each group), and its URL opens it in the model-training view, with
one chart line per configuration in a min-max band. The view is MLflow-internal UI state (see
dcgan.servers.ui); these tests are what tells when an MLflow upgrade changes it. Screenshots go to
reports/ui/."""

import json
import re

import pytest

from conftest import SCREENSHOTS, WAIT_MS, close_assistant, free_port, mlflow_server, requires_chromium
from dcgan.servers import ui
from dcgan.tracking.store import connect, experiment_id, runs_url, tracking_uri

pytestmark = [pytest.mark.slow, requires_chromium]

# Two configurations (config: the hash of the params that shape the weights, seed excluded), three seeds each.
CONFIGS = {"baseline": "5d41402a", "lr=0.0001": "7b52009b"}
SEEDS = (0, 1, 2)
STEPS = 4


def fd_classifier(name: str, seed: int, step: int) -> float:
    """The logged score: falls with the step, a point apart between seeds, 5 points between the configs.
    At the last step, the seeds' mean is 22 for lr=0.0001 and 27 for the baseline."""
    return 30.0 - 3 * step + seed + (5 if name == "baseline" else 0)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """The project's store and experiment in tmp_path (as `make ui` finds them there), with six finished
    runs: (experiment id, {config_name: its runs' names})."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    mlflow = connect()
    experiment = experiment_id(mlflow)
    client = mlflow.MlflowClient()
    names = {}
    for name, config in CONFIGS.items():
        for seed in SEEDS:
            run = client.create_run(experiment, run_name=f"{name}-seed{seed}",
                                    tags={"config": config, "config_name": name})
            client.log_param(run.info.run_id, "seed", str(seed))
            for step in range(STEPS):
                client.log_metric(run.info.run_id, "scores/fd_classifier", fd_classifier(name, seed, step),
                                  step=step)
            client.set_terminated(run.info.run_id)  # FINISHED
            names.setdefault(name, []).append(run.info.run_name)
    return experiment, names


@pytest.fixture
def server(store, tmp_path):
    """MLflow's server on the store, on a free port: its base URL."""
    port = free_port()
    with mlflow_server(tracking_uri(), port):
        yield f"http://127.0.0.1:{port}"


def saved_view(experiment: str) -> dict:
    import mlflow

    tags = mlflow.MlflowClient().get_experiment(experiment).tags
    return json.loads(tags[ui.SHARED_VIEW_TAG_PREFIX + ui.GROUPED_VIEW_KEY])


def test_make_ui_prints_the_grouped_url_and_saves_the_view_once(store, monkeypatch, capsys):
    experiment, _ = store
    started = []
    monkeypatch.setattr(ui.os, "execv", lambda path, args: started.append(args))  # no MLflow UI: only its URLs
    ui.main(["--port", "5999"])
    printed = capsys.readouterr().out
    base = "http://127.0.0.1:5999"
    grouped = f"{base}/#/experiments/{experiment}/runs?workflowType=machine_learning&viewStateShareKey=dcgan-by-config"
    assert re.search(r"open (\S+)", printed).group(1) == runs_url(base, experiment)  # still the first URL
    assert f"runs grouped by configuration: {grouped}\n" in printed and "MLflow-internal UI state" in printed
    assert started and started[0][1] == "ui"
    view = saved_view(experiment)
    assert view["name"] == "Runs by configuration" and isinstance(view["createdAt"], int)
    state = json.loads(view["state"])
    assert state["groupBy"] == {"aggregateFunction": "average",
                                "groupByKeys": [{"mode": "tag", "groupByData": "config_name"}]}
    # Every `make ui` asks for the URL again: the tag is written only when the view changed.
    assert ui.grouped_runs_url(base, experiment) == grouped
    assert saved_view(experiment) == view


def test_the_grouped_url_opens_the_runs_grouped_by_config_name(store, server, page):
    experiment, names = store
    url = ui.grouped_runs_url(server, experiment)
    page.goto(url)
    for name in CONFIGS:
        page.get_by_text(f"Group: {name}", exact=True).first.wait_for()
    page.get_by_text("Group by: config_name").first.wait_for()
    assert "workflowType=machine_learning" in page.url  # the model-training view
    # The table's rows, in order: each group's row ("Group: <name>" and its number of runs), then its runs.
    groups, members, current = {}, {}, None
    run_names = {run: name for name, runs in names.items() for run in runs}
    for row in page.locator('[role="row"]').all_inner_texts():
        lines = [line.strip() for line in row.splitlines() if line.strip()]
        if any(line.startswith("Group: ") for line in lines):
            at = next(i for i, line in enumerate(lines) if line.startswith("Group: "))
            current = lines[at].removeprefix("Group: ")
            groups[current] = int(lines[at + 1]) if at + 1 < len(lines) and lines[at + 1].isdigit() else None
        for line in lines:
            if line in run_names:
                members.setdefault(current, set()).add(line)
    assert groups == {name: len(SEEDS) for name in CONFIGS}, groups
    assert members == {name: set(runs) for name, runs in names.items()}, members
    body = page.inner_text("body")
    assert "22 (average)" in body and "27 (average)" in body  # each group's row: its seeds' mean score
    close_assistant(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "runs_grouped_by_config.png")

    # The chart view of the same view: one line per configuration (named after it), each in a band.
    page.goto(f"{url}&compareRunsMode=CHART")
    for name in CONFIGS:
        page.get_by_text(f"{name} (scores/fd_classifier)", exact=True).first.wait_for()
    assert not page.get_by_text(re.compile(r"-seed\d \(scores/fd_classifier\)")).count()  # no run's own line
    page.wait_for_function("() => document.querySelectorAll('path.js-fill').length >= 2", timeout=WAIT_MS)
    close_assistant(page)
    page.screenshot(path=SCREENSHOTS / "runs_grouped_by_config_charts.png")
