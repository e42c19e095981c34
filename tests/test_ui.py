"""The MLflow UI as a user sees it, in a real browser (Debian's chromium, driven by playwright):
`make ui`'s URL lands on the runs of the model-training view, the compare page shows both learning
rates, the chart view opens on the training's section with the fixed-noise grids as image charts,
and a run's page shows its logged generator and its data set. Screenshots go to reports/ui/."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import pytest

from conftest import (SCREENSHOTS, WAIT_MS, close_assistant, free_port, requires_chromium, requires_fashion_mnist,
                      wait_for_http)

pytestmark = [pytest.mark.slow, requires_fashion_mnist, requires_chromium]


@pytest.fixture(scope="module")
def ui(request):
    """`make ui`'s command on a free port, in the project copy: (the URL it prints, the base URL, copy).
    DCGAN_UI_PROJECT=<folder> points it at a real project instead (after `make pipeline` and
    `dvc exp run -S lr=0.0001`): how the README's screenshots were taken."""
    if os.environ.get("DCGAN_UI_PROJECT"):
        copy, env = Path(os.environ["DCGAN_UI_PROJECT"]).resolve(), dict(os.environ)
    else:
        copy, env = request.getfixturevalue("project")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "dcgan.servers.ui", "--port", str(port)], cwd=copy, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        printed = ""
        deadline = time.monotonic() + 120
        while "open " not in printed:  # the URL comes before MLflow starts
            assert server.poll() is None and time.monotonic() < deadline, f"make ui's command failed:\n{printed}"
            printed += server.stdout.readline()
        url = re.search(r"open (\S+)", printed).group(1)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(server, f"{base}/health", "mlflow ui", deadline)
        yield url, base, copy
    finally:  # stopped even when an assertion fails
        os.killpg(server.pid, 9)
        server.wait(timeout=30)


def two_runs(copy: Path) -> dict[str, object]:
    """The runs of `dvc repro` (lr 0.0002) and `dvc exp run -S lr=0.0001`, by lr."""
    mlflow.set_tracking_uri(f"sqlite:///{copy / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["dcgan"], output_format="list",
                              filter_string="params.arch = 'dcgan' and params.sample_bn_mode = 'eval' "
                                            "and params.dataset = 'fashion_mnist'")
    return {run.data.params["lr"]: run for run in runs if run.data.params["lr"] in ("0.0001", "0.0002")}


def test_make_ui_url_opens_the_runs_of_the_model_training_view(ui, page):
    url, _, copy = ui
    runs = two_runs(copy)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/#/experiments/\d+/runs\?workflowType=machine_learning", url)
    page.goto(url)
    for run in runs.values():
        page.get_by_text(run.info.run_name, exact=True).first.wait_for()
    assert "/runs" in page.url and "workflowType=machine_learning" in page.url
    sidebar = page.locator("nav, aside").first.inner_text() if page.locator("nav, aside").count() else ""
    body = page.inner_text("body")
    assert "Training runs" not in body and "Overview" not in sidebar  # the GenAI view's pages are not shown
    close_assistant(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "runs.png")


def test_the_compare_page_shows_both_learning_rates(ui, page):
    _, base, copy = ui
    runs = two_runs(copy)
    ids = [run.info.run_id for run in runs.values()]
    experiment = next(iter(runs.values())).info.experiment_id
    page.goto(f"{base}/#/compare-runs?runs={json.dumps(ids)}&experiments={json.dumps([experiment])}")
    page.get_by_text("0.0001", exact=True).first.wait_for()
    page.get_by_text("0.0002", exact=True).first.wait_for()
    for run in runs.values():
        page.get_by_text(run.info.run_name).first.wait_for()
    close_assistant(page)
    page.screenshot(path=SCREENSHOTS / "compare.png", full_page=True)


def test_the_chart_view_opens_on_the_training_section_with_both_runs_grids(ui, page):
    url, _, copy = ui
    ids = [run.info.run_id for run in two_runs(copy).values()]
    only_these = urllib.parse.quote(f"attributes.run_id IN ('{ids[0]}', '{ids[1]}')")
    page.set_viewport_size({"width": 1600, "height": 1900})
    page.goto(f"{url}&compareRunsMode=CHART&searchFilter={only_these}")
    page.get_by_text("gan/loss_d", exact=True).first.wait_for()
    page.get_by_text("gan/d_x", exact=True).first.wait_for()
    page.get_by_text("2 matching runs").first.wait_for()
    # Section headers read "<name>" then "(<charts>)": the training's comes first.
    lines = [line.strip() for line in page.inner_text("body").splitlines() if line.strip()]
    sections = [lines[i] for i in range(len(lines) - 1) if re.fullmatch(r"\(\d+\)", lines[i + 1])]
    assert sections[:3] == ["gan", "samples", "scores"], sections
    # The fixed-noise grid is an image chart: both runs' grids load (at the slider's step, 0 at first).
    page.wait_for_function("() => [...document.images].filter(i => i.src.includes('fixed_noise_grid')"
                           " && i.complete && i.naturalWidth > 0).length >= 2", timeout=WAIT_MS)
    close_assistant(page)
    page.screenshot(path=SCREENSHOTS / "charts.png")


def test_a_runs_page_shows_its_logged_generator_and_its_data(ui, page):
    _, base, copy = ui
    run = two_runs(copy)["0.0001"]
    page.goto(f"{base}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    page.get_by_text("generator", exact=True).first.wait_for()
    page.get_by_text("fashion_mnist-train", exact=False).first.wait_for()
    page.get_by_text("0.0002 → 0.0001", exact=False).first.wait_for()  # the description (markdown)
    close_assistant(page)
    page.screenshot(path=SCREENSHOTS / "run.png", full_page=True)
