"""The train stage: the DCGAN training loop of the PyTorch tutorial, tracked in MLflow and DVC.

Data lives on the device as uint8 and batches are index slices of a per-epoch permutation: no
DataLoader, no decoding, no host-to-device copy per step. Logged values accumulate on the device
and are read once every `log_every` steps, so the loop never waits on the host.

Nothing is lost on a crash: the run checkpoints into checkpoints/<key>/ under the project root (see
checkpoint.py and paths.UNFINISHED_RUNS) and the same command (`dvc repro`, `dvc exp run`) resumes it, bit for bit on a CPU. SIGTERM or Ctrl-C writes a checkpoint and stops; a
non-finite loss stops with the last good checkpoint kept. The declared outputs (log, grids,
snapshots, the final checkpoint) are published from the run folder when training completes.
"""

from __future__ import annotations

import csv
import math
import shutil
import signal
import time
from contextlib import nullcontext
from typing import Iterator

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from dcgan import paths
from dcgan.checkpoint import NOT_IDENTITY, RunFolder, describe_difference, file_digest, save_checkpoint
from dcgan.config import Config
from dcgan.data.normalize import denormalize, normalize
from dcgan.distributed import World, join, leave
from dcgan.errors import ConfigError, UserError
from dcgan.figures import display_scale, grid_image, save_image, training_curves
from dcgan.io import atomic_path, load_tensors, progress_bar, save_tensors
from dcgan.metrics import FIXED_NOISE_GRID, GAN, TRAINING, metric_key
from dcgan.models import build_models, draw_noise, generate, model_spec
from dcgan.speed import SWITCHES, Speed, pick_device, resolve_speed
from dcgan.stop import StopRequest
from dcgan.tracking import training_run
from dcgan.tracking.run_logger import Untracked
from dcgan.tracking.generator_model import log_generator

LOGGED = TRAINING  # the log.csv columns, `gan/<name>` in MLflow
LOG_HEADER = ["step", "epoch", "images_seen", "seconds", *LOGGED]


class TrainingStopped(UserError):
    """SIGTERM or Ctrl-C: a checkpoint was written, the MLflow run is marked KILLED."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention for "ended by signal N"


class TrainingDiverged(UserError):
    """A non-finite loss: the last good checkpoint is kept, the MLflow run is marked FAILED."""


class GANStep:
    """One training step of the tutorial's DCGAN on a uint8 batch, with the fast path's switches.

    Under torchrun each process steps on its shard of the global batch; DistributedDataParallel
    averages the gradients, so the update is the one of the whole batch (BatchNorm's statistics
    are each process's own). Returns the LOGGED values as one tensor on the device, so that the
    loop never waits on the host.
    """

    def __init__(self, generator, discriminator, cfg: Config, device: torch.device, speed: Speed,
                 world: World = World()):
        self.cfg, self.device, self.speed = cfg, device, speed
        memory_format = torch.channels_last if speed.channels_last else torch.contiguous_format
        self.generator = generator.to(device, memory_format=memory_format)
        self.discriminator = discriminator.to(device, memory_format=memory_format)
        torch.backends.cudnn.benchmark = speed.cudnn_benchmark
        adam = dict(betas=(cfg.beta1, 0.999), fused=speed.fused_adam or None)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g_effective, **adam)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr_d_effective, **adam)
        # An exponential moving average of G's weights (and BatchNorm statistics) for sampling, if asked.
        self.ema = (AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                                  use_buffers=True) if cfg.ema_decay else None)
        g_net, d_net = self.generator, self.discriminator
        if world.size > 1:
            device_ids = [device.index] if device.type == "cuda" else None
            g_net, d_net = (DistributedDataParallel(net, device_ids=device_ids) for net in (g_net, d_net))
        self.d_net = d_net
        # Compiled views share their parameters with the nets above, which grids and checkpoints use.
        self.g_forward = torch.compile(g_net) if speed.compile else g_net
        self.d_forward = torch.compile(d_net) if speed.compile else d_net
        self.memory_format = memory_format
        local_batch = cfg.batch_size // world.size
        # One-sided label smoothing: only D's target for real images moves (1 - label_smoothing).
        self.real_target_d = torch.full((local_batch,), 1.0 - cfg.label_smoothing, device=device)
        self.real_target = torch.ones(local_batch, device=device)
        self.fake_target = torch.zeros(local_batch, device=device)

    def d_local(self):
        """Under DDP, keep D's gradients local for this forward/backward: they are all-reduced once,
        after the fake half of the D step, and never for the G step (which does not use them)."""
        return self.d_net.no_sync() if isinstance(self.d_net, DistributedDataParallel) else nullcontext()

    def step(self, real_u8: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.speed.amp)
        real = normalize(real_u8).contiguous(memory_format=self.memory_format)
        with autocast:
            fake = self.g_forward(noise)

        # (1) D step: maximize log D(x) + log(1 - D(G(z))), real and fake in separate batches as in
        # the tutorial (one mixed batch would change BatchNorm's statistics), one backward of the sum.
        self.opt_d.zero_grad(set_to_none=True)
        if isinstance(self.d_net, DistributedDataParallel):
            # DDP all-reduces in backward: the real half's gradients stay local, and the fake half's
            # backward all-reduces their sum once.
            with self.d_local():
                with autocast:
                    d_real_logits = self.d_forward(real).float()
                loss_d_real = bce(d_real_logits, self.real_target_d)
                loss_d_real.backward()
            with autocast:
                d_fake_logits = self.d_forward(fake.detach()).float()
            loss_d_fake = bce(d_fake_logits, self.fake_target)
            loss_d_fake.backward()
        else:
            with autocast:
                d_real_logits = self.d_forward(real).float()
                d_fake_logits = self.d_forward(fake.detach()).float()
            loss_d_real = bce(d_real_logits, self.real_target_d)
            loss_d_fake = bce(d_fake_logits, self.fake_target)
            (loss_d_real + loss_d_fake).backward()
        self.opt_d.step()

        # (2) G step: maximize log D(G(z)) (the non-saturating loss), against the updated D.
        self.opt_g.zero_grad(set_to_none=True)
        with self.d_local():
            with autocast:
                d_fake_after_logits = self.d_forward(fake).float()
            loss_g = bce(d_fake_after_logits, self.real_target)
            loss_g.backward()
        self.opt_g.step()
        if self.ema:
            self.ema.update_parameters(self.generator)
        return torch.stack([loss_d_real + loss_d_fake, loss_g, torch.sigmoid(d_real_logits).mean(),
                            torch.sigmoid(d_fake_logits).mean(), torch.sigmoid(d_fake_after_logits).mean()]).detach()

    def set_lr_scale(self, scale: float) -> None:
        for optimizer, lr in ((self.opt_g, self.cfg.lr_g_effective), (self.opt_d, self.cfg.lr_d_effective)):
            for group in optimizer.param_groups:
                group["lr"] = lr * scale

    def weights_finite(self) -> bool:
        return all(torch.isfinite(p).all() for net in (self.generator, self.discriminator) for p in net.parameters())

    def state(self) -> dict:
        return dict(generator=self.generator, discriminator=self.discriminator, opt_g=self.opt_g, opt_d=self.opt_d,
                    generator_ema=self.ema.module if self.ema else None)

    def load(self, checkpoint: dict) -> None:
        self.generator.load_state_dict(checkpoint["generator"])
        self.discriminator.load_state_dict(checkpoint["discriminator"])
        self.opt_g.load_state_dict(checkpoint["opt_g"])
        self.opt_d.load_state_dict(checkpoint["opt_d"])
        if self.ema:
            self.ema.module.load_state_dict(checkpoint["generator_ema"])
            self.ema.n_averaged.fill_(checkpoint["step"])


def lr_scale(step: int, total_steps: int, decay_start: float) -> float:
    """The learning rates' share at 0-based `step`: 1 until `decay_start` of training, then linearly down to
    1/n at the last step of the n that decay. A function of the step alone, so a resumed run needs no state."""
    first_decaying = math.ceil(decay_start * total_steps)
    if step < first_decaying:
        return 1.0
    return (total_steps - step) / (total_steps - first_decaying)


def epoch_batches(n_images: int, batch_size: int, seed: int, first_step: int = 0,
                  device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Index batches forever from step `first_step` on: each epoch a permutation of its own seed,
    cut into full batches (the last partial one is dropped, as BatchNorm prefers), so every image is
    seen at most once per epoch, and a resumed run sees exactly the batches it would have seen."""
    steps_per_epoch = n_images // batch_size
    epoch, offset = divmod(first_step, steps_per_epoch)
    while True:
        order = torch.randperm(n_images, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).to(device)
        for start in range(offset * batch_size, steps_per_epoch * batch_size, batch_size):
            yield order[start:start + batch_size]
        epoch, offset = epoch + 1, 0


class RunningMeans:
    """Sums of the logged values on the device, and the first step whose values were not finite.
    `read` is the only host sync, every `log_every` steps; under DDP it averages over processes."""

    NONE = 2**62

    def __init__(self, size: int, device: torch.device, world: World = World()):
        self.world = world
        self.sums = torch.zeros(size, device=device)
        self.count = 0
        self.first_bad = torch.tensor(self.NONE, device=device)

    def add(self, values: torch.Tensor, step: int) -> None:
        self.sums += values
        self.count += 1
        bad_here = torch.where(torch.isfinite(values).all(), self.NONE, step)
        torch.minimum(self.first_bad, bad_here, out=self.first_bad)

    def first_bad_step(self) -> int | None:
        step = int(self.world.min(self.first_bad))
        return None if step == self.NONE else step

    def read(self) -> list[float]:
        means = self.world.mean(self.sums / self.count).tolist()
        self.sums.zero_()
        self.count = 0
        return means

    def state(self) -> dict:
        return {"sums": self.sums.cpu(), "count": self.count}

    def load(self, state: dict) -> None:
        self.sums.copy_(state["sums"])
        self.count = state["count"]


def run_identity(cfg: Config, world: World) -> dict:
    """What a checkpoint must share with this run to be resumed by it (see checkpoint.NOT_IDENTITY)."""
    params = {key: value for key, value in cfg.flat().items() if key not in NOT_IDENTITY}
    return {**params, "processes": world.size, "train_data_sha256": file_digest(paths.TRAIN_DATA)}


def speed_of_resumed_run(cfg: Config, speed: Speed, resume: dict, device: torch.device) -> Speed:
    """The switches left on `auto` take the value the run had before its stop (a probe could decide
    otherwise now, and bf16 or not changes the numbers); switches set on or off are the user's."""
    before = resume.get("speed")
    if before is None or resume.get("device") != device.type:
        return speed
    chosen, reasons = speed.switches(), dict(speed.reasons)
    for name in SWITCHES:
        if getattr(cfg, name) == "auto":
            chosen[name] = before[name]
            reasons[name] = "as before the run's stop"
    return Speed(**chosen, reasons=reasons)


def train(cfg: Config, tracked: bool = True) -> None:
    """`tracked=False` (no MLflow run) is for benchmarks/gpu_check.py alone, on machines without MLflow."""
    device = pick_device(cfg.device)
    world, device = join(device)
    try:
        _train(cfg, device, world, tracked)
    finally:
        leave(world)


def _train(cfg: Config, device: torch.device, world: World, tracked: bool) -> None:
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

    generator, discriminator = build_models(cfg)
    gan = GANStep(generator, discriminator, cfg, device, speed, world)
    sampled_generator = gan.ema.module if gan.ema else gan.generator  # grids, snapshots and the sample stage
    fixed_noise = draw_noise(64, cfg, device)  # the same z all run long: watch G learn
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
    tracker = None
    if world.is_main:
        tracker = training_run(cfg, str(device), paths.MLFLOW_RUN, resume_run_id=run_id) if tracked else Untracked()
    if tracker is not None and checkpoint is None:
        tracker.log_params({**speed.as_params(), "processes": world.size})
    elif tracker is not None:
        tracker.set_tag("resumed_at_step", str(first_step))

    def save_grid(step: int) -> None:
        fake = denormalize(generate(sampled_generator, fixed_noise)).cpu()
        path = run.grids / f"step_{step:07d}.png"
        grid = grid_image(fake, scale=display_scale(cfg.image_size))
        save_image(grid, path)
        tracker.log_artifact(path, "train_grids")
        tracker.log_image(grid, key=FIXED_NOISE_GRID, step=step)  # a chart with a step slider

    def snapshot(step: int) -> None:  # G alone, scored later for the quality curve
        save_tensors(run.snapshots / f"step_{step:07d}.pt",
                     {"generator": sampled_generator.state_dict(), "step": step, "images_seen": step * cfg.batch_size,
                      "seconds": time.perf_counter() - started})

    def stop_if_diverged(step: int) -> None:
        bad = running.first_bad_step()
        if bad is None and gan.weights_finite():
            return
        kept = run.checkpoints()
        last_good = f"the last good checkpoint, {kept[-1]}, is kept" if kept else "no checkpoint was written before it"
        message = (f"training diverged: a loss or D output was not finite at step {bad if bad is not None else step} "
                   f"of {total_steps} ({last_good}). Resuming would diverge the same way: lower the learning rates "
                   "(`lr`, `lr_d`, `lr_g`), or try `label_smoothing: 0.1`, and run again.")
        if tracker is not None:
            tracker.set_tag("failure", message)
        raise TrainingDiverged(message)

    def save_checkpoint_now(step: int) -> None:
        stop_if_diverged(step)  # never a checkpoint of NaN weights: the last good one must survive
        if world.is_main:
            run.save(step, cfg.keep_checkpoints, spec=model_spec(cfg), epoch=step // steps_per_epoch,
                     mlflow_run_id=tracker.run_id, **gan.state(),
                     resume={"running": running.state(), "seconds": time.perf_counter() - started,
                             "device": device.type, "speed": speed.switches()})

    if world.is_main and checkpoint is None:
        save_grid(0)  # the untrained G, where the tutorial's progress animation starts too
    batches = epoch_batches(n_images, cfg.batch_size, cfg.seed, first_step, device)
    started = time.perf_counter() - seconds_before
    stop = StopRequest()
    progress = progress_bar(range(first_step, total_steps), desc="train", unit="step", initial=first_step,
                            total=total_steps, disable=not world.is_main)
    log_file = open(run.log, "a", newline="") if world.is_main else None
    try:
        for step in progress:
            epoch = step // steps_per_epoch
            noise = world.shard(draw_noise(cfg.batch_size, cfg, device))
            gan.set_lr_scale(lr_scale(step, total_steps, cfg.lr_decay_start))  # 1 throughout by default
            running.add(gan.step(images[world.shard(next(batches))], noise), step + 1)

            done = step + 1
            if done % cfg.log_every == 0 or done == total_steps:
                stop_if_diverged(done)
                means = dict(zip(LOGGED, running.read()))  # the one host sync
                seconds = time.perf_counter() - started
                if world.is_main:
                    csv.writer(log_file).writerow([done, epoch, done * cfg.batch_size, round(seconds, 3),
                                                   *(f"{means[name]:.6f}" for name in LOGGED)])
                    log_file.flush()
                    tracker.log_metrics({metric_key(GAN, name): value for name, value in
                                         {**means, "epoch": epoch, "images_per_second": done * cfg.batch_size / seconds}.items()},
                                        step=done)
                    progress.set_postfix(loss_d=f"{means['loss_d']:.3f}", loss_g=f"{means['loss_g']:.3f}",
                                         d_x=f"{means['d_x']:.2f}", refresh=False)
            if world.is_main and (done % cfg.sample_every == 0 or done == total_steps):
                save_grid(done)
            if world.is_main and (done % cfg.eval_every == 0 or done == total_steps):
                snapshot(done)
            due = done % cfg.checkpoint_every == 0 or done % steps_per_epoch == 0
            stopping = done < total_steps and (world.size == 1 or done % cfg.log_every == 0) and stop.agreed(world, device)
            if due or stopping:
                save_checkpoint_now(done)
            if stopping:
                signum = stop.signum or signal.SIGTERM  # under DDP: another process's signal
                raise TrainingStopped(signum, f"stopped by {signal.Signals(signum).name} at step {done} of "
                                              f"{total_steps}; checkpoint written to {run.path}. Run `dvc repro` "
                                              "to resume.")
    except BaseException as exc:
        if tracker is not None:  # the MLflow run says how it ended, even if the server is down now
            tracker.finish("KILLED" if isinstance(exc, (TrainingStopped, KeyboardInterrupt)) else "FAILED")
        raise
    finally:
        stop.restore()
        progress.close()
        if log_file is not None:
            log_file.close()

    if world.is_main:
        publish(run, cfg, gan, sampled_generator, steps_per_epoch, total_steps, tracker)
        print(f"trained {total_steps} steps ({cfg.epochs} epochs of {n_images} images) "
              f"in {time.perf_counter() - started:.0f} s on {device}"
              + (f" x {world.size} processes" if world.size > 1 else ""))


def publish(run: RunFolder, cfg: Config, gan: GANStep, sampled_generator: torch.nn.Module, steps_per_epoch: int,
            total_steps: int, tracker) -> None:
    """Completed: the run folder's log, grids and snapshots become the stage's declared outputs, the
    final checkpoint is written, MLflow gets the curves and G as a model, and the run folder is removed."""
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
    tracker.upload("the generator model", lambda: log_generator(sampled_generator, cfg, tracker.run_id))
    tracker.finish("FINISHED")
    run.remove()
