"""The train stage: the DCGAN training loop of the PyTorch tutorial, tracked in MLflow and DVC.

It reads top to bottom as the tutorial's loop: start or resume, the loop of steps (step.py), then
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
from dcgan.figures import display_scale, grid_image, save_image, training_curves
from dcgan.io import atomic_path, load_tensors, progress_bar, save_tensors
from dcgan.metrics import FIXED_NOISE_GRID, GAN, TRAINING, metric_key
from dcgan.models import build_models, draw_noise, generate, model_spec
from dcgan.speed import resolve_speed, speed_of_resumed_run
from dcgan.step import GANStep, RunningMeans, epoch_batches, lr_scale
from dcgan.stop import StopRequest
from dcgan.switches import Speed
from dcgan.tracking import check_access, training_run
from dcgan.tracking.run_logger import Untracked

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
    run = RunFolder(paths.unfinished_runs(), run_identity(cfg, world))
    if world.is_main:
        run.lock()  # before reading: never resume from a folder that another training still writes
    checkpoint = run.latest(model_spec(cfg))
    world.barrier()  # every process has read the run folder before rank 0 may reset it
    # Refuses impossible switches before any work; a resumed run keeps the switches it ran with.
    speed = resolve_speed(cfg, device, probe=world.size == 1 and checkpoint is None)
    if checkpoint is not None:
        speed = speed_of_resumed_run(cfg, speed, checkpoint["resume"], device)
    torch.manual_seed(cfg.seed)  # the same on every process: they draw the same global noise

    images = load_tensors(paths.TRAIN_DATA)["images"].to(device)  # uint8, resident for the whole run
    n_images = images.shape[0]
    steps_per_epoch = n_images // cfg.batch_size  # the last partial batch is dropped, as BatchNorm prefers
    if steps_per_epoch == 0:
        raise ConfigError(f"`batch_size` = {cfg.batch_size} is larger than the {n_images} training images.")
    total_steps = cfg.epochs * steps_per_epoch

    gan = GANStep(*build_models(cfg), cfg, device, speed, world)
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
        announce(cfg, device, world, speed, run, checkpoint, first_step, total_steps)
    # Only rank 0 logs; the other ranks' tracker does nothing.
    tracked_here = world.is_main and tracked
    tracker = training_run(cfg, str(device), paths.MLFLOW_RUN, resume_run_id=run_id) if tracked_here else Untracked()
    if checkpoint is None:
        tracker.log_params({**speed.as_params(), "processes": world.size})
    else:
        tracker.set_tag("resumed_at_step", str(first_step))
    record = RunRecord(run, cfg, gan, running, tracker, world, speed, device, fixed_noise, steps_per_epoch,
                       total_steps)
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
                record.log(done, progress)
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
                                              f"{total_steps}; checkpoint written to {run.path}. Run `dvc repro` "
                                              "to resume.")
    except BaseException as exc:  # the MLflow run says how it ended, even if the server is down now
        tracker.finish("KILLED" if isinstance(exc, (TrainingStopped, KeyboardInterrupt)) else "FAILED")
        raise
    finally:
        stop.restore()
        progress.close()
        record.close()

    # Publish: the run folder's results become the stage's outputs.
    if world.is_main:
        publish(run, cfg, gan, steps_per_epoch, total_steps, tracker)
        print(f"trained {total_steps} steps ({cfg.epochs} epochs of {n_images} images) "
              f"in {record.seconds():.0f} s on {device}" + (f" x {world.size} processes" if world.size > 1 else ""))


def announce(cfg: Config, device: torch.device, world: World, speed: Speed, run: RunFolder, checkpoint: dict | None,
             first_step: int, total_steps: int) -> None:
    """Rank 0: say how the run goes, and set up its folder (kept up to the resumed step, or fresh)."""
    print(f"fast path on {device}:\n{speed.describe()}", flush=True)
    if world.size > 1:
        print(f"data parallel: {world.size} processes, {cfg.batch_size // world.size} images each per step "
              f"(global batch {cfg.batch_size})")
    if checkpoint is not None:
        print(f"resuming from step {first_step} of {total_steps}: {run.path}")
        run.keep_until(first_step, LOG_HEADER)
    else:
        for folder, identity in run.others():
            print(f"starting fresh: {folder} holds an unfinished run with other params "
                  f"({describe_difference(run.identity, identity)}); it is kept and resumes when run "
                  "with its params again (delete the folder to free the space)")
        run.create(LOG_HEADER)  # over a leftover without a usable checkpoint: its log and grids go


class RunRecord:
    """What a training writes as it goes: the log's rows, fixed-noise grids, G's snapshots and
    checkpoints into its run folder, and the same values and grids to MLflow. Every process takes
    part in the collectives (the logged means, the finiteness check); only rank 0 writes."""

    def __init__(self, run: RunFolder, cfg: Config, gan: GANStep, running: RunningMeans, tracker, world: World,
                 speed: Speed, device: torch.device, fixed_noise: torch.Tensor, steps_per_epoch: int, total_steps: int):
        self.run, self.cfg, self.gan, self.running, self.tracker = run, cfg, gan, running, tracker
        self.speed, self.device, self.fixed_noise = speed, device, fixed_noise
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps
        self.writes = world.is_main
        self.log_file = open(run.log, "a", newline="") if self.writes else None
        self.started = time.perf_counter()

    def start_clock(self, seconds_before: float) -> None:
        """Training seconds count on from those of the run before its stop."""
        self.started = time.perf_counter() - seconds_before

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def log(self, step: int, progress) -> None:
        self.stop_if_diverged(step)
        means = dict(zip(LOGGED, self.running.read()))  # the one host sync
        if not self.writes:
            return
        epoch = (step - 1) // self.steps_per_epoch  # the 0-based epoch that this step belongs to
        seconds, images_seen = self.seconds(), step * self.cfg.batch_size
        csv.writer(self.log_file).writerow([step, epoch, images_seen, round(seconds, 3),
                                            *(f"{means[name]:.6f}" for name in LOGGED)])
        self.log_file.flush()
        self.tracker.log_metrics({metric_key(GAN, name): value for name, value in
                                  {**means, "epoch": epoch, "images_per_second": images_seen / seconds}.items()},
                                 step=step)
        progress.set_postfix(loss_d=f"{means['loss_d']:.3f}", loss_g=f"{means['loss_g']:.3f}",
                             d_x=f"{means['d_x']:.2f}", refresh=False)

    def grid(self, step: int) -> None:
        if not self.writes:
            return
        fake = denormalize(generate(self.gan.sampled_generator, self.fixed_noise)).cpu()
        path = self.run.grids / f"step_{step:07d}.png"
        grid = grid_image(fake, scale=display_scale(self.cfg.image_size))
        save_image(grid, path)
        self.tracker.log_artifact(path, "train_grids")
        self.tracker.log_image(grid, key=FIXED_NOISE_GRID, step=step)  # a chart with a step slider

    def snapshot(self, step: int) -> None:
        """G alone, scored later for the quality curve."""
        if self.writes:
            save_tensors(self.run.snapshots / f"step_{step:07d}.pt",
                         {"generator": self.gan.sampled_generator.state_dict(), "step": step,
                          "images_seen": step * self.cfg.batch_size, "seconds": self.seconds()})

    def checkpoint(self, step: int) -> None:
        self.stop_if_diverged(step)  # never a checkpoint of NaN weights: the last good one must survive
        if self.writes:
            self.run.save(step, self.cfg.keep_checkpoints, spec=model_spec(self.cfg), epoch=step // self.steps_per_epoch,
                          mlflow_run_id=self.tracker.run_id, **self.gan.state(),
                          resume={"running": self.running.state(), "seconds": self.seconds(),
                                  "device": self.device.type, "speed": self.speed.switches()})

    def stop_if_diverged(self, step: int) -> None:
        bad = self.running.first_bad_step()
        if bad is None and self.gan.weights_finite():
            return
        kept = self.run.checkpoints()
        last_good = f"the last good checkpoint, {kept[-1]}, is kept" if kept else "no checkpoint was written before it"
        message = (f"training diverged: a loss or D output was not finite at step {bad if bad is not None else step} "
                   f"of {self.total_steps} ({last_good}). Resuming would diverge the same way: lower the learning "
                   "rates (`lr`, `lr_d`, `lr_g`), or try `label_smoothing: 0.1`, and run again.")
        self.tracker.set_tag("failure", message)
        raise TrainingDiverged(message)

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()


def publish(run: RunFolder, cfg: Config, gan: GANStep, steps_per_epoch: int, total_steps: int, tracker) -> None:
    """Completed: the run folder's log, grids and snapshots become the stage's declared outputs, the
    final checkpoint is written, MLflow gets the curves, and the run folder is removed. Which G the run
    keeps, and logs as its model, the select_g stage decides from the snapshots."""
    with atomic_path(paths.TRAIN_LOG) as tmp:
        shutil.copyfile(run.log, tmp)
    for source, target in ((run.grids, paths.TRAIN_GRIDS), (run.snapshots, paths.SNAPSHOTS)):
        target.mkdir(parents=True, exist_ok=True)
        for item in sorted(source.iterdir()):
            with atomic_path(target / item.name) as tmp:
                shutil.copyfile(item, tmp)
    save_checkpoint(paths.CHECKPOINT, spec=model_spec(cfg), step=total_steps, epoch=total_steps // steps_per_epoch,
                    mlflow_run_id=tracker.run_id, **gan.state())
    training_curves(paths.TRAIN_LOG, paths.TRAIN_CURVES)
    tracker.log_artifact(paths.TRAIN_CURVES, "figures")
    rows = list(csv.DictReader(open(paths.TRAIN_LOG)))
    tracker.log_metrics({metric_key(GAN, "seconds"): float(rows[-1]["seconds"]) if rows else math.nan}, step=total_steps)
    tracker.finish("FINISHED")
    run.remove()
