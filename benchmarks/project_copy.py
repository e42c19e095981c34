"""A copy of this project in a fresh git repository, with params of one's own: the one definition for
the end-to-end tests (tests/conftest.py's `make_project` and `project` fixture) and the benchmarks
that run the pipeline or a stage as a user would (benchmarks/run.py).

It lives here, beside the benchmarks, because they are scripts that must not depend on the test
suite, while the tests already import from benchmarks/ (tests/conftest.py puts this folder on
sys.path, as tests/test_gpu_check.py does for gpu_check). It imports nothing of the package but
`dcgan.paths`, so neither side imports the other's modules.

What is copied: the files of the working tree that git tracks or would track (uncommitted edits and
new files included, ignored ones not), less the results of local runs, so that the copy runs the
code as it is now from a clean state. params.yaml holds the committed values (`dvc exp run` leaves
an experiment's values in the workspace) with the given ones over them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from dcgan import paths

ROOT = Path(__file__).resolve().parents[1]
RESULTS_OF_LOCAL_RUNS = {"dvc.lock", str(paths.METRICS)}  # not ignored by git, no part of a fresh copy


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")
    return done.stdout


def project_params() -> dict:
    """The keys of the workspace's params.yaml with their committed values (a key that is not
    committed yet takes its workspace value)."""
    workspace = yaml.safe_load((ROOT / "params.yaml").read_text())
    try:
        head = yaml.safe_load(git("show", "HEAD:params.yaml", cwd=ROOT))
    except RuntimeError:  # no commit yet, or params.yaml not in it
        head = {}
    return {key: head.get(key, value) for key, value in workspace.items()}


def copy_project(copy: Path, params: dict | None = None, message: str = "a copy of the project") -> Path:
    """The project's files in `copy` (created), params.yaml = project_params() with `params` over
    them, all committed in a new git repository there. Returns `copy`."""
    for name in git("ls-files", "-z", "-co", "--exclude-standard", cwd=ROOT).split("\0"):
        if name and (ROOT / name).is_file() and name not in RESULTS_OF_LOCAL_RUNS:  # a deleted tracked file is listed
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    (copy / "params.yaml").write_text(yaml.safe_dump({**project_params(), **(params or {})}, sort_keys=False))
    git("init", "-q", cwd=copy)
    git("add", "-A", cwd=copy)
    git("-c", "user.name=project copy", "-c", "user.email=copy@localhost", "-c", "commit.gpgsign=false",
        "commit", "-qm", message, cwd=copy)
    return copy
