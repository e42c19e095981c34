"""Logging a training run to MLflow without ever letting a tracking outage stop the training."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from dcgan.tracking.store import brief, tracking_uri


class RunLogger:
    """Logs the training to its MLflow run, and never lets a tracking outage stop training.

    What cannot be sent (a remote server down) is kept in memory, the failure is printed once, and
    sending is tried again at most every `retry_seconds`; when the server is back, everything kept is
    sent in order, metrics with their original steps and times, then files, images, datasets and the
    model. What is still unsent at the end is reported by name, and is in reports/train/ anyway
    (log.csv holds every logged value, grids/ every grid).
    """

    retry_seconds = 30.0

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id
        self.metrics_pending: list = []
        self.uploads_pending: list[tuple[str, Callable[[], None]]] = []  # (what it is, the call that sends it)
        self.failing_since: float | None = None
        self.last_try = 0.0
        self.system_metrics = None

    def start_system_metrics(self, seconds: float, resume: bool = False) -> None:
        """CPU, memory, disk, network and GPU use every `seconds`, by MLflow's own monitor (a thread);
        it stops by itself while MLflow is unreachable (MLflow's behaviour), and at finish()."""
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self.system_metrics = SystemMetricsMonitor(self.run_id, sampling_interval=seconds, resume_logging=resume,
                                                       tracking_uri=tracking_uri())
            self.system_metrics.start()
        except Exception as exc:  # e.g. psutil missing: the run goes on without them
            print(f"warning: no system metrics for this run ({type(exc).__name__}: {brief(exc)})", file=sys.stderr)

    def log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.metrics_pending += [Metric(key, float(value), now, step) for key, value in values.items()]
        self._send()

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        self._guard(lambda: self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()]))

    def set_tag(self, key: str, value: str) -> None:
        self._guard(lambda: self.client.set_tag(self.run_id, key, value))

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        def upload() -> None:
            if Path(path).exists():  # a file of the run folder may be gone by the end: see finish()
                self.client.log_artifact(self.run_id, str(path), folder)
        self.upload(f"file {path}", upload)

    def log_image(self, image, key: str, step: int) -> None:
        """An image chart (the run's Model metrics tab and the experiment's charts, with a step slider)."""
        self.upload(f"image {key} at step {step}",
                    lambda: self.client.log_image(self.run_id, image, key=key, step=step))

    def upload(self, what: str, call: Callable[[], None]) -> None:
        """Anything beyond metrics (files, images, datasets, the model): sent in order, kept while MLflow is down."""
        self.uploads_pending.append((what, call))
        self._send()

    def flush(self) -> bool:
        """Try to send everything kept now, whatever the time since the last try. True if all went."""
        return self._send(force=True)

    def finish(self, status: str) -> None:
        """End the run as FINISHED, KILLED or FAILED, after a last try to send what is kept."""
        if self.system_metrics is not None:
            self._last_system_sample()
        self.flush()
        self._guard(lambda: self.client.set_terminated(self.run_id, status))
        if self.metrics_pending or self.uploads_pending:
            unsent = ", ".join(what for what, _ in self.uploads_pending[:5]) + (
                ", ..." if len(self.uploads_pending) > 5 else "")
            print(f"warning: MLflow ({tracking_uri()}) stayed unreachable: {len(self.metrics_pending)} metric "
                  f"values and {len(self.uploads_pending)} uploads ({unsent or 'none'}) of run {self.run_id} were "
                  f"not sent, and its status could not be set to {status}. Every logged value is in "
                  "reports/train/log.csv (and the training's checkpoints folder while it runs), every grid in "
                  "reports/train/grids/, the generator in models/checkpoint.pt.", file=sys.stderr)

    def _last_system_sample(self) -> None:
        """Stop the monitor, then log one sample taken now: MLflow's monitor logs only whole sampling
        intervals, so a run shorter than one would have no system metrics at all."""
        monitor = self.system_metrics
        monitor.finish()
        try:
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()
        except Exception as exc:  # system metrics never end a training
            print(f"warning: the last system metrics sample was not logged ({type(exc).__name__}: {brief(exc)})",
                  file=sys.stderr)

    def _guard(self, call) -> None:
        try:
            call()
        except Exception as exc:  # a tracking outage must not end hours of training
            self._failed(exc)

    def _send(self, force: bool = False) -> bool:
        if self.failing_since is not None and not force and time.monotonic() - self.last_try < self.retry_seconds:
            return False
        self.last_try = time.monotonic()
        try:
            while self.metrics_pending:
                batch = self.metrics_pending[:1000]  # MLflow's limit per log_batch call
                self.client.log_batch(self.run_id, metrics=batch)
                del self.metrics_pending[:len(batch)]
            while self.uploads_pending:
                _, call = self.uploads_pending[0]
                call()
                self.uploads_pending.pop(0)
        except Exception as exc:
            self._failed(exc)
            return False
        if self.failing_since is not None:
            print(f"MLflow is reachable again: sent what was kept since the outage "
                  f"({time.monotonic() - self.failing_since:.0f} s).", flush=True)
            self.failing_since = None
        return True

    def _failed(self, exc: Exception) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            print(f"warning: MLflow ({tracking_uri()}) is unreachable ({type(exc).__name__}: "
                  f"{brief(exc)}). Training goes on; values are "
                  f"kept, written to the training log, and sent when it is back (retried every "
                  f"{self.retry_seconds:.0f} s).", file=sys.stderr, flush=True)


class Untracked:
    """The logger of a training with tracking off: it keeps nothing. For the processes other than rank 0
    under DDP (rank 0 logs for all), and for benchmarks/gpu_check.py on machines without MLflow."""

    run_id = None

    def log_params(self, params: dict) -> None: ...
    def log_metrics(self, values: dict[str, float], step: int) -> None: ...
    def set_tag(self, key: str, value: str) -> None: ...
    def log_artifact(self, path: str | Path, folder: str | None = None) -> None: ...
    def log_image(self, image, key: str, step: int) -> None: ...
    def upload(self, what: str, call: Callable[[], None]) -> None: ...
    def finish(self, status: str) -> None: ...
