import gzip
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
import yaml

from dcgan import paths
from dcgan.config import Config
from dcgan.io import save_tensors

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_MIRROR = Path("/usr/share/datasets/fashion-mnist")

# The project copy is defined once, for the tests and the benchmarks, in benchmarks/project_copy.py.
sys.path.append(str(ROOT / "benchmarks"))
# project_params: params.yaml's committed values (`dvc exp run` leaves an experiment's values in the
# workspace, and the tests must not change with them).
from project_copy import copy_project, project_params  # noqa: E402

# The tests' tiny training, their one definition: 16x16 images, nets of width 8, on the CPU. On
# make_work_folder's 64 images, 4 steps an epoch: 8 steps, logged at 3, 6 and 8, grids at 0, 4 and 8,
# snapshots at 5 and 8. A test that needs other values names them at the call: {**TINY, "epochs": 150}.
TINY = dict(image_size=16, nz=8, ngf=8, ndf=8, batch_size=16, epochs=2, log_every=3, sample_every=4,
            eval_every=5, device="cpu")

# The end-to-end tests' project (the `project` fixture): TINY's nets through every stage, on the
# first 256 real images, with evaluation sizes to match.
TINY_PROJECT = {**TINY, "max_train_images": 256, "nz": 16, "batch_size": 32, "epochs": 1, "log_every": 2,
                "sample_every": 4, "eval_every": 4, "n_samples": 256, "curve_samples": 128, "classifier_epochs": 1,
                "kid_subset_size": 64, "kid_subsets": 5,
                # The tutorials' G: the session's project then keeps its best snapshot in an experiment of its own.
                "keep_g": "last"}


def make_config(**overrides) -> Config:
    """The project's params.yaml with overrides, validated like the stages do."""
    return Config(**{**project_params(), **overrides})


def make_work_folder(folder: Path, params: dict | None = None) -> Path:
    """A project folder for the train stage, in-process or `python stages/train.py` run in it: 64 random
    16x16 grayscale images, preprocessed (paths.TRAIN_DATA), a .dvc folder (the project root, where
    unfinished runs keep their checkpoints) and params.yaml, the committed params with `params` over them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".dvc").mkdir(exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump({**project_params(), **(params or {})}))
    images = torch.randint(0, 256, (64, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    save_tensors(folder / paths.TRAIN_DATA, {"images": images, "labels": torch.zeros(64, dtype=torch.int64)})
    return folder


@pytest.fixture
def work_folder(tmp_path, monkeypatch) -> Path:
    """make_work_folder(tmp_path) as the current folder, with its own MLflow store (no
    MLFLOW_TRACKING_URI or DVC_ROOT from outside)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return make_work_folder(tmp_path)


def write_idx_images(path: Path, images: np.ndarray, compress: bool = False) -> None:
    """IDX3 as in the MNIST family: magic 2051, count, rows, cols, then uint8 pixels."""
    payload = struct.pack(">IIII", 2051, *images.shape) + images.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


def write_idx_labels(path: Path, labels: np.ndarray, compress: bool = False) -> None:
    payload = struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


@pytest.fixture
def tiny_mirror(tmp_path):
    """A four-file mirror in the real IDX format (gzipped like Debian's), with random images."""
    rng = np.random.default_rng(0)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_idx_images(mirror / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)), compress=True)
    write_idx_labels(mirror / "train-labels-idx1-ubyte.gz", np.arange(60) % 10, compress=True)
    write_idx_images(mirror / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)), compress=True)
    write_idx_labels(mirror / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10, compress=True)
    return mirror


requires_fashion_mnist = pytest.mark.skipif(
    not DEBIAN_MIRROR.is_dir(),
    reason="needs Debian's dataset-fashion-mnist (the setup installs it: apt-get install dataset-fashion-mnist)")


# The MLflow UI tests' browser: Debian's chromium, driven by playwright (no browser download works here).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "reports" / "ui"
WAIT_MS = 30_000  # every wait in the page is bounded
requires_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium (apt-get install chromium; scripts/setup.sh installs it as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(server: subprocess.Popen, url: str, what: str, deadline: float) -> None:
    """Poll `url` until it answers; fail, with what the server wrote to a piped stderr, if `server`
    exits first or time.monotonic() passes `deadline`."""
    while True:
        if server.poll() is not None:
            errors = server.stderr.read() if server.stderr else ""
            errors = errors.decode() if isinstance(errors, bytes) else errors
            raise AssertionError(f"{what} exited:\n{errors[-3000:]}")
        assert time.monotonic() < deadline, f"{what} did not answer {url} in time"
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)


@contextmanager
def serving(args: list[str], url: str, what: str, wait: float = 120, **popen) -> Iterator[subprocess.Popen]:
    """A server started on 127.0.0.1 (its own process group), answering `url` within `wait` seconds, and
    killed when the block ends, even when an assertion in it fails. Its output goes to a file, not to a
    pipe that nobody reads (a chatty server would block on a full one); a failed start shows its end."""
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(args, start_new_session=True, stdout=log, stderr=subprocess.STDOUT, **popen)
        try:
            try:
                wait_for_http(server, url, what, time.monotonic() + wait)
            except AssertionError as error:
                log.seek(0)
                raise AssertionError(f"{error}\n{log.read()[-3000:]}") from None
            yield server
        finally:
            os.killpg(server.pid, 9)
            server.wait(timeout=30)


def mlflow_server(backend_store_uri: str, port: int, *options: str, wait: float = 120, **popen):
    """`mlflow server` on 127.0.0.1:port, one worker unless `options` say otherwise (a test's server
    answers in about half the time on a busy machine with one)."""
    workers = [] if "--workers" in options else ["--workers", "1"]
    return serving([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_store_uri, "--host",
                    "127.0.0.1", "--port", str(port), *workers, *options], f"http://127.0.0.1:{port}/health",
                   "mlflow server", wait, **popen)


@contextmanager
def generator_server(model_uri: str, env: dict, wait: float = 120, **popen) -> Iterator:
    """`mlflow models serve` of a logged generator on a free loopback port; yields ask(latents) -> the
    served images (MLflow's `predictions`), and stops the server when the block ends."""
    port = free_port()
    args = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
            "--host", "127.0.0.1", "--port", str(port)]

    def ask(latents: list) -> list:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                         data=json.dumps({"inputs": latents}).encode(),
                                         headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"]

    with serving(args, f"http://127.0.0.1:{port}/ping", "mlflow models serve", wait, env=env, **popen):
        yield ask


def stop_queue(copy: Path, env: dict) -> None:
    """DVC's queue of a test's project stopped, its running experiments killed: no worker outlives a test."""
    subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=copy, env=env, capture_output=True, timeout=120)


# One browser for the session's UI tests, a fresh profile (no saved view) for each test.
@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


def close_assistant(page) -> None:
    """The pinned MLflow opens its assistant panel beside every page; screenshots are clearer without it. Its
    own close button: the shared-view banner has another one, which would leave the view."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.count():
        close.first.click()


def run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def make_project(copy: Path, params: dict, cache: Path | None = None) -> tuple[Path, dict]:
    """A git repository with the project's files (not the results of local runs) and these params
    (benchmarks/project_copy.py), and the environment to run its commands in. With `cache` (the
    `prepared_stages` fixture), its DVC cache starts as a copy of that one: `dvc repro` restores the
    stages before train from DVC's run-cache where their params are the same, instead of running them."""
    copy_project(copy, params, message="tiny")
    if cache is not None:
        # Hard links: DVC never changes a file in its cache, it writes new ones.
        shutil.copytree(cache, copy / ".dvc" / "cache", copy_function=os.link, dirs_exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "1"  # tiny runs train for seconds, not minutes
    env["XDG_CACHE_HOME"] = str(copy.parent / "cache")  # the speed probe's verdicts: not the user's cache
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    return copy, env


def in_users_shell(command: str, cwd: Path, env: dict) -> str:
    """`command` in bash after `source .venv/bin/activate`, from a PATH without the project's venv."""
    venv_bin = Path(sys.executable).parent
    path = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p) != venv_bin)
    return run(["bash", "-c", f"source {venv_bin / 'activate'} && {command}"], cwd,
               {**env, "PATH": path, "VIRTUAL_ENV": ""})


@pytest.fixture(scope="session")
def prepared_stages(tmp_path_factory) -> Path:
    """DVC's cache after the stages before train ran on TINY_PROJECT's params (download, preprocess,
    prepare_eval, classifier: about 45 s, most of it the domain classifier's training), which the
    session's projects start from (make_project's `cache`). Those stages run for real here, once."""
    copy, env = make_project(tmp_path_factory.mktemp("prepared") / "project", TINY_PROJECT)
    run(["dvc", "repro", "preprocess", "classifier"], copy, env)
    return copy / ".dvc" / "cache"


@pytest.fixture(scope="session")
def repro_project(tmp_path_factory, prepared_stages):
    """A git+DVC copy of the project with tiny params, after `dvc repro`, its results committed."""
    copy, env = make_project(tmp_path_factory.mktemp("pipeline") / "project", TINY_PROJECT, prepared_stages)
    run(["dvc", "repro"], copy, env)
    run(["git", "add", "-A"], copy, env)
    run(["git", "commit", "-qm", "baseline run"], copy, env)
    return copy, env


@pytest.fixture(scope="session")
def project(repro_project):
    """repro_project after `dvc exp run -S lr=0.0001` in the workspace, and experiments in temp clones."""
    copy, env = repro_project
    # As the README has users type it: in their own shell, after `source .venv/bin/activate`.
    in_users_shell("dvc exp run -n lower-lr -S lr=0.0001", copy, env)
    # --temp runs in a throw-away clone under .dvc/tmp/exps/: its run must still land in our store.
    run(["dvc", "exp", "run", "--temp", "-n", "in-temp-clone", "-S", "lr=0.0003"], copy, env)
    # Only sample and evaluate re-run (DVC restores train from its run cache): a new MLflow run all the same.
    run(["dvc", "exp", "run", "--temp", "-n", "bn-train", "-S", "sample_bn_mode=train"], copy, env)
    # The same trained G, its best snapshot kept instead of its last: select_g, sample and evaluate re-run.
    run(["dvc", "exp", "run", "--temp", "-n", "best-g", "-S", "keep_g=best"], copy, env)
    # The fully connected baseline beside the DCGAN runs, and a folder of images without labels.
    run(["dvc", "exp", "run", "--temp", "-n", "mlp-baseline", "-S", "arch=mlp", "-S", "ngf=64", "-S", "ndf=64"],
        copy, env)
    folder = copy.parent / "my-images"
    make_image_folder(folder, 200)
    run(["dvc", "exp", "run", "--temp", "-n", "image-folder", "-S", "dataset=folder", "-S", f"path={folder}",
         "-S", "channels=1"], copy, env)
    return copy, env


def make_image_folder(folder: Path, count: int) -> None:
    """Grayscale PNG blobs of varied sizes in two subfolders, and one unreadable file."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        (folder / f"part{i % 2}").mkdir(parents=True, exist_ok=True)
        size = 20 + i % 7
        yy, xx = np.mgrid[:size, :size]
        blob = 255 * np.exp(-((xx - rng.uniform(5, 15)) ** 2 + (yy - rng.uniform(5, 15)) ** 2) / 20)
        Image.fromarray(blob.astype(np.uint8)).save(folder / f"part{i % 2}" / f"{i:04d}.png")
    (folder / "part0" / "corrupt.png").write_bytes(b"\x89PNG not really")




@pytest.fixture(params=["stdlib filter", "fallback"])
def tar_filter(request, monkeypatch) -> str:
    """Tar extraction both ways: with the stdlib's "data" filter (Python 3.12, 3.11.4+, 3.10.12+), and
    with the filter hidden, as on Debian 12's Python 3.11.2."""
    if request.param == "stdlib filter" and not hasattr(tarfile, "data_filter"):
        pytest.skip(f"Python {platform.python_version()} has no tarfile.data_filter")
    if request.param == "fallback":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param
