"""The train stage: the DCGAN training loop of the PyTorch tutorial, tracked in MLflow and DVC.

It reads top to bottom as the tutorial's loop: start or resume, the loop of steps (gan_step.py), then
publish. Nothing is lost on a crash: the run checkpoints into checkpoints/<key>/ under the project
root (checkpoint.py, paths.UNFINISHED_RUNS) and the same command (`dvc repro`, `dvc exp run`)
resumes it, bit for bit on a CPU. SIGTERM or Ctrl-C writes a checkpoint and stops; a non-finite
loss stops with the last good checkpoint kept. The declared outputs (log, grids, snapshots, the
final checkpoint) are published from the run folder when training completes.
"""

from __future__ import annotations

import csv
import math
import shutil
import signal
import time

import torch

from dcgan import paths
from dcgan.checkpoint import RunFolder, describe_difference, save_checkpoint
from dcgan.config import WEIGHTS_PARAMS, Config
from dcgan.data.normalize import denormalize
from dcgan.device import pick_device
from dcgan.digests import sha256_of
from dcgan.distributed import World, join, leave
from dcgan.errors import ConfigError, UserError
from dcgan.fast_path import FastPath, fast_path_of_resumed_run, resolve_fast_path
from dcgan.figures import display_scale, grid_image, save_image, training_curves
from dcgan.io import atomic_path, load_tensors, progress_bar, save_tensors
from dcgan.metric_keys import FIXED_NOISE_GRID, GAN, TRAINING, metric_key
from dcgan.models import build_models, draw_noise, generate, model_spec
from dcgan.gan_step import GANStep, RunningMeans, epoch_batches, lr_scale
from dcgan.lifetime import StopRequest
from dcgan.tracking import PipelineRun, Untracked, check_access

LOGGED = TRAINING  # the log.csv columns, `gan/<name>` in MLflow
LOG_HEADER = ["step", "epoch", "images_seen", "seconds", *LOGGED]


class TrainingStopped(UserError):
    """SIGTERM or Ctrl-C: a checkpoint was written, the MLflow run is marked KILLED."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention for "ended by signal N"


class TrainingDiverged(UserError):
    """A non-finite loss: the last good checkpoint is kept, the MLflow run is marked FAILED."""


def run_identity(cfg: Config, world: World) -> dict:
    """What a checkpoint must share with this run to be resumed by it: the params that shape the
    weights (config.WEIGHTS_PARAMS), the number of processes and the training data's bytes."""
    params = {key: getattr(cfg, key) for key in WEIGHTS_PARAMS}
    return {**params, "processes": world.size, "train_data_sha256": sha256_of(paths.TRAIN_DATA)}


def train(cfg: Config, tracked: bool = True) -> None:
    """`tracked=False` (no MLflow run) is for benchmarks/gpu_check.py alone, on machines without MLflow."""
    device = pick_device(cfg.device)
    world, device = join(device)
    try:
        _train(cfg, device, world, tracked)
    finally:
        leave(world)


def _train(cfg: Config, device: torch.device, world: World, tracked: bool) -> None:
    if tracked and world.is_main:
        check_access()  # a tracking server that refuses us or is down: said now, before anything is written
    # Start, or resume the unfinished run with these params.
    folder = RunFolder(paths.unfinished_runs(), run_identity(cfg, world))
    if world.is_main:
        folder.lock()  # before reading: never resume from a folder that another training still writes
    checkpoint = folder.latest(model_spec(cfg))
    world.barrier()  # every process has read the run folder before rank 0 may reset it
    # Refuses impossible switches before any work; a resumed run keeps the switches it ran with.
    fast_path = resolve_fast_path(cfg, device, probe=world.size == 1 and checkpoint is None)
    if checkpoint is not None:
        fast_path = fast_path_of_resumed_run(cfg, fast_path, checkpoint["resume"], device)
    torch.manual_seed(cfg.seed)  # the same on every process: they draw the same global noise

    images = load_tensors(paths.TRAIN_DATA)["images"].to(device)  # uint8, resident for the whole run
    n_images = images.shape[0]
    steps_per_epoch = n_images // cfg.batch_size  # the last partial batch is dropped, as BatchNorm prefers
    if steps_per_epoch == 0:
        raise ConfigError(f"`batch_size` = {cfg.batch_size} is larger than the {n_images} training images.")
    total_steps = cfg.epochs * steps_per_epoch

    gan = GANStep(*build_models(cfg), cfg, device, fast_path, world)
    fixed_noise = draw_noise(64, cfg, device)  # the same z all run long: watch G learn (drawn before resuming)
    running = RunningMeans(len(LOGGED), device, world)
    first_step, seconds_before, run_id = 0, 0.0, None
    if checkpoint is not None:
        gan.load(checkpoint)
        running.load(checkpoint["resume"]["running"])
        torch.set_rng_state(checkpoint["rng_cpu"])
        if device.type == "cuda" and checkpoint["rng_cuda"]:
            torch.cuda.set_rng_state_all(checkpoint["rng_cuda"])
        first_step, seconds_before, run_id = checkpoint["step"], checkpoint["resume"]["seconds"], checkpoint["mlflow_run_id"]
    if world.is_main:
        announce(cfg, device, world, fast_path, folder, checkpoint, first_step, total_steps)
    # Only rank 0 logs; the other ranks' MLflow run keeps nothing.
    if tracked and world.is_main:
        mlflow_run = PipelineRun.start(cfg, str(device), paths.MLFLOW_RUN, resume_run_id=run_id)
    else:
        mlflow_run = Untracked()
    if checkpoint is None:
        mlflow_run.log_params({**fast_path.as_params(), "processes": world.size})
    else:
        mlflow_run.set_tags({"resumed_at_step": str(first_step)})
    record = TrainingRecord(folder, cfg, gan, running, mlflow_run, world, fast_path, device, fixed_noise,
                            steps_per_epoch, total_steps)
    if checkpoint is None:
        record.grid(0)  # the untrained G, where the tutorial's progress animation starts too
    record.start_clock(seconds_before)

    # The loop: one GANStep per batch, logged, drawn, snapshotted and checkpointed as it goes.
    batches = epoch_batches(n_images, cfg.batch_size, cfg.seed, first_step, device)
    stop = StopRequest()
    progress = progress_bar(range(first_step, total_steps), desc="train", unit="step", initial=first_step,
                            total=total_steps, disable=not world.is_main)
    try:
        for step in progress:
            noise = world.shard(draw_noise(cfg.batch_size, cfg, device))
            gan.set_lr_scale(lr_scale(step, total_steps, cfg.lr_decay_start))  # 1 throughout by default
            running.add(gan.step(images[world.shard(next(batches))], noise), step + 1)

            done = step + 1
            if done % cfg.log_every == 0 or done == total_steps:
                logged = record.log(done, progress)  # means since the last log, on every process
                mlflow_run.log_metrics({metric_key(GAN, name): value for name, value in logged.items()}, step=done)
            if done % cfg.sample_every == 0 or done == total_steps:
                record.grid(done)
            if done % cfg.eval_every == 0 or done == total_steps:
                record.snapshot(done)
            # Under DDP the processes agree to stop only at a logged step: agreeing is a collective.
            stopping = done < total_steps and (world.size == 1 or done % cfg.log_every == 0) and stop.agreed(world, device)
            if done % cfg.checkpoint_every == 0 or done % steps_per_epoch == 0 or stopping:
                record.checkpoint(done)
            if stopping:
                signum = stop.signum or signal.SIGTERM  # under DDP: another process's signal
                raise TrainingStopped(signum, f"stopped by {signal.Signals(signum).name} at step {done} of "
                                              f"{total_steps}; checkpoint written to {folder.path}. Run `dvc repro` "
                                              "to resume.")
    except BaseException as exc:  # the MLflow run says how it ended, even if the server is down now
        mlflow_run.finish("KILLED" if isinstance(exc, (TrainingStopped, KeyboardInterrupt)) else "FAILED")
        raise
    finally:
        stop.restore()
        progress.close()
        record.close()

    # Publish: the run folder's results become the stage's outputs.
    if world.is_main:
        publish(folder, cfg, gan, steps_per_epoch, total_steps, mlflow_run)
        print(f"trained {total_steps} steps ({cfg.epochs} epochs of {n_images} images) "
              f"in {record.seconds():.0f} s on {device}" + (f" x {world.size} processes" if world.size > 1 else ""))


def announce(cfg: Config, device: torch.device, world: World, fast_path: FastPath, folder: RunFolder,
             checkpoint: dict | None, first_step: int, total_steps: int) -> None:
    """Rank 0: say how the run goes, and set up its folder (kept up to the resumed step, or fresh)."""
    print(f"fast path on {device}:\n{fast_path.describe()}", flush=True)
    if world.size > 1:
        print(f"data parallel: {world.size} processes, {cfg.batch_size // world.size} images each per step "
              f"(global batch {cfg.batch_size})")
    if checkpoint is not None:
        print(f"resuming from step {first_step} of {total_steps}: {folder.path}")
        folder.keep_until(first_step, LOG_HEADER)
    else:
        for other, identity in folder.others():
            print(f"starting fresh: {other} holds an unfinished run with other params "
                  f"({describe_difference(folder.identity, identity)}); it is kept and resumes when run "
                  "with its params again (delete the folder to free the space)")
        folder.create(LOG_HEADER)  # over a leftover without a usable checkpoint: its log and grids go


class TrainingRecord:
    """What a training writes as it goes: the log's rows, fixed-noise grids, G's snapshots and
    checkpoints into its run folder (and each grid to MLflow). Every process takes part in the
    collectives (the logged means, the finiteness check); only rank 0 writes."""

    def __init__(self, folder: RunFolder, cfg: Config, gan: GANStep, running: RunningMeans, mlflow_run,
                 world: World, fast_path: FastPath, device: torch.device, fixed_noise: torch.Tensor,
                 steps_per_epoch: int, total_steps: int):
        self.folder, self.cfg, self.gan, self.running, self.mlflow_run = folder, cfg, gan, running, mlflow_run
        self.world, self.fast_path, self.device, self.fixed_noise = world, fast_path, device, fixed_noise
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps
        self.log_file = open(folder.log, "a", newline="") if world.is_main else None
        self.started = time.perf_counter()

    def start_clock(self, seconds_before: float) -> None:
        """Training seconds count on from those of the run before its stop."""
        self.started = time.perf_counter() - seconds_before

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def log(self, step: int, progress) -> dict[str, float]:
        """The means since the last log (LOGGED), the epoch and the pace: a row of log.csv, and returned."""
        self.stop_if_diverged(step)
        means = dict(zip(LOGGED, self.running.read()))  # the one host sync
        epoch = (step - 1) // self.steps_per_epoch  # the 0-based epoch that this step belongs to
        seconds, images_seen = self.seconds(), step * self.cfg.batch_size
        if self.world.is_main:
            csv.writer(self.log_file).writerow([step, epoch, images_seen, round(seconds, 3),
                                                *(f"{means[name]:.6f}" for name in LOGGED)])
            self.log_file.flush()
            progress.set_postfix(loss_d=f"{means['loss_d']:.3f}", loss_g=f"{means['loss_g']:.3f}",
                                 d_x=f"{means['d_x']:.2f}", refresh=False)
        return {**means, "epoch": epoch, "images_per_second": images_seen / seconds}

    def grid(self, step: int) -> None:
        if not self.world.is_main:
            return
        fake = denormalize(generate(self.gan.sampled_generator, self.fixed_noise)).cpu()
        path = self.folder.grids / f"step_{step:07d}.png"
        grid = grid_image(fake, scale=display_scale(self.cfg.image_size))
        save_image(grid, path)
        self.mlflow_run.log_artifact(path, "train_grids")
        self.mlflow_run.log_image(grid, key=FIXED_NOISE_GRID, step=step)  # a chart with a step slider

    def snapshot(self, step: int) -> None:
        """G alone, scored later for the quality curve."""
        if self.world.is_main:
            save_tensors(self.folder.snapshots / f"step_{step:07d}.pt",
                         {"generator": self.gan.sampled_generator.state_dict(), "step": step,
                          "images_seen": step * self.cfg.batch_size, "seconds": self.seconds()})

    def checkpoint(self, step: int) -> None:
        self.stop_if_diverged(step)  # never a checkpoint of NaN weights: the last good one must survive
        if self.world.is_main:
            self.folder.save(step, self.cfg.keep_checkpoints, spec=model_spec(self.cfg),
                             epoch=step // self.steps_per_epoch, mlflow_run_id=self.mlflow_run.run_id,
                             **self.gan.state(), resume={"running": self.running.state(), "seconds": self.seconds(),
                                                         "device": self.device.type, "speed": self.fast_path.switches()})

    def stop_if_diverged(self, step: int) -> None:
        bad = self.running.first_bad_step()
        if bad is None and self.gan.weights_finite():
            return
        kept = self.folder.checkpoints()
        last_good = f"the last good checkpoint, {kept[-1]}, is kept" if kept else "no checkpoint was written before it"
        message = (f"training diverged: a loss or D output was not finite at step {bad if bad is not None else step} "
                   f"of {self.total_steps} ({last_good}). Resuming would diverge the same way: lower the learning "
                   "rates (`lr`, `lr_d`, `lr_g`), or try `label_smoothing: 0.1`, and run again.")
        self.mlflow_run.set_tags({"failure": message})
        raise TrainingDiverged(message)

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()


def publish(folder: RunFolder, cfg: Config, gan: GANStep, steps_per_epoch: int, total_steps: int,
            mlflow_run: PipelineRun) -> None:
    """Completed: the run folder's log, grids and snapshots become the stage's declared outputs, the
    final checkpoint is written, MLflow gets the curves, and the run folder is removed. Which G the run
    keeps, and logs as its model, the select_g stage decides from the snapshots."""
    with atomic_path(paths.TRAIN_LOG) as tmp:
        shutil.copyfile(folder.log, tmp)
    for source, target in ((folder.grids, paths.TRAIN_GRIDS), (folder.snapshots, paths.SNAPSHOTS)):
        target.mkdir(parents=True, exist_ok=True)
        for item in sorted(source.iterdir()):
            with atomic_path(target / item.name) as tmp:
                shutil.copyfile(item, tmp)
    save_checkpoint(paths.CHECKPOINT, spec=model_spec(cfg), step=total_steps, epoch=total_steps // steps_per_epoch,
                    mlflow_run_id=mlflow_run.run_id, **gan.state())
    training_curves(paths.TRAIN_LOG, paths.TRAIN_CURVES)
    mlflow_run.log_artifact(paths.TRAIN_CURVES, "figures")
    rows = list(csv.DictReader(open(paths.TRAIN_LOG)))
    mlflow_run.log_metrics({metric_key(GAN, "seconds"): float(rows[-1]["seconds"]) if rows else math.nan},
                           step=total_steps)
    mlflow_run.finish("FINISHED")
    folder.remove()
