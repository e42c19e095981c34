"""A training stops, with a checkpoint, when whatever started it dies: DVC's queue worker killed by
`dvc queue kill --force` must not leave its stage training on, whichever shell DVC ran the stage in."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# What a stage does with its StopRequest: wait between "steps" until asked to stop, and say so.
STAGE = """
import sys, time
from dcgan.stop import StopRequest
stop = StopRequest()
sys.stdout = open(sys.argv[2], "w", buffering=1)  # a file of its own: a redirection in the cmd would make bash fork
open(sys.argv[1], "w").close()
deadline = time.monotonic() + 60
while stop.signum is None and time.monotonic() < deadline:
    time.sleep(0.01)
print("stopped by", stop.signum, flush=True)
"""

# What DVC does with a stage's cmd (dvc/stage/run.py): `$SHELL -c cmd`, then wait for it.
STARTER = """
import os, subprocess, sys
subprocess.run([os.environ["SHELL"], "-c", sys.argv[1]])
"""


@pytest.mark.skipif(sys.platform != "linux", reason="watching the starter needs Linux (pidfd, /proc)")
@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])  # dash forks a lone command; bash execs it
def test_a_stage_stops_when_the_process_that_ran_it_is_killed(tmp_path: Path, shell: str):
    if not shutil.which(shell):
        pytest.skip(f"no {shell}")
    (tmp_path / "stage.py").write_text(STAGE)
    ready, said = tmp_path / "ready", tmp_path / "said"
    env = {**os.environ, "SHELL": shell, "DVC_STAGE": "train"}
    cmd = f"env PYTHONUNBUFFERED=1 {sys.executable} {tmp_path / 'stage.py'} {ready} {said}"  # as dvc.yaml's
    starter = subprocess.Popen([sys.executable, "-c", STARTER, cmd], env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert starter.poll() is None and time.monotonic() < deadline, "the stage did not start"
            time.sleep(0.02)
        starter.kill()  # as `dvc queue kill --force`: SIGKILL to the starter alone
        starter.wait()
        deadline = time.monotonic() + 30
        while "stopped" not in said.read_text():
            assert time.monotonic() < deadline, "the stage trained on after its starter's death"
            time.sleep(0.05)
        assert said.read_text().splitlines()[-1] == f"stopped by {int(signal.SIGTERM)}"
    finally:
        starter.kill()

