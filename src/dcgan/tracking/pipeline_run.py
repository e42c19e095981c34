"""The MLflow run of one pipeline run: one object, started by train and continued by select_g, sample and
evaluate, and the only code that writes to a run.

    mlflow_run = PipelineRun.start(cfg, device, paths.MLFLOW_RUN)           # train
    mlflow_run.log_metrics({"gan/loss_d": 0.7}, step=50)                     # -> client.log_batch
    mlflow_run.finish("FINISHED")

    with PipelineRun.continued(paths.MLFLOW_RUN, cfg, paths.GENERATOR_MLFLOW_RUN) as mlflow_run:   # later stages
        mlflow_run.log_selection(selection, curve, cfg)

A training never stops for a tracking outage: what cannot be sent is kept in memory, the failure is
printed once, and sending is tried again at most every `retry_seconds`; when the server is back,
everything kept is sent in order (metrics with their original steps and times, then files, images,
tags). What is still unsent at the end is reported by name, and is in reports/train/ anyway. The later
stages take minutes, not hours: there an outage ends the stage with its error, and `dvc repro` redoes it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

import torch

from dcgan import paths
from dcgan.config import Config
from dcgan.errors import UserError
from dcgan.io import write_json
from dcgan.metric_keys import (CURVE_SCORES, FLOOR, GAN, NOTES, OVER_TRAINING, SAMPLE_SPREAD, SCORES, SELECTION,
                               flatten, metric_key)
from dcgan.tracking import lineage
from dcgan.tracking.store import (EXPERIMENT, brief, connect, experiment_id, refusal, refused, tracking_uri,
                                  unreachable)

# CPU, memory, disk and network (and the GPU with nvidia-ml-py), as MLflow's System metrics tab shows them.
SYSTEM_METRICS_SECONDS = 10
GENERATOR_MODEL = "generator"  # the logged model's name: runs:/<run id>/generator
BATCH_LIMITS = {"metrics": 1000, "params": 100, "tags": 100}  # MLflow's most per log_batch call


class PipelineRun:
    retry_seconds = 30.0

    def __init__(self, client, run_id: str, run_name: str, keeps_through_outages: bool):
        self.client, self.run_id, self.run_name = client, run_id, run_name
        self.keeps_through_outages = keeps_through_outages
        self.metrics_pending: list = []
        self.uploads_pending: list[tuple[str, Callable[[], None]]] = []  # (what it is, the call that sends it)
        self.failing_since: float | None = None
        self.last_try = 0.0
        self.system_metrics = None

    # -- starting, continuing, deriving --------------------------------------------------------------------

    @classmethod
    def start(cls, cfg: Config, device: str, run_file: str | Path, resume_run_id: str | None = None) -> PipelineRun:
        """The training's run: a new one, or `resume_run_id` (the run of a resumed training) continued. Logs
        params, tags, the training data and a description, and records the run's id in run_file."""
        mlflow = connect()
        client = mlflow.MlflowClient()
        try:
            if resume_run_id:
                run = client.get_run(resume_run_id)
                client.update_run(resume_run_id, status="RUNNING")
            else:
                commit = lineage.git_commit()
                tags = {**lineage.source_tags(commit, "stages/train.py"), "mlflow.note.content": lineage.describe(cfg),
                        "device": device, "torch_version": torch.__version__}
                run = client.create_run(experiment_id(mlflow), run_name=lineage.run_name(commit), tags=tags)
        except Exception as exc:
            status = refused(exc)
            raise UserError(("Nothing was trained: " + (refusal(status, f"write to experiment '{EXPERIMENT}'") if status
                                                         else unreachable(exc)))) from None
        mlflow_run = cls(client, run.info.run_id, run.info.run_name, keeps_through_outages=True)
        if resume_run_id:
            print(f"MLflow run {mlflow_run.run_id} ({mlflow_run.run_name}) continued in {tracking_uri()}")
        else:
            mlflow_run.log_params(cfg.flat())
            inputs = lineage.dataset_inputs(cfg, lineage.TRAINING_DATA)
            mlflow_run.upload("the training data set", lambda: client.log_inputs(mlflow_run.run_id, datasets=inputs))
            print(f"MLflow run {mlflow_run.run_id} ({mlflow_run.run_name}) in {tracking_uri()}")
        mlflow_run.start_system_metrics(resume=bool(resume_run_id))
        mlflow_run.record(run_file)
        return mlflow_run

    @classmethod
    @contextmanager
    def continued(cls, run_file: str | Path, cfg: Config,
                  next_run_file: str | Path | None = None) -> Iterator[PipelineRun]:
        """The run that the previous stage logged to (its id is in run_file), re-opened, so that one
        pipeline run is one MLflow run. If the params differ from that run's (say only `sample_bn_mode`
        changed, so DVC restored train from its cache), a new run is derived instead, with the current
        params and the earlier run's tags, metric histories, datasets and artifacts: each experiment keeps
        its own run, and no run's scores are overwritten by another's. next_run_file records the run used,
        for the next stage. The run ends FINISHED, or FAILED if the stage raised."""
        run_file = Path(run_file)
        if not run_file.is_file():
            raise UserError(f"{run_file} is missing: the stage before this one writes it. Run: dvc repro")
        run_id = json.loads(run_file.read_text())["run_id"]
        client = connect().MlflowClient()
        try:
            base = client.get_run(run_id)
        except Exception as exc:
            status = refused(exc)
            if status:
                raise UserError(refusal(status)) from None
            raise UserError(f"MLflow run {run_id} (from {run_file}) is not in the store {tracking_uri()}. "
                            "Was MLFLOW_TRACKING_URI changed since training? Set it back, or re-train: "
                            "dvc repro -f train") from None
        differing = [key for key, value in cfg.flat().items() if base.data.params.get(key) != str(value)]
        if differing:
            mlflow_run = cls.derived(client, base, cfg, differing)
        else:
            client.update_run(run_id, status="RUNNING")
            mlflow_run = cls(client, run_id, base.info.run_name, keeps_through_outages=False)
        if next_run_file is not None:
            mlflow_run.record(next_run_file)
        try:
            yield mlflow_run
        except BaseException:
            try:
                client.set_terminated(mlflow_run.run_id, "FAILED")
            except Exception:  # MLflow itself may be what failed: the stage's own error is the one to show
                pass
            raise
        client.set_terminated(mlflow_run.run_id, "FINISHED")

    @classmethod
    def derived(cls, client, base, cfg: Config, differing: list[str]) -> PipelineRun:
        """A new run for this pipeline run, carrying over what the earlier stages logged in `base`."""
        import mlflow

        commit = lineage.git_commit()
        tags = {key: value for key, value in base.data.tags.items() if not key.startswith("mlflow.")}
        tags.update(lineage.source_tags(commit, "dvc.yaml"))  # sample or evaluate, after DVC reused train's results
        tags.update({"derived_from_run": base.info.run_id, "changed_params": ", ".join(differing),
                     "mlflow.note.content": lineage.describe(cfg)})
        run = client.create_run(base.info.experiment_id, run_name=lineage.run_name(commit), tags=tags)
        mlflow_run = cls(client, run.info.run_id, run.info.run_name, keeps_through_outages=False)
        mlflow_run.log_params({**base.data.params, **cfg.flat()})
        for key in base.data.metrics:  # the training curves, so that the compare view shows them here too
            mlflow_run.metrics_pending += client.get_metric_history(base.info.run_id, key)
        mlflow_run.flush()
        if base.inputs and base.inputs.dataset_inputs:
            client.log_inputs(mlflow_run.run_id, datasets=base.inputs.dataset_inputs)
        with tempfile.TemporaryDirectory() as tmp:
            if client.list_artifacts(base.info.run_id):
                client.log_artifacts(mlflow_run.run_id, mlflow.artifacts.download_artifacts(run_id=base.info.run_id,
                                                                                            dst_path=tmp))
        print(f"MLflow run {mlflow_run.run_id} ({mlflow_run.run_name}): {', '.join(differing)} changed since run "
              f"{base.info.run_id}, whose results DVC reused; a new run keeps each experiment's scores apart")
        return mlflow_run

    def record(self, run_file: str | Path) -> None:
        """The run's id in run_file, for the next stage to continue."""
        write_json(run_file, {"run_id": self.run_id, "experiment": EXPERIMENT, "run_name": self.run_name})

    # -- logging -------------------------------------------------------------------------------------------

    def log_metrics(self, values: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.metrics_pending += [Metric(key, float(value), now, step) for key, value in values.items()]
        self.flush(force=False)

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        self._log_batches("params", [Param(key, str(value)) for key, value in params.items()])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self._log_batches("tags", [RunTag(key, str(value)) for key, value in tags.items()])

    def _log_batches(self, kind: str, entities: list) -> None:
        """Params or tags, as few log_batch calls as MLflow's limit per call allows."""
        for start in range(0, len(entities), BATCH_LIMITS[kind]):
            batch = entities[start:start + BATCH_LIMITS[kind]]
            self.upload(f"{len(batch)} {kind}", lambda batch=batch: self.client.log_batch(self.run_id, **{kind: batch}))

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        def upload() -> None:
            if Path(path).exists():  # a file of the training's run folder may be gone by the end: see finish()
                self.client.log_artifact(self.run_id, str(path), folder)
        self.upload(f"file {path}", upload)

    def log_image(self, image, key: str, step: int) -> None:
        """An image chart (the run's Model metrics tab and the experiment's charts, with a step slider)."""
        self.upload(f"image {key} at step {step}",
                    lambda: self.client.log_image(self.run_id, image, key=key, step=step, synchronous=True))

    def upload(self, what: str, call: Callable[[], None]) -> None:
        """Anything beyond metrics: sent in order, kept while MLflow is down."""
        self.uploads_pending.append((what, call))
        self.flush(force=False)

    def flush(self, force: bool = True) -> bool:
        """Send everything kept; unless forced, at most every retry_seconds during an outage. True if all went."""
        if self.failing_since is not None and not force and time.monotonic() - self.last_try < self.retry_seconds:
            return False
        self.last_try = time.monotonic()
        try:
            while self.metrics_pending:
                batch = self.metrics_pending[:BATCH_LIMITS["metrics"]]
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
        if not self.keeps_through_outages:
            raise exc
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            print(f"warning: MLflow ({tracking_uri()}) is unreachable ({type(exc).__name__}: "
                  f"{brief(exc)}). Training goes on; values are "
                  f"kept, written to the training log, and sent when it is back (retried every "
                  f"{self.retry_seconds:.0f} s).", file=sys.stderr, flush=True)

    # -- the training's end --------------------------------------------------------------------------------

    def start_system_metrics(self, resume: bool = False) -> None:
        """CPU, memory, disk, network and GPU use every SYSTEM_METRICS_SECONDS, by MLflow's own monitor (a
        thread); it stops by itself while MLflow is unreachable (MLflow's behaviour), and at finish()."""
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self.system_metrics = SystemMetricsMonitor(self.run_id, sampling_interval=SYSTEM_METRICS_SECONDS,
                                                       resume_logging=resume, tracking_uri=tracking_uri())
            self.system_metrics.start()
        except Exception as exc:  # e.g. psutil missing: the run goes on without them
            print(f"warning: no system metrics for this run ({type(exc).__name__}: {brief(exc)})", file=sys.stderr)

    def finish(self, status: str) -> None:
        """End the training's run as FINISHED, KILLED or FAILED, after a last try to send what is kept."""
        if self.system_metrics is not None:
            self._last_system_sample()
        self.flush()
        try:
            self.client.set_terminated(self.run_id, status)
        except Exception as exc:  # a tracking outage must not end hours of training
            self._failed(exc)
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

    # -- what the later stages add -------------------------------------------------------------------------

    def log_selection(self, selection: dict, curve: list[dict], config_tags: dict[str, str]) -> None:
        """select_g's results: the quality curve as metric histories (so the compare view overlays runs),
        which G was kept and the last one's score (`selection/`), the curve's files, and the configuration
        tags (`config`, `config_name`) that group a configuration's seeds: keep_g is part of a
        configuration, so they are set here, once the G is chosen, and not by train."""
        self.set_tags(config_tags)
        for row in curve:
            self.log_metrics({metric_key(OVER_TRAINING, name): row[name] for name in CURVE_SCORES if name in row},
                             step=row["step"])
        self.log_metrics(flatten({SELECTION: selection}))
        self.set_tags({"keep_g": f"{selection['keep_g']}: step {selection['chosen_step']} of {selection['last_step']}, "
                                 f"by {selection['score']} on {selection['validation_images']} validation images"})
        self.log_artifact(paths.QUALITY_CURVE)
        self.log_artifact(paths.QUALITY_CURVE_FIGURE, "figures")

    def log_generator(self, model: torch.nn.Module, latents: torch.Tensor, metadata: dict,
                      register_as: str | None) -> None:
        """G as an MLflow model (dcgan.sample.served_generator: latent vectors in, images in [-1, 1] out,
        an input example, how to read it). It shows under the run's Logged models, loads with
        `mlflow.pytorch.load_model("runs:/<run id>/generator")` and serves with
        `mlflow models serve -m runs:/<run id>/generator --env-manager local`. Saved as a torch.export program
        (pt2): loading it runs no pickled code and needs no `dcgan` package; its requirements are written
        out, so nothing is inferred online. With `register_as` (the param `register_model`), also a new
        version of that registered model. The tag `generator_model_uri` says where it is (models:/<model id>)."""
        import mlflow
        import numpy as np
        from mlflow.models import infer_signature

        # The model belongs to the run's experiment (log_model would otherwise pick the active, default one).
        mlflow.set_experiment(experiment_id=self.client.get_run(self.run_id).info.experiment_id)
        with torch.no_grad():
            images = model(latents).numpy()
        example = latents.numpy()
        requirements = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}",
                        f"mlflow=={mlflow.__version__}"]
        # log_model loads the model back to check its input example, behind a "Downloading artifacts" bar:
        # 32 lines of it in a stage's log, for files already on this disk.
        with warnings.catch_warnings(), mock.patch.dict(os.environ, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"):
            # torch.export's packager, about weights that are all on the CPU anyway
            warnings.filterwarnings("ignore", message="No complete tensor found in the group")
            info = mlflow.pytorch.log_model(
                model, name=GENERATOR_MODEL, run_id=self.run_id, signature=infer_signature(example, images),
                input_example=example, pip_requirements=requirements, serialization_format="pt2",
                registered_model_name=register_as, metadata=metadata)
        self.set_tags({"generator_model_uri": info.model_uri})

    def log_samples(self, figures_folder: Path, step: int) -> None:
        """The sample stage's figures: files under Artifacts, and the final grid and real-vs-fake as image charts."""
        from PIL import Image

        self.client.log_artifacts(self.run_id, str(figures_folder), "samples")
        for key, name in (("samples/grid", "grid.png"), ("samples/real_vs_fake", "real_vs_fake.png")):
            with Image.open(figures_folder / name) as image:
                self.log_image(image.convert("RGB"), key=key, step=step)

    def log_evaluation(self, cfg: Config, metrics: dict[str, dict]) -> None:
        """evaluate's results: every score as `<section>/<name>` (the training's `gan/` values and the
        selection's are there already), the evaluation data set, the figures and a description with the
        headline scores."""
        self.log_metrics(flatten({section: values for section, values in metrics.items()
                                  if section not in (GAN, SELECTION)}))
        self.set_tags(metrics[NOTES])
        self.client.log_inputs(self.run_id, datasets=lineage.dataset_inputs(cfg, lineage.EVALUATION_DATA))
        self.log_artifact(paths.METRICS)
        for path in (paths.CLASS_HISTOGRAM, paths.NEAREST_TRAINING_IMAGES):
            self.log_artifact(path, "figures")
        headline = lineage.headline(metrics[SCORES], metrics[SAMPLE_SPREAD], metrics[FLOOR])
        self.set_tags({"mlflow.note.content": lineage.describe(cfg, headline)})


class Untracked:
    """The run of a training with tracking off: it keeps nothing. For the processes other than rank 0
    under DDP (rank 0 logs for all), and for benchmarks/gpu_check.py on machines without MLflow."""

    run_id = None

    def log_params(self, params: dict) -> None: ...
    def log_metrics(self, values: dict[str, float], step: int = 0) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def log_artifact(self, path: str | Path, folder: str | None = None) -> None: ...
    def log_image(self, image, key: str, step: int) -> None: ...
    def finish(self, status: str) -> None: ...

