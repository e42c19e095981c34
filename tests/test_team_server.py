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

from conftest import ROOT, TINY_PROJECT, free_port, in_users_shell, make_project, requires_fashion_mnist, run
from dcgan.tracking.store import EXPERIMENT

POSTGRES = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
pytestmark = [
    pytest.mark.slow, requires_fashion_mnist,
    pytest.mark.skipif(not POSTGRES, reason="needs PostgreSQL (apt-get install postgresql; scripts/setup.sh "
                                            "installs it as root)"),
]
SEEDS = {"A": (1, 2), "B": (3, 4)}  # each clone's share of the sweep, lr 0.0001 and 0.0002 for each seed
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

    def script(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "scripts/team-server.sh"), *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def add_user(self, name: str, *flags: str) -> str:
        printed = self.script("add-user", name, *flags)
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
