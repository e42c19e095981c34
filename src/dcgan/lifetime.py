"""A stage lives no longer than whatever started it.

`dvc queue kill --force` SIGKILLs the worker's experiment process alone (dvc_task/proc/manager.py),
and so does a pre-empted `dvc repro` killed with -9: the stage it started would run on, unseen, in a
copy DVC has given up, or into the run folder that the next attempt resumes from. So each stage
watches its starter and, when it dies, sends itself a SIGTERM: the train stage takes that as a
request to stop with a checkpoint (StopRequest, below), the others end as on any SIGTERM.

Stopping a training cleanly: SIGTERM or Ctrl-C ask it to stop after the current step, with a
checkpoint (StopRequest).
"""

from __future__ import annotations

import os
import select
import signal
import threading
from pathlib import Path
from typing import Callable

_once = threading.Lock()  # held once the watch is set up, so each process watches once


def end_with_starter() -> None:
    """SIGTERM this process, once, when any of its starters (see `starters`) dies."""
    if not _once.acquire(blocking=False):
        return
    fired = threading.Lock()

    def starter_died() -> None:
        if fired.acquire(blocking=False):
            os.kill(os.getpid(), signal.SIGTERM)  # Python runs the handler in the main thread

    for pid in starters():
        call_on_exit(pid, starter_died)


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
            return [parent, int(process_status(parent)[1])]
    except (OSError, ValueError, IndexError):
        pass  # no /proc (not Linux), or the shell already gone: the parent alone
    return [parent]


def process_status(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after "pid (comm)": state, ppid, ... (the name may hold spaces
    and parentheses, so it is cut at the last one). FileNotFoundError once the process is reaped."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def call_on_exit(pid: int, callback: Callable[[], None]) -> None:
    """Calls `callback` from a daemon thread when process `pid` exits (Linux 5.3+: a pidfd becomes
    readable then). Elsewhere nothing is watched, and a killed starter leaves the stage running."""
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


class StopRequest:
    """The first SIGTERM or SIGINT is noted, for the loop to stop at; a second one stops at once."""

    def __init__(self):
        self.signum: int | None = None
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step, with a checkpoint "
              "(send it again to stop at once, without one)", flush=True)
        signal.signal(signum, self.previous[signum])

    def agreed(self, world, device) -> bool:
        """Under DDP every process must stop at the same step: they agree (a collective) when asked."""
        if world.size == 1:
            return self.signum is not None
        import torch

        return bool(world.min(torch.tensor(0 if self.signum is not None else 1, device=device)) == 0)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
