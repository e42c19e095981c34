"""Where the runs go: the project's MLflow store, its experiment, and the URL that opens it.

The store needs no server: SQLite in the project root, unless MLFLOW_TRACKING_URI says otherwise.
`dvc exp run --queue/--temp` runs stages in a throw-away clone under .dvc/tmp/exps/, but DVC sets
DVC_ROOT to the main repository there too, so every run lands in the same store.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dcgan.errors import UserError
from dcgan.paths import project_root

EXPERIMENT = "dcgan"
COMPARISONS = "dcgan-comparisons"  # dcgan-compare's own runs: never counted as a seed's run

# MLflow 3's UI opens an experiment on its GenAI pages by default. What decides it in the pinned MLflow is the
# page's `workflowType` (the URL parameter, else the browser's localStorage key mlflow.workflowType_v1,
# else "genai"): RUNS_VIEW. The experiment tag is what MLflow's earlier kind selector wrote and what
# other clients read; the pinned UI no longer reads it, so it is set for them and for later versions.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
RUNS_VIEW = "runs?workflowType=machine_learning"


def local_store_uri() -> str:
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_store_uri()


def uses_local_store() -> bool:
    # Compared by value: mlflow.set_tracking_uri() itself exports MLFLOW_TRACKING_URI.
    return tracking_uri() == local_store_uri()


@contextmanager
def store_lock() -> Iterator[None]:
    """Held while a process opens an SQLite store or creates the experiment in it: one at a time.

    The pinned MLflow creates a new SQLite store (its tables, then ~70 alembic migrations, each committed on
    its own) in whichever process opens it first, without any lock (SqlAlchemyStore.__init__), so two
    processes that start together on a fresh store (`dvc queue start -j 2`) both migrate it and all
    but one fail: "duplicate column name: step", "table ... already exists", alembic's "expected to
    match one row". Likewise two that find no experiment both create it, and one fails. Once a store
    exists, concurrent writes are safe: MLflow's sessions wait up to 20 s for SQLite's lock.
    Not re-entrant: flock on a second open of the file would wait for this process itself.
    """
    uri = tracking_uri()
    if not uri.startswith("sqlite:"):  # a server or database that serializes this itself
        yield
        return
    # In the temp folder, as MLflow's own lock for its job store: nothing new appears in the project.
    path = Path(tempfile.gettempdir()) / f"dcgan-mlflow-{hashlib.md5(uri.encode()).hexdigest()}.lock"
    try:
        lock = open(path, "a")
    except OSError:  # another user's lock file: no worse than MLflow without it
        yield
        return
    with lock:  # closing the file (or the process ending) releases the lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def connect():
    """mlflow, pointed at the project's store (opened under the lock) or at a server that let us in."""
    # Nothing of a run needs the network: MLflow's usage telemetry stays off unless the user turns it on.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # A server that is down must cost seconds, not MLflow's default of minutes of retries per call.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    if tracking_uri().startswith("sqlite:"):
        with store_lock():
            mlflow.MlflowClient()  # opens the store (creating it if new); MLflow keeps it for the process
    else:
        check_access()
    return mlflow


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_access() -> None:
    """One request to a tracking server, before any work: a refused sign-in (which no retry cures) and
    an unreachable server each end the stage with the one thing to do. Nothing for a local store."""
    uri = tracking_uri()
    if not is_server(uri):
        return
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        answer = http_request(get_default_host_creds(uri), "/api/2.0/mlflow/experiments/get-by-name", "GET",
                              max_retries=0, timeout=15, params={"experiment_name": EXPERIMENT})
    except Exception as exc:
        raise UserError(unreachable(exc)) from None
    if answer.status_code in (401, 403):
        raise UserError(refusal(answer.status_code))


def refusal(status: int, doing: str = f"read experiment '{EXPERIMENT}'") -> str:
    """What to do about a server's 401 (not signed in) or 403 (signed in, not allowed), in one line."""
    uri, user = tracking_uri(), os.environ.get("MLFLOW_TRACKING_USERNAME")
    if status == 401 and not user:
        return (f"the MLflow server {uri} requires a sign-in (401): set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD (the server's admin adds users: scripts/team-server.sh add-user NAME).")
    if status == 401:
        return (f"the MLflow server {uri} refused the password of user '{user}' (401): set "
                "MLFLOW_TRACKING_PASSWORD to that user's password.")
    return (f"user '{user}' may not {doing} on the MLflow server {uri} (403): ask the server's admin for EDIT "
            f"on it, or set MLFLOW_TRACKING_USERNAME to a user who has it.")


def refused(exc: Exception) -> int | None:
    """401 or 403 when MLflow's client raised for a refusal by the server, else None."""
    return {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}.get(getattr(exc, "error_code", None))


def unreachable(exc: Exception) -> str:
    return (f"the MLflow tracking store {tracking_uri()} cannot be reached ({type(exc).__name__}: {brief(exc)}). "
            "Start the server, or unset MLFLOW_TRACKING_URI to use the project's local store.")


def experiment_id(mlflow, name: str = EXPERIMENT) -> str:
    """The experiment's id, creating it if needed; either way it is marked as model training."""
    with store_lock():
        return _experiment_id(mlflow.MlflowClient(), name)


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        # An explicit location under the main root: created from a temp clone, MLflow would otherwise
        # put the artifacts inside that clone, which DVC deletes afterwards.
        location = (project_root() / "mlartifacts" / name).as_uri() if uses_local_store() else None
        try:
            return client.create_experiment(name, artifact_location=location,
                                             tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except Exception as exc:
            # Another process created it meanwhile: on a tracking server, which store_lock cannot span.
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # a store made before the tag was set
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def runs_url(base_url: str, experiment: str) -> str:
    """The page that lists the experiment's runs in MLflow's model-training view (not the GenAI one)."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment}/{RUNS_VIEW}"


def brief(exc: Exception) -> str:
    """The first line of an error, short enough for one message (HTTP errors carry whole pages)."""
    return str(exc).splitlines()[0][:300] if str(exc) else ""
