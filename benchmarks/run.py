"""The speed benchmark: training throughput feature by feature, against the tutorial script as a
whole process, evaluation time, and the pipeline.

One command, unchanged on a CPU or a GPU; figures are printed and written to reports/benchmark.json:

    .venv/bin/python benchmarks/run.py                  # everything (about 35 minutes on 2 CPU cores)
    .venv/bin/python benchmarks/run.py --only versus    # or: train, evaluate, pipeline, memory
    .venv/bin/python benchmarks/run.py --profile        # plus a torch.profiler table of the eager step

Training: 64x64 Fashion-MNIST (the defaults' model), images/s = batch / median time of the timed
steps after warm-up. "tutorial loop" is the baseline, benchmarks/tutorial_dcgan.py's own loop
(pytorch/examples dcgan/main.py) driven one iteration at a time in this process: a DataLoader (2
workers) decoding and resizing PIL images per step, a host-to-device copy per step, `.item()` on
every logged value and a printed line every step (its printing goes to /dev/null here). "eager
fp32" is this pipeline's loop with every fast-path switch off; each following row adds one switch
to the row above it.

Versus (`--only versus`): benchmarks/tutorial_dcgan.py (pytorch/examples dcgan/main.py as a user
runs it) and our train stage (`python stages/train.py`, MLflow included), each as its own process,
on the same first images, 64x64, batch 128, the same step count, alternating A B A B. The median
ratio of whole-process wall times is the figure. Ours starts with an empty probe cache, so its first
run pays for the speed probe (docs/speed.md); later runs read the verdict, as on a user's machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dcgan.config import load_config  # noqa: E402
from dcgan.data.download import fetch_fashion_mnist  # noqa: E402
from dcgan.data.preprocess import prepare_split  # noqa: E402
from dcgan.io import write_json  # noqa: E402
from dcgan.models import build_models, draw_noise  # noqa: E402
from dcgan.device import pick_device  # noqa: E402
from dcgan.fast_path import cpu, has_bf16_units  # noqa: E402
from dcgan.gan_step import GANStep, epoch_batches  # noqa: E402
from dcgan.fast_path import FastPath  # noqa: E402
from project_copy import copy_project  # noqa: E402

MIRROR = "/usr/share/datasets/fashion-mnist"
MB = 1024 * 1024


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rss_mb() -> float:
    """Resident memory of this process now (the peak, ru_maxrss, only ever grows across rows)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_steps(step, count: int, warmup: int, device: torch.device) -> tuple[list[float], float]:
    """(seconds of each timed step, seconds of the warm-up, which holds any compilation)."""
    started = time.perf_counter()
    for _ in range(warmup):
        step()
    sync(device)
    warmup_seconds = time.perf_counter() - started
    times = []
    for _ in range(count):
        started = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - started)
    return times, warmup_seconds


def flops_per_image(cfg, device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    generator, discriminator = build_models(cfg)
    gan = GANStep(generator, discriminator, cfg, device, FastPath())
    batch = torch.randint(0, 256, (cfg.batch_size, cfg.nc, cfg.image_size, cfg.image_size), dtype=torch.uint8,
                          device=device)
    noise = draw_noise(cfg.batch_size, cfg, device)
    with FlopCounterMode(display=False) as counter:
        gan.step(batch, noise)
    return counter.get_total_flops() / cfg.batch_size


def tutorial_loop(cfg, raw_root: Path, device: torch.device):
    """benchmarks/tutorial_dcgan.py's loop, one iteration a call (set up before the first). Its nets are
    the tutorial's, 64x64 only: ours there, layer for layer (tests/test_models.py)."""
    import tutorial_dcgan

    if cfg.image_size != 64:
        raise SystemExit(f"the tutorial's nets make 64x64 images, not {cfg.image_size}x{cfg.image_size}")
    out = raw_root / "tutorial-out"  # its real_samples.png and fake_samples_*.png
    opt = tutorial_dcgan.parse_options(
        ["--dataset", "fashion_mnist", "--dataroot", str(raw_root), "--batchSize", str(cfg.batch_size),
         "--imageSize", "64", "--nz", str(cfg.nz), "--ngf", str(cfg.ngf), "--ndf", str(cfg.ndf), "--lr", str(cfg.lr),
         "--beta1", str(cfg.beta1), "--manualSeed", str(cfg.seed), "--outf", str(out)]
        + (["--cuda"] if device.type == "cuda" else []))
    quiet = open(os.devnull, "w")
    iterations = tutorial_dcgan.train(opt)

    def step() -> None:
        with contextlib.redirect_stdout(quiet):  # its line every step, printed, to nowhere
            next(iterations)

    step()  # the set-up: data set, DataLoader, nets, optimizers
    return step


def fast_loop(cfg, images: torch.Tensor, device: torch.device, speed: FastPath):
    generator, discriminator = build_models(cfg)
    gan = GANStep(generator, discriminator, cfg, device, speed)
    batches = epoch_batches(len(images), cfg.batch_size, cfg.seed, device=device)
    sums = torch.zeros(5, device=device)

    def step() -> None:  # as train's loop; the sums are read every log_every steps there, never here
        sums.add_(gan.step(images[next(batches)], draw_noise(cfg.batch_size, cfg, device)))

    return step


def bench_train(args, device: torch.device) -> list[dict]:
    base = load_config(ROOT / "params.yaml").model_copy(update={"image_size": args.image_size, "dataset": "fashion_mnist",
                                                                "nz": args.nz, "ngf": args.width, "ndf": args.width})
    raw_root = Path(tempfile.mkdtemp(prefix="bench-raw-"))
    fetch_fashion_mnist(args.data, raw_root)
    images_u8 = prepare_split(raw_root, train=True, size=args.image_size)["images"].to(device)
    cuda = device.type == "cuda"
    variants = [("tutorial loop", None), ("eager fp32", FastPath()),
                ("+ channels_last", FastPath(channels_last=True)),
                ("+ fused Adam", FastPath(channels_last=True, fused_adam=True))]
    if cuda:
        variants += [("+ cudnn.benchmark", FastPath(channels_last=True, fused_adam=True, cudnn_benchmark=True)),
                     ("+ bf16 autocast", FastPath(channels_last=True, fused_adam=True, cudnn_benchmark=True,
                                               amp=torch.cuda.is_bf16_supported()))]
    elif has_bf16_units():
        variants.append(("+ bf16 autocast", FastPath(channels_last=True, fused_adam=True, amp=True)))
    if args.compile:
        variants.append(("+ torch.compile", FastPath(**{**variants[-1][1].switches(), "compile": True})))
    rows = []
    for batch_size in args.batch_sizes:
        cfg = base.model_copy(update={"batch_size": batch_size})
        flops = flops_per_image(cfg, device)
        for name, speed in variants:
            torch.manual_seed(0)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            step = tutorial_loop(cfg, raw_root, device) if speed is None else fast_loop(cfg, images_u8, device, speed)
            times, warmup = timed_steps(step, args.steps, args.warmup, device)
            median = statistics.median(times)
            row = {"batch_size": batch_size, "variant": name, "images_per_second": round(batch_size / median, 1),
                   "median_step_ms": round(median * 1000, 2), "warmup_seconds": round(warmup, 1),
                   "timed_steps": len(times), "gflop_per_image": round(flops / 1e9, 3),
                   "achieved_tflops": round(flops * batch_size / median / 1e12, 3),
                   "host_rss_mb": round(rss_mb()),
                   "device_max_allocated_mb": round(torch.cuda.max_memory_allocated() / MB) if cuda else None}
            rows.append(row)
            print(f"  batch {batch_size:4d}  {name:18s} {row['images_per_second']:10.1f} images/s  "
                  f"({row['median_step_ms']} ms/step, warm-up {row['warmup_seconds']} s, "
                  f"{row['achieved_tflops']} TFLOP/s, RSS {row['host_rss_mb']} MB"
                  + (f", device {row['device_max_allocated_mb']} MB)" if cuda else ")"), flush=True)
            del step
    shutil.rmtree(raw_root, ignore_errors=True)
    return rows


# Run a command, then print its output and the peak RSS of its largest descendant: a fresh process per
# command, so that each figure is that command's own (RUSAGE_CHILDREN only ever grows within one process).
PEAK_RSS = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, "
            "stderr=subprocess.STDOUT, text=True); print(done.stdout + '\\npeak_rss_kb ' + "
            "str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss), end=''); sys.exit(done.returncode)")


def timed_process(command: list[str], cwd: Path, env: dict) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB of its largest process, output) of one whole process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *command], cwd=cwd, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    output, _, peak = done.stdout.rpartition("\npeak_rss_kb ")
    return seconds, round(int(peak) / 1024), output


def bench_versus_tutorial(args, device: torch.device) -> dict:
    steps, batch = args.versus_steps, 128
    project = copy_project(Path(tempfile.mkdtemp(prefix="bench-versus-")) / "project",
                           dict(image_size=64, batch_size=batch, epochs=1, max_train_images=steps * batch,
                                device=device.type))
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(Path.home()),
           "XDG_CACHE_HOME": str(project.parent / "cache"),  # no earlier probe verdict: the first run measures
           "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}
    subprocess.run(["dvc", "repro", "-q", "preprocess"], cwd=project, env=env, check=True, stdout=subprocess.DEVNULL)
    tutorial = ["python", str(ROOT / "benchmarks" / "tutorial_dcgan.py"), "--dataset", "fashion_mnist", "--dataroot",
                str(project / "data" / "raw"), "--steps", str(steps), "--max-images", str(steps * batch),
                "--batchSize", str(batch), "--imageSize", "64", "--manualSeed", "999",
                "--outf", str(project.parent / "tutorial-out")] + (["--cuda"] if device.type == "cuda" else [])
    ours = ["python", "stages/train.py"]
    pairs, fast_path = [], []
    for pair in range(args.pairs):
        row = {}
        for name, command in (("tutorial", tutorial), ("ours", ours)):
            seconds, peak, output = timed_process(command, project, env)
            row[f"{name}_seconds"], row[f"{name}_peak_rss_mb"] = round(seconds, 2), peak
            if name == "ours":
                lines = output.splitlines()
                first = next((i for i, line in enumerate(lines) if line.startswith("fast path on")), None)
                fast_path = lines[first + 1:first + 6] if first is not None else fast_path
        row["wall_ratio"] = round(row["tutorial_seconds"] / row["ours_seconds"], 3)
        pairs.append(row)
        print(f"  pair {pair + 1}: tutorial {row['tutorial_seconds']:6.1f} s ({row['tutorial_peak_rss_mb']} MB), "
              f"ours {row['ours_seconds']:6.1f} s ({row['ours_peak_rss_mb']} MB): {row['wall_ratio']:.2f}x", flush=True)
    shutil.rmtree(project.parent, ignore_errors=True)
    images = steps * batch
    median = {name: statistics.median(row[f"{name}_seconds"] for row in pairs) for name in ("tutorial", "ours")}
    ratio = statistics.median(row["wall_ratio"] for row in pairs)
    print(f"  median: tutorial {median['tutorial']:.1f} s = {images / median['tutorial']:.1f} images/s, ours "
          f"{median['ours']:.1f} s = {images / median['ours']:.1f} images/s: ours is {ratio:.2f}x the tutorial "
          f"(range {min(r['wall_ratio'] for r in pairs):.2f}-{max(r['wall_ratio'] for r in pairs):.2f}x)")
    print("  our fast path:\n" + "\n".join(fast_path))
    return {"what": "whole process: benchmarks/tutorial_dcgan.py vs python stages/train.py (MLflow on), same images",
            "image_size": 64, "batch_size": batch, "steps": steps, "pairs": pairs,
            "median_wall_ratio": round(ratio, 3),  # tutorial seconds / ours: also ours' images/s over the tutorial's
            "tutorial_images_per_second": round(images / median["tutorial"], 1),
            "ours_images_per_second": round(images / median["ours"], 1),
            "our_fast_path": [line.strip() for line in fast_path],
            "cpu_model": cpu().model, "cpu_flags": sorted(cpu().flags), "cpu_threads": torch.get_num_threads()}


def bench_evaluate(args) -> dict:
    """Time of the domain-classifier scores for 10,000 samples, as the evaluate stage computes them
    (features of samples, test split and floor set; generated scores and floor). The classifier's
    weights do not change the time, so an untrained one stands in."""
    from dcgan.evaluate.classes import class_shares
    from dcgan.evaluate.classifier import Classifier, predict
    from dcgan.evaluate.manifold import real_radii
    from dcgan.evaluate.scores import classifier_scores

    cfg = load_config(ROOT / "params.yaml")
    raw_root = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    fetch_fashion_mnist(MIRROR, raw_root)
    real = prepare_split(raw_root, train=True, size=cfg.eval_image_size, max_images=20_000)["images"]
    test = prepare_split(raw_root, train=False, size=cfg.eval_image_size)["images"]
    samples, floor_set = real[:10_000], real[10_000:]
    torch.manual_seed(0)
    model = Classifier(1, 10, cfg.eval_image_size).eval()
    parts = {}
    started = time.perf_counter()
    features = {name: predict(model, images, cfg.eval_image_size)
                for name, images in (("samples", samples), ("test", test), ("floor", floor_set))}
    parts["features (30,000 images)"] = time.perf_counter() - started
    shares = class_shares(features["test"][1])
    started = time.perf_counter()
    radii = real_radii(features["test"][0])
    parts["k-NN balls of the test set"] = time.perf_counter() - started
    for name in ("samples", "floor"):
        started = time.perf_counter()
        classifier_scores(features[name][0], features[name][1], features["test"][0], shares, cfg, radii)
        parts[f"scores of {name}"] = time.perf_counter() - started
    shutil.rmtree(raw_root, ignore_errors=True)
    total = sum(parts.values())
    for name, seconds in parts.items():
        print(f"  {name:28s} {seconds:6.1f} s")
    print(f"  {'total':28s} {total:6.1f} s  (target: <= 20 s on the 2-core CPU)")
    return {"n_samples": 10_000, "seconds": round(total, 1), **{k: round(v, 2) for k, v in parts.items()}}


def quick_cpu_params() -> dict:
    """The quick CPU variant's overrides, as scripts/pipeline.sh (their one definition) passes them
    (`-S key=value`; the value read as YAML, as DVC reads it)."""
    line = next(line for line in (ROOT / "scripts" / "pipeline.sh").read_text().splitlines()
                if line.startswith("QUICK_CPU=("))
    items = [item.split("=", 1) for item in line.removeprefix("QUICK_CPU=(").removesuffix(")").split() if item != "-S"]
    return {key: yaml.safe_load(value) for key, value in items}


def bench_pipeline(device: torch.device) -> dict:
    """Wall time of each stage of `dvc repro` in a fresh copy, then of a no-op re-run. With a GPU, the
    defaults; on a CPU, the quick CPU variant that `make pipeline` runs there (the defaults take hours)."""
    copy = copy_project(Path(tempfile.mkdtemp(prefix="bench-pipeline-")) / "project",
                        quick_cpu_params() if device.type != "cuda" else {})
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(Path.home())}
    stages = ["download", "preprocess", "prepare_eval", "classifier", "train", "sample", "evaluate"]
    seconds, peak_rss = {}, {}
    for stage in stages:
        started = time.perf_counter()
        peak_rss[stage] = timed_process(["dvc", "repro", "--single-item", stage], copy, env)[1]
        seconds[stage] = round(time.perf_counter() - started, 1)
        print(f"  {stage:14s} {seconds[stage]:8.1f} s   peak RSS of its largest process: {peak_rss[stage]} MB",
              flush=True)
    started = time.perf_counter()
    subprocess.run(["dvc", "repro"], cwd=copy, env=env, check=True, stdout=subprocess.DEVNULL)
    noop = round(time.perf_counter() - started, 1)
    print(f"  {'total':14s} {sum(seconds.values()):8.1f} s; no-op re-run: {noop} s")
    shutil.rmtree(copy.parent, ignore_errors=True)
    return {"config": "defaults" if device.type == "cuda" else f"quick CPU variant {quick_cpu_params()}",
            "stage_seconds": seconds, "stage_peak_rss_mb": peak_rss, "total_seconds": round(sum(seconds.values()), 1),
            "noop_rerun_seconds": noop}


def bench_train_memory(seconds: float = 90) -> dict:
    """Host memory of the real train stage on the full Fashion-MNIST at the defaults (64x64): run it
    for `seconds`, read its peak RSS (VmHWM), then stop it with SIGTERM as a scheduler would."""
    copy = copy_project(Path(tempfile.mkdtemp(prefix="bench-memory-")) / "project")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(Path.home())}
    subprocess.run(["dvc", "repro", "-q", "preprocess"], cwd=copy, env=env, check=True, stdout=subprocess.DEVNULL)
    train = subprocess.Popen([sys.executable, "stages/train.py"], cwd=copy, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(seconds)
    status = Path(f"/proc/{train.pid}/status").read_text()
    peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
    train.send_signal(signal.SIGTERM)
    _, stderr = train.communicate(timeout=300)
    stopped = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    print(f"  train stage, defaults (64x64, full Fashion-MNIST): peak RSS {peak:.0f} MB after {seconds:.0f} s; "
          f"SIGTERM -> exit {train.returncode}: {stopped}")
    shutil.rmtree(copy.parent, ignore_errors=True)
    return {"config": "defaults (64x64, 60,000 images, batch 128)", "seconds_observed": seconds,
            "train_stage_peak_rss_mb": round(peak), "sigterm_exit_code": train.returncode, "sigterm_message": stopped}


def profile_step(device: torch.device) -> None:
    from torch.profiler import ProfilerActivity, profile

    cfg = load_config(ROOT / "params.yaml").model_copy(update={"image_size": 64})
    step = fast_loop(cfg, torch.randint(0, 256, (1024, 1, 64, 64), dtype=torch.uint8, device=device), device, FastPath())
    step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(3):
            step()
        sync(device)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["versus", "train", "evaluate", "pipeline", "memory"], action="append")
    parser.add_argument("--pairs", type=int, default=3, help="versus: alternating tutorial/ours pairs")
    parser.add_argument("--versus-steps", type=int, default=50, help="versus: training steps of each process")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--steps", type=int, help="timed steps per row (default: 50 on CUDA, 5 on a CPU)")
    parser.add_argument("--warmup", type=int, help="warm-up steps per row (default: 10 on CUDA, 2 on a CPU)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--data", default=MIRROR, help="the Fashion-MNIST .gz files")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="train: leave out torch.compile")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmark.json")
    args = parser.parse_args()
    args.image_size, args.nz, args.width = 64, 100, 64  # the defaults' model
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    args.steps = args.steps or (50 if cuda else 5)
    args.warmup = args.warmup or (10 if cuda else 2)
    parts = args.only or ["versus", "train", "evaluate", "pipeline", "memory"]

    report = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report.update({"date": datetime.date.today().isoformat(), "torch": torch.__version__,
                   "device": torch.cuda.get_device_name() if cuda else f"CPU ({cpu().model}, "
                                                                       f"{torch.get_num_threads()} threads)"})
    if "versus" in parts:
        print(f"whole process vs the tutorial script (64x64, batch 128, {args.versus_steps} steps, "
              f"{args.pairs} pairs) on {report['device']}:")
        report["versus_tutorial"] = bench_versus_tutorial(args, device)
    if "train" in parts:
        print(f"training throughput on {report['device']}, 64x64 Fashion-MNIST:")
        report["train"] = bench_train(args, device)
    if "evaluate" in parts:
        print("evaluation (domain-classifier scores of 10,000 samples):")
        report["evaluate"] = bench_evaluate(args)
    if "pipeline" in parts:
        print("pipeline (dvc repro, stage by stage, in a fresh copy):")
        report["pipeline"] = bench_pipeline(device)
    if "memory" in parts:
        print("host memory of the train stage (real run, then SIGTERM):")
        report["train_memory"] = bench_train_memory()
    report["host_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.profile:
        profile_step(device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, report)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
