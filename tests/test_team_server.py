"""A team on one tracking server (docs/team.md): scripts/team-server.sh's MLflow on PostgreSQL with
basic-auth and proxied artifacts, two clones that sweep against it at once, a teammate who
reproduces from the shared git and DVC remotes without retraining, and the refusals."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import (ROOT, TINY_PROJECT, free_port, generator_server, in_users_shell, make_project,
                      requires_fashion_mnist, run, stop_queue)
from dcgan.tracking.store import EXPERIMENT

POSTGRES = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
pytestmark = [
    pytest.mark.slow, requires_fashion_mnist,
    pytest.mark.skipif(not POSTGRES, reason="needs PostgreSQL (apt-get install postgresql; scripts/setup.sh "
                                            "installs it as root)"),
]
SEEDS = {"A": (1,), "B": (2,)}  # each clone's share of the sweep, lr 0.0001 and 0.0002 for each seed: 2 runs at once
LEARNING_RATES = ("0.0001", "0.0002")


class Server:
    def __init__(self, folder: Path):
        self.folder, self.port, self.pg_port = folder, free_port(), free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "TEAM_SERVER_DIR": str(folder), "TEAM_SERVER_PORT": str(self.port),
                    "TEAM_PG_PORT": str(self.pg_port), "TEAM_SERVER_WAIT": "180"}
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                    "MLFLOW_AUTH_ADMIN_PASSWORD"):
            self.env.pop(key, None)

    def script(self, *args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "scripts/team-server.sh"), *args], env=env or self.env, text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def add_user(self, name: str, *flags: str) -> str:
        # Without the ports: the script finds the server at the ports it was started with.
        without_ports = {key: value for key, value in self.env.items()
                         if key not in ("TEAM_SERVER_PORT", "TEAM_PG_PORT")}
        printed = self.script("add-user", name, *flags, env=without_ports)
        assert printed.returncode == 0, printed.stdout + printed.stderr
        [line] = [line for line in printed.stdout.splitlines() if "MLFLOW_TRACKING_PASSWORD=" in line]
        return line.split("=", 1)[1].strip("'")

    def client_env(self, env: dict, user: str, password: str) -> dict:
        return {**env, "MLFLOW_TRACKING_URI": self.uri, "MLFLOW_TRACKING_USERNAME": user,
                "MLFLOW_TRACKING_PASSWORD": password}


def rest(uri: str, path: str, body: dict | None = None, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of one REST call: POST with a JSON body, else GET."""
    request = urllib.request.Request(uri + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def server():
    # Under /tmp, open to all: as root, the script runs PostgreSQL as Debian's `postgres` user, which
    # cannot enter pytest's own (root-only) temp folders.
    folder = Path(tempfile.mkdtemp(prefix="dcgan-team-", dir="/tmp"))
    folder.chmod(0o755)
    server = Server(folder / "server")
    started = time.monotonic()
    printed = server.script("start", timeout=400)
    try:
        assert printed.returncode == 0, printed.stdout + printed.stderr
        server.admin_password = (server.folder / "admin-password").read_text().strip()
        server.printed = printed.stdout
        print(f"team server up in {time.monotonic() - started:.0f} s:\n{printed.stdout}")
        yield server
    finally:
        stopped = server.script("stop", timeout=120)
        print(stopped.stdout, stopped.stderr)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_team_server_starts_answers_and_refuses_a_request_without_credentials(server):
    assert f"export MLFLOW_TRACKING_URI={server.uri}" in server.printed
    assert f"password {server.admin_password}" in server.printed  # printed on its first start
    assert "backend store: postgresql://mlflow@127.0.0.1" in server.printed
    assert "proxied by the server" in server.printed
    search = "/api/2.0/mlflow/experiments/search"
    status, body = rest(server.uri, search, {"max_results": 10})
    assert status == 401 and "not authenticated" in body
    assert rest(server.uri, search, {"max_results": 10}, ("admin", "not the password"))[0] == 401
    status, body = rest(server.uri, search, {"max_results": 10}, ("admin", server.admin_password))
    assert status == 200
    # The script made the team's experiments, with the server's proxied artifact root.
    experiments = {e["name"]: e for e in json.loads(body)["experiments"]}
    assert experiments[EXPERIMENT]["artifact_location"].startswith("mlflow-artifacts:")
    assert "dcgan-comparisons" in experiments
    # The backend is PostgreSQL, and the secrets are for the server's user alone.
    for name in ("admin-password", "postgres-password", "pgpass", "auth.ini", "flask-secret-key"):
        assert (server.folder / name).stat().st_mode & 0o077 == 0, name
    assert "postgresql://" in (server.folder / "auth.ini").read_text()
    assert server.admin_password not in (server.folder / "mlflow-server.log").read_text()
    again = server.script("start")
    assert again.returncode == 0 and "already running" in again.stdout


def test_a_read_only_user_sees_the_runs_but_cannot_write_to_them(server):
    viewer = server.add_user("viewer", "--read")
    writer = server.add_user("writer")
    experiment = json.loads(rest(server.uri, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT}",
                                 auth=("writer", writer))[1])["experiment"]["experiment_id"]
    status, body = rest(server.uri, "/api/2.0/mlflow/runs/create", {"experiment_id": experiment},
                        ("writer", writer))
    assert status == 200, body
    run_id = json.loads(body)["run"]["info"]["run_id"]
    status, body = rest(server.uri, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment]},
                        ("viewer", viewer))
    assert status == 200 and run_id in body
    refusals = {
        "runs/create": {"experiment_id": experiment},
        "runs/log-metric": {"run_id": run_id, "key": "x", "value": 1.0, "timestamp": 0, "step": 0},
        "runs/set-tag": {"run_id": run_id, "key": "k", "value": "v"},
        "runs/delete": {"run_id": run_id},
    }
    for endpoint, body in refusals.items():
        status, answer = rest(server.uri, f"/api/2.0/mlflow/{endpoint}", body, ("viewer", viewer))
        print(f"viewer POST {endpoint}: {status} {answer}")
        assert status == 403 and "Permission denied" in answer, endpoint
    # MLflow's own client, as the pipeline uses it, is refused the same way.
    env = server.client_env(os.environ, "viewer", viewer)
    code = ("import mlflow; c = mlflow.MlflowClient(); "
            f"c.log_metric('{run_id}', 'x', 1.0)")
    refused = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "403" in refused.stderr


def training_runs(server: Server) -> list[dict]:
    """Every run of experiment `dcgan` on the server (as admin), with its tags and params as dicts."""
    experiment = json.loads(rest(server.uri, f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={EXPERIMENT}",
                                 auth=("admin", server.admin_password))[1])["experiment"]["experiment_id"]
    runs, token = [], None
    while True:
        body = {"experiment_ids": [experiment], "max_results": 1000, **({"page_token": token} if token else {})}
        status, answer = rest(server.uri, "/api/2.0/mlflow/runs/search", body, ("admin", server.admin_password))
        assert status == 200, answer
        page = json.loads(answer)
        for found in page.get("runs", []):
            data = found["data"]
            runs.append({"info": found["info"], "tags": {t["key"]: t["value"] for t in data.get("tags", [])},
                         "params": {p["key"]: p["value"] for p in data.get("params", [])}})
        token = page.get("next_page_token")
        if not token:
            return runs


def queued(copy: Path, env: dict, seeds: tuple[int, ...]) -> None:
    run(["dvc", "exp", "run", "--queue", "-S", f"seed={','.join(map(str, seeds))}",
         "-S", f"lr={','.join(LEARNING_RATES)}"], copy, env)


@pytest.fixture(scope="module")
def clones(server, tmp_path_factory, prepared_stages):
    """Clone A (user alice) with the shared git and DVC remotes, its baseline run on the server and
    pushed; clone B (user bob) cloned from the git remote, with the baseline's data pulled."""
    folder = tmp_path_factory.mktemp("team")
    remote, storage = folder / "remote.git", folder / "dvc-remote"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    a, env = make_project(folder / "A", TINY_PROJECT, prepared_stages)
    env["OMP_NUM_THREADS"] = "1"  # two clones x two tiny runs at once, on two cores
    env_a = server.client_env(env, "alice", server.add_user("alice"))
    run(["git", "remote", "add", "origin", str(remote)], a, env_a)
    run(["dvc", "remote", "add", "-d", "shared", str(storage)], a, env_a)
    run(["dvc", "repro"], a, env_a)
    run(["git", "add", "-A"], a, env_a)
    run(["git", "commit", "-qm", "baseline run, shared remotes"], a, env_a)
    run(["git", "push", "-q", "origin", "HEAD:main"], a, env_a)
    run(["dvc", "push"], a, env_a)
    b = folder / "B"
    run(["git", "clone", "-q", "--branch", "main", str(remote), str(b)], folder, env)
    env_b = server.client_env(env, "bob", server.add_user("bob"))
    run(["dvc", "pull"], b, env_b)
    return {"A": (a, env_a), "B": (b, env_b)}


@pytest.fixture(scope="module")
def sweeps(server, clones):
    """Both clones sweep at once against the server, each with `scripts/run-queue.sh 2`."""
    for name, (copy, env) in clones.items():
        queued(copy, env, SEEDS[name])

    def sweep(name: str) -> subprocess.CompletedProcess:
        copy, env = clones[name]
        return subprocess.run(["bash", "scripts/run-queue.sh", "2"], cwd=copy, env=env, capture_output=True,
                              text=True, timeout=2400, stdin=subprocess.DEVNULL)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(2) as pool:
            results = dict(zip(clones, pool.map(sweep, clones)))
    finally:
        for copy, env in clones.values():
            stop_queue(copy, env)
    for name, printed in results.items():
        assert printed.returncode == 0, f"clone {name}:\n{printed.stdout}\n{printed.stderr}"
    sent = sum(len(seeds) * len(LEARNING_RATES) for seeds in SEEDS.values())
    print(f"two clones, {sent} runs at -j 2 each against the team server: {time.monotonic() - started:.0f} s")
    return sent


def test_two_clones_sweeping_at_once_land_every_run_finished_and_tagged_once(server, sweeps):
    runs = [found for found in training_runs(server) if "config" in found["tags"]]
    statuses = [found["info"]["status"] for found in runs]
    pairs = [(found["params"]["lr"], found["params"]["seed"]) for found in runs]
    duplicates = len(pairs) - len(set(pairs))
    print(f"runs sent: {sweeps} (+1 baseline), on the server: {len(runs)}, FINISHED: {statuses.count('FINISHED')}, "
          f"duplicates: {duplicates}")
    expected = {(lr, str(seed)) for seeds in SEEDS.values() for seed in seeds for lr in LEARNING_RATES}
    assert sorted(pairs) == sorted(expected | {("0.0002", str(TINY_PROJECT.get("seed", 999)))})
    assert statuses == ["FINISHED"] * len(runs)
    users = {found["info"]["user_id"] for found in runs}  # MLflow's User column: who signed in
    assert users == {"alice", "bob"}, users
    assert {found["tags"]["config_name"] for found in runs} == {"baseline", "lr=0.0001"}


def test_image_charts_and_the_generator_load_back_through_the_proxied_artifact_store(server, clones, sweeps):
    _, env = clones["B"]
    [baseline] = [found for found in training_runs(server) if found["params"].get("seed") == "999"]
    code = f"""
import mlflow, torch
client = mlflow.MlflowClient()
run_id = "{baseline['info']['run_id']}"
assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:"), client.get_run(run_id).info.artifact_uri
images = [f.path for f in client.list_artifacts(run_id, "images")]
assert any("grid" in path for path in images), images
local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=images[0])
generator = mlflow.pytorch.load_model(f"runs:/{{run_id}}/generator")
out = generator(torch.randn(3, {TINY_PROJECT['nz']}))
print("image charts:", len(images), "generator out:", tuple(out.shape))
"""
    printed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert f"generator out: (3, 1, {TINY_PROJECT['image_size']}, {TINY_PROJECT['image_size']})" in printed.stdout
    # Served from the server, as docs/mlflow.md has it, with the teammate's credentials.
    with generator_server(f"runs:/{baseline['info']['run_id']}/generator", env, wait=180) as ask:
        predictions = ask([[0.1] * TINY_PROJECT["nz"]] * 2)
    assert len(predictions) == 2 and len(predictions[0]) == 1


def test_a_teammate_reproduces_from_the_shared_remotes_without_running_a_stage(server, clones, sweeps):
    a, env_a = clones["A"]
    b, env_b = clones["B"]
    run(["dvc", "exp", "push", "origin", "-A"], a, env_a)  # the experiments' git refs, and their outputs
    run(["dvc", "push", "--run-cache"], a, env_a)  # the run-cache: every stage run's record
    runs_before = len(training_runs(server))
    started = time.monotonic()
    run(["dvc", "exp", "pull", "origin", "-A"], b, env_b)
    run(["dvc", "pull", "--run-cache"], b, env_b)
    printed = in_users_shell("dvc exp run -S seed=1 -S lr=0.0001", b, env_b)  # one of clone A's runs
    seconds = time.monotonic() - started
    for stage in ("train", "select_g", "sample", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in printed, printed[-3000:]
    assert "Running stage" not in printed, printed[-3000:]
    assert len(training_runs(server)) == runs_before  # nothing trained, no run logged
    metrics = json.loads((b / "reports/metrics.json").read_text())
    run_id = json.loads((b / "models/mlflow_run.json").read_text())["run_id"]
    on_server = {found["info"]["run_id"]: found for found in training_runs(server)}
    assert run_id in on_server and on_server[run_id]["params"]["seed"] == "1"
    assert metrics["scores"]["fd_classifier"] > 0
    print(f"clone B reproduced clone A's (lr=0.0001, seed 1) in {seconds:.0f} s without running a stage")
    # Clone B compares from the server: both clones' seeds.
    compared = in_users_shell("dcgan-compare --no-mlflow", b, env_b)
    result = json.loads((b / "reports/compare/comparison.json").read_text())
    seeds = sum(len(shared) for shared in SEEDS.values())
    assert {config["name"]: config["n_seeds"] for config in result["configurations"]} == {
        "baseline": seeds + 1, "lr=0.0001": seeds}, compared


def files_of(copy: Path) -> dict[str, float]:
    return {str(path.relative_to(copy)): path.stat().st_mtime for path in copy.rglob("*")
            if path.is_file() and not {".git", "tmp", "__pycache__"} & set(path.relative_to(copy).parts)}


@pytest.mark.parametrize("problem", ["wrong password", "no credentials", "server stopped"])
def test_a_refused_or_unreachable_server_stops_training_before_anything_is_written(server, clones, sweeps, problem):
    b, env_b = clones["B"]
    env = dict(env_b)
    if problem == "wrong password":
        env["MLFLOW_TRACKING_PASSWORD"] = "not bob's password"
    elif problem == "no credentials":
        del env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]
    else:
        env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    before, runs_before = files_of(b), len(training_runs(server))
    started = time.monotonic()
    printed = subprocess.run([sys.executable, "stages/train.py"], cwd=b, env={**env, "PYTHONPATH": "src"},
                             capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    print(f"{problem}: exit {printed.returncode} in {seconds:.1f} s: {printed.stderr.strip()}")
    assert printed.returncode == 2
    [message] = [line for line in printed.stderr.splitlines() if line.strip()]
    expected = {"wrong password": "set MLFLOW_TRACKING_PASSWORD", "no credentials": "set MLFLOW_TRACKING_USERNAME",
                "server stopped": "cannot be reached"}[problem]
    assert message.startswith("error: ") and expected in message
    assert files_of(b) == before and len(training_runs(server)) == runs_before
    assert seconds < 60  # a refusal is not retried as an outage
