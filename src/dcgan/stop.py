"""Stopping a training cleanly: SIGTERM or Ctrl-C ask it to stop after the current step, with a
checkpoint. A stage sends itself that SIGTERM when whatever started it dies (lifetime.py)."""

from __future__ import annotations

import signal

import torch

from dcgan.distributed import World


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

    def agreed(self, world: World, device: torch.device) -> bool:
        """Under DDP every process must stop at the same step: they agree (a collective) when asked."""
        if world.size == 1:
            return self.signum is not None
        return bool(world.min(torch.tensor(0 if self.signum is not None else 1, device=device)) == 0)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
