"""Stopping a training cleanly: on SIGTERM, on Ctrl-C, or when whatever started it dies.

The last matters for DVC's queue: `dvc queue kill --force` SIGKILLs the worker's experiment process
alone (dvc_task/proc/manager.py), and a stage it started would otherwise train on, unseen, into the
run folder that the next attempt resumes from.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from pathlib import Path

import torch

from dcgan.distributed import World


class StopRequest:
    """SIGTERM or Ctrl-C ask the loop to stop after the current step, with a checkpoint; a second one
    stops at once. The death of a starter (see `starters`) sends this process a SIGTERM."""

    def __init__(self):
        self.signum: int | None = None
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        self.watching = True
        for pid in starters():
            call_on_exit(pid, self._starter_died)

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step, with a checkpoint "
              "(send it again to stop at once, without one)", flush=True)
        signal.signal(signum, self.previous[signum])

    def _starter_died(self) -> None:
        if self.watching and self.signum is None:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs in the main thread, between steps

    def agreed(self, world: World, device: torch.device) -> bool:
        """Under DDP every process must stop at the same step: they agree (a collective) when asked."""
        if world.size == 1:
            return self.signum is not None
        return bool(world.min(torch.tensor(0 if self.signum is not None else 1, device=device)) == 0)

    def restore(self) -> None:
        self.watching = False
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def starters() -> list[int]:
    """The parent, and when the parent is the shell that DVC ran this stage's cmd in, its parent too.

    DVC runs a cmd as `$SHELL -c cmd`, /bin/sh when SHELL is unset (dvc/stage/run.py). bash execs a
    lone command, so the stage's parent is DVC; dash (Debian's /bin/sh) forks it, and the shell
    outlives a SIGKILLed DVC: only DVC's death says that nobody waits for this stage any more.
    """
    parent = os.getppid()
    shell = os.path.realpath(os.environ.get("SHELL") or "/bin/sh")
    try:
        if "DVC_STAGE" in os.environ and os.path.realpath(f"/proc/{parent}/exe") == shell:
            stat = Path(f"/proc/{parent}/stat").read_text()
            return [parent, int(stat.rsplit(")", 1)[1].split()[1])]  # "pid (comm) state ppid ..."
    except (OSError, ValueError, IndexError):
        pass  # no /proc (not Linux), or the shell already gone: the parent alone
    return [parent]


def call_on_exit(pid: int, callback) -> None:
    """Calls `callback` from a daemon thread when process `pid` exits (Linux 5.3+: a pidfd becomes
    readable then). Elsewhere nothing is watched, and a killed starter leaves the training running."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        callback()  # gone already
        return
    except (AttributeError, OSError):
        return

    def wait() -> None:
        select.select([fd], [], [])
        os.close(fd)
        callback()

    threading.Thread(target=wait, name=f"watch-{pid}", daemon=True).start()
