"""Training checkpoints: written atomically, loaded without unpickling code, checked against params.

An unfinished run lives in its own folder, checkpoints/<key>/ under the main repository root, which
no DVC stage declares (paths.UNFINISHED_RUNS), so it outlives a failed or killed run, also one of
`dvc exp run --temp/--queue` in a copy that DVC deletes: its last `keep_checkpoints` checkpoints,
its log and its grids and snapshots so far. The key is a hash of the run's identity (the params that
shape the weights, config.WEIGHTS_PARAMS, and the training data's bytes), so `dvc repro` after a crash
resumes the run, while a run with other params starts fresh and leaves the other's folder alone.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from dcgan.errors import CheckpointError, UserError
from dcgan.io import atomic_path, load_tensors, save_tensors, write_json

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, *, spec: dict, generator, discriminator, opt_g, opt_d,
                    step: int, epoch: int, mlflow_run_id: str | None, generator_ema=None,
                    resume: dict | None = None) -> None:
    """`generator_ema`: the moving average of G's weights (ema_decay > 0), which sampling uses.
    `resume`: what a resumed run needs besides the weights (logged sums so far, seconds)."""
    save_tensors(path, {
        "format_version": FORMAT_VERSION,
        "model_spec": spec,
        "generator": generator.state_dict(),
        "discriminator": discriminator.state_dict(),
        "generator_ema": generator_ema.state_dict() if generator_ema is not None else None,
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "step": step,
        "epoch": epoch,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "mlflow_run_id": mlflow_run_id,
        "resume": resume or {},
    })


def load_checkpoint(path: str | Path, expected_spec: dict) -> dict:
    """Load a checkpoint and make sure it was made for the model that params.yaml describes."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}. Train first: dvc repro train")
    try:
        checkpoint = load_tensors(path)
    except Exception as exc:  # truncated file, foreign pickle refused by weights_only, ...
        raise CheckpointError(f"{path} cannot be loaded safely ({type(exc).__name__}: {exc}). It is corrupt "
                              "or not a checkpoint of this pipeline; re-train with: dvc repro -f train") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a checkpoint of this pipeline (format {FORMAT_VERSION}). "
                              "Re-train with: dvc repro -f train")
    found = checkpoint["model_spec"]
    if found != expected_spec:
        differences = ", ".join(f"{key}: checkpoint {found.get(key)!r} vs params {expected_spec.get(key)!r}"
                                for key in sorted(set(found) | set(expected_spec))
                                if found.get(key) != expected_spec.get(key))
        raise CheckpointError(f"{path} was made for another model ({differences}). Either restore the params "
                              "it was trained with, or re-train for the current ones: dvc repro train")
    return checkpoint


class RunFolder:
    """checkpoints/<key>/ of one unfinished run: checkpoints, log.csv, grids/, snapshots/."""

    def __init__(self, root: str | Path, identity: dict):
        self.identity = identity
        self.key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
        self.root = Path(root)
        self.path = self.root / self.key
        self.log = self.path / "log.csv"
        self.grids = self.path / "grids"
        self.snapshots = self.path / "snapshots"

    def lock(self) -> None:
        """Hold this run's folder for this process until it exits. Two trainings of the same params at
        once (a queued run whose killed worker left its training behind, the same command in two shells)
        would write over each other's checkpoints. The kernel releases the lock when the process ends,
        however it ends."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "another process"
            raise UserError(f"A training with these params is already running ({holder}), writing to {self.path}. "
                            "Wait for it to finish (it leaves its results to `dvc repro`), or stop it "
                            "(`kill <pid>`: it writes a checkpoint) and run again to resume it.") from None
        self._lock_file.truncate(0)
        self._lock_file.write(f"pid {os.getpid()}")
        self._lock_file.flush()

    def create(self, log_header: list[str]) -> None:
        for folder in (self.grids, self.snapshots):
            folder.mkdir(parents=True, exist_ok=True)
        write_json(self.path / "run.json", self.identity)
        self.keep_until(0, log_header)  # an empty log with its header, and no grids or snapshots

    def checkpoints(self) -> list[Path]:
        return sorted(self.path.glob("step_*.pt"))

    def latest(self, spec: dict) -> dict | None:
        """The newest checkpoint that loads; a corrupt one is reported, kept, and the one before it used."""
        for path in reversed(self.checkpoints()):
            try:
                return load_checkpoint(path, spec)
            except CheckpointError as exc:
                print(f"warning: skipping a checkpoint that cannot be used (kept for inspection): {exc}")
        return None

    def save(self, step: int, keep: int, **state) -> Path:
        path = self.path / f"step_{step:08d}.pt"
        save_checkpoint(path, step=step, **state)
        for old in self.checkpoints()[:-keep]:  # written first, pruned after: a crash never leaves none
            old.unlink()
        return path

    def keep_until(self, step: int, log_header: list[str]) -> None:
        """Drop what was written after `step` (the checkpoint resumed from), so that it is written again."""
        for folder in (self.grids, self.snapshots):
            for item in folder.glob("step_*"):
                if int(item.stem.removeprefix("step_")) > step:
                    item.unlink()
        rows = list(csv.reader(open(self.log, newline=""))) if self.log.is_file() else []
        kept = [row for row in rows[1:] if int(row[0]) <= step]
        with atomic_path(self.log) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([log_header, *kept])

    def others(self) -> list[tuple[Path, dict]]:
        """Other unfinished runs in the same root, with the identity they were started with."""
        found = []
        for folder in sorted(self.root.glob("*/run.json")):
            if folder.parent != self.path:
                found.append((folder.parent, json.loads(folder.read_text())))
        return found

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def describe_difference(mine: dict, theirs: dict) -> str:
    keys = sorted(key for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key))
    return ", ".join(f"{key} {theirs.get(key)!r} (now {mine.get(key)!r})" for key in keys)
