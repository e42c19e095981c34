"""A stage ends when whatever started it dies: DVC's queue worker killed by `dvc queue kill --force`
must not leave its stage running, whichever shell DVC ran the stage in. The train stage stops with a
checkpoint (a SIGTERM it sends itself); the others end as on any SIGTERM."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcgan.lifetime import process_status

# The train stage in miniature: run_stage, then a loop between "steps" until a StopRequest is noted.
TRAINING = """
import os, sys, time
from dcgan.errors import run_stage
from dcgan.lifetime import StopRequest

def main():
    stop = StopRequest()
    sys.stdout = open(sys.argv[2], "w", buffering=1)  # not a redirection in the cmd: that makes bash fork
    open(sys.argv[1], "w").write(str(os.getpid()))
    deadline = time.monotonic() + 60
    while stop.signum is None and time.monotonic() < deadline:
        time.sleep(0.01)
    print("stopped by", stop.signum)

run_stage(main)
"""

# Any other stage in miniature: run_stage, then work that takes a while.
OTHER = """
import os, sys, time
from dcgan.errors import run_stage

def main():
    open(sys.argv[1], "w").write(str(os.getpid()))
    time.sleep(60)

run_stage(main)
"""

# What DVC does with a stage's cmd (dvc/stage/run.py): `$SHELL -c cmd`, then wait for it.
STARTER = """
import os, subprocess, sys
subprocess.run([os.environ["SHELL"], "-c", sys.argv[1]])
"""

SHELLS = ["/bin/sh", "/bin/bash"]  # dash forks a lone command; bash execs it
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="watching the starter needs Linux (pidfd, /proc)")


def start_stage(tmp_path: Path, shell: str, script: str) -> tuple[subprocess.Popen, int]:
    """The stage `script` started as DVC starts one, by a starter process: (the starter, the stage's pid)."""
    if not shutil.which(shell):
        pytest.skip(f"no {shell}")
    (tmp_path / "stage.py").write_text(script)
    ready = tmp_path / "ready"
    env = {**os.environ, "SHELL": shell, "DVC_STAGE": "train"}
    cmd = f"env PYTHONUNBUFFERED=1 {sys.executable} {tmp_path / 'stage.py'} {ready} {tmp_path / 'said'}"  # as dvc.yaml's
    starter = subprocess.Popen([sys.executable, "-c", STARTER, cmd], env=env)
    deadline = time.monotonic() + 60
    while not (ready.exists() and ready.read_text()):
        assert starter.poll() is None and time.monotonic() < deadline, "the stage did not start"
        time.sleep(0.02)
    return starter, int(ready.read_text())


def running(pid: int) -> bool:
    try:
        return process_status(pid)[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@linux_only
@pytest.mark.parametrize("shell", SHELLS)
def test_training_stops_with_its_request_when_the_process_that_ran_it_is_killed(tmp_path: Path, shell: str):
    starter, _ = start_stage(tmp_path, shell, TRAINING)
    try:
        starter.kill()  # as `dvc queue kill --force`: SIGKILL to the starter alone
        starter.wait()
        said = tmp_path / "said"
        deadline = time.monotonic() + 30
        while "stopped" not in said.read_text():
            assert time.monotonic() < deadline, "the stage trained on after its starter's death"
            time.sleep(0.05)
        assert said.read_text().splitlines()[-1] == f"stopped by {int(signal.SIGTERM)}"  # once: with a checkpoint
    finally:
        starter.kill()


@linux_only
@pytest.mark.parametrize("shell", SHELLS)
def test_any_other_stage_ends_when_the_process_that_ran_it_is_killed(tmp_path: Path, shell: str):
    starter, stage = start_stage(tmp_path, shell, OTHER)
    try:
        assert running(stage)
        starter.kill()
        starter.wait()
        deadline = time.monotonic() + 30
        while running(stage):
            assert time.monotonic() < deadline, "the stage ran on after its starter's death"
            time.sleep(0.05)
    finally:
        starter.kill()
        if running(stage):
            os.kill(stage, signal.SIGKILL)
