"""The GPU check, in one call (about 5-8 minutes on one GPU; see benchmarks/README.md):

1. the `gpu`-marked tests;
2. the training throughput table at batch 128 and 512: the tutorial's loop, eager, then each switch
   added in turn (bf16 and torch.compile with their warm-up times);
3. the default training (params.yaml: 64x64, 5 epochs, the full Fashion-MNIST) through the package's
   own train loop, end to end, with tracking off (the GPU machine has no MLflow: `train(tracked=False)`,
   a mode for this check alone);
4. 10,000 samples of that G as uint8 files of at most 15 MiB each, and report.json, into OUT;
5. runs sharing the device: 1, 2 and 4 trainings of the quick variant at once (as `dvc queue start -j N`
   runs a sweep's seeds), their wall time and runs per hour.

    python benchmarks/gpu_check.py OUT [--data DIR]      # on the GPU machine (make gpu-check)
    python benchmarks/gpu_check.py OUT --smoke           # the same steps on the CPU at tiny sizes (make test)
    python benchmarks/gpu_check.py OUT --study FILE      # instead of the steps: a study, configurations x seeds

A study (e.g. benchmarks/study_64px.yaml) trains each configuration over each seed, keeps its G and
scores it as the pipeline's select_g, sample and evaluate stages do, with the domain classifier and
test split carried from here (make gpu-carry), and writes a row per run into OUT/report.json as it
goes; `dcgan-compare --study OUT/report.json` then compares the configurations over their seeds.

Back here, `python benchmarks/gpu_check.py --score OUT` scores the samples with the pipeline's own
domain classifier (run `dvc repro classifier` first).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dcgan import paths  # noqa: E402
from dcgan.config import load_config  # noqa: E402
from dcgan.data.download import fetch_fashion_mnist  # noqa: E402
from dcgan.data.preprocess import prepare_split  # noqa: E402
from dcgan.errors import UserError, run_stage  # noqa: E402
from dcgan.io import save_tensors, write_json  # noqa: E402
from dcgan.device import pick_device  # noqa: E402
from dcgan.fast_path import cpu  # noqa: E402

CARRIED_DATA = ROOT / ".gpu-carry" / "fashion-mnist"  # what benchmarks/README.md's carry command brings
CARRIED_EVAL = ROOT / ".gpu-carry" / "eval"  # the domain classifier and the test split, for a study's scores
DEBIAN_DATA = Path("/usr/share/datasets/fashion-mnist")
MAX_FILE_BYTES = 15 * 1024 * 1024
# The quick variant of scripts/pipeline.sh at 2 epochs: a sweep's small run, for step 5.
SHARED_RUN = dict(image_size=32, ngf=32, ndf=32, epochs=2, label_smoothing=0.1, log_every=50, sample_every=10_000,
                  eval_every=10_000, checkpoint_every=10_000)
SHARED_COUNTS = (1, 2, 4)
SMOKE = dict(image_size=16, nz=16, ngf=8, ndf=8, batch_size=32, epochs=1, max_train_images=256, log_every=2,
             sample_every=4, eval_every=4, n_samples=300)
STUDY_SMOKE = {**SMOKE, "curve_samples": 128, "kid_subset_size": 64, "kid_subsets": 5}  # scores sized for 300 samples


def gpu_tests(smoke: bool) -> dict:
    """The tests marked `gpu` (on a CPU they skip: the smoke mode checks the wiring)."""
    files = [str(path) for path in sorted((ROOT / "tests").glob("test_*.py")) if "mark.gpu" in path.read_text()]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *files],
                          cwd=ROOT, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"  {summary}  ({time.perf_counter() - started:.0f} s)")
    if done.returncode not in (0, 5):  # 5: none collected
        print(done.stdout[-4000:], done.stderr[-2000:], sep="\n")
    return {"files": [Path(f).name for f in files], "summary": summary, "passed": done.returncode in (0, 5)}


def throughput(data: Path, device: torch.device, smoke: bool) -> list[dict]:
    import run as bench  # benchmarks/run.py: the same rows as the CPU benchmark

    args = SimpleNamespace(data=data, batch_sizes=[32] if smoke else [128, 512], steps=2 if smoke else 50,
                           warmup=1 if smoke else 10, compile=not smoke, image_size=64,  # the tutorial's nets: 64x64
                           nz=16 if smoke else 100, width=8 if smoke else 64)
    return bench.bench_train(args, device)


def default_training(data: Path, device: torch.device, smoke: bool, work: Path) -> tuple[dict, object]:
    """params.yaml's defaults, trained by dcgan.train.train in a scratch folder, timed end to end."""
    from dcgan.train import train

    cfg = load_config(ROOT / "params.yaml").model_copy(update={"device": device.type, **(SMOKE if smoke else {})})
    os.chdir(work)
    (work / ".dvc").mkdir(exist_ok=True)  # the project root, for checkpoints/ of the unfinished run
    started = time.perf_counter()
    fetch_fashion_mnist(data, paths.RAW_DATA)
    split = prepare_split(paths.RAW_DATA, train=True, size=cfg.image_size, max_images=cfg.max_train_images)
    save_tensors(paths.TRAIN_DATA, {"images": split["images"]})
    prepared = time.perf_counter() - started
    train(cfg, tracked=False)
    seconds = time.perf_counter() - started
    log = paths.TRAIN_LOG.read_text().splitlines()
    last = dict(zip(log[0].split(","), log[-1].split(",")))
    result = {"config": "defaults of params.yaml" if not smoke else f"smoke: {SMOKE}", "images": len(split["images"]),
              "image_size": cfg.image_size, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
              "seconds_end_to_end": round(seconds, 1), "seconds_data": round(prepared, 1),
              "seconds_training_loop": float(last["seconds"]), "last_logged": last}
    print(f"  {result['images']} images, {cfg.epochs} epochs at {cfg.image_size}x{cfg.image_size}: "
          f"{seconds:.1f} s end to end ({prepared:.1f} s data, {last['seconds']} s training loop); "
          f"last window: loss_d {float(last['loss_d']):.3f}, loss_g {float(last['loss_g']):.3f}, d_x {float(last['d_x']):.3f}")
    return result, cfg


def write_samples(cfg, device: torch.device, out: Path) -> dict:
    """10,000 uint8 samples (the sample stage's G and noise), in files of at most MAX_FILE_BYTES."""
    from dcgan.sample import generate_images, last_generator

    generator, step = last_generator(cfg, device)
    images = generate_images(generator, cfg.n_samples, cfg, torch.Generator().manual_seed(cfg.seed + 1), device)
    files = save_in_files(images, out)
    print(f"  {len(images)} samples of step {step} -> {', '.join(f['file'] for f in files)}")
    return {"n_samples": len(images), "trained_steps": step, "files": files}


def save_in_files(images: torch.Tensor, out: Path, max_bytes: int = MAX_FILE_BYTES) -> list[dict]:
    """samples_00.pt, samples_01.pt, ...: each a uint8 tensor, each file at most max_bytes."""
    per_file = (max_bytes - 4096) // images[0].numel()  # 4 KiB for the file's own structure
    files = []
    for index, start in enumerate(range(0, len(images), per_file)):
        path = out / f"samples_{index:02d}.pt"
        save_tensors(path, {"images": images[start:start + per_file].clone()})
        files.append({"file": path.name, "images": len(images[start:start + per_file]), "bytes": path.stat().st_size})
    return files


def score(out: Path) -> None:
    """Back here, at the project root: the domain-classifier scores of the samples a GPU run wrote, as
    the evaluate stage computes them (needs `dvc repro classifier` first)."""
    from dcgan.evaluate.classes import class_shares
    from dcgan.evaluate.classifier import load_classifier, predict
    from dcgan.evaluate.manifold import real_radii
    from dcgan.evaluate.scores import classifier_scores
    from dcgan.io import load_tensors

    cfg = load_config(ROOT / "params.yaml")
    os.chdir(ROOT)
    images = torch.cat([load_tensors(path)["images"] for path in sorted(out.glob("samples_*.pt"))])
    model = load_classifier(cfg)
    features, probabilities = predict(model, images, cfg.eval_image_size)
    test_features, test_probabilities = predict(model, load_tensors(paths.EVAL_TEST_DATA)["images"], cfg.eval_image_size)
    scores = classifier_scores(features, probabilities, test_features, class_shares(test_probabilities), cfg,
                               real_radii(test_features))
    report = json.loads((out / "report.json").read_text())
    report["scores_here"] = {name: round(float(value), 4) for name, value in scores.items()}
    write_json(out / "report.json", report)
    print(json.dumps(report["scores_here"], indent=2))


def train_one(work: Path) -> None:
    """One training in `work` (its params.yaml and data ready): a process of step 5."""
    from dcgan.train import train

    os.chdir(work)
    train(load_config(work / "params.yaml"), tracked=False)


def shared_device(data: Path, device: torch.device, smoke: bool, work: Path) -> list[dict]:
    """N trainings at once on one device, each its own process, as a sweep's queue workers run them."""
    import yaml

    update = {"device": device.type, **(SMOKE if smoke else SHARED_RUN)}
    params = {**yaml.safe_load((ROOT / "params.yaml").read_text()), **update}
    fetch_fashion_mnist(data, work / "raw")
    split = prepare_split(work / "raw", train=True, size=params["image_size"], max_images=params["max_train_images"])
    rows = []
    for count in SHARED_COUNTS[:2] if smoke else SHARED_COUNTS:
        folders = []
        for index in range(count):
            folder = work / f"{count}-{index}"
            (folder / ".dvc").mkdir(parents=True, exist_ok=True)
            (folder / "params.yaml").write_text(yaml.safe_dump({**params, "seed": index + 1}))
            save_tensors(folder / paths.TRAIN_DATA, {"images": split["images"]})
            folders.append(folder)
        started = time.perf_counter()
        runs = [subprocess.Popen([sys.executable, __file__, "--train-one", str(folder), "unused"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for folder in folders]
        failed = [run.stderr.read()[-2000:] for run in runs if run.wait() != 0]
        seconds = time.perf_counter() - started
        if failed:
            raise RuntimeError(f"a run of {count} at once failed:\n{failed[0]}")
        rows.append({"runs_at_once": count, "seconds": round(seconds, 1),
                     "runs_per_hour": round(count * 3600 / seconds, 1), "config": update})
        print(f"  {count} at once: {seconds:.1f} s, {rows[-1]['runs_per_hour']} runs/hour")
    return rows


# What a study's run may not change: the evaluation's yardstick, which every run shares. Inception is off:
# its weights do not travel to the GPU machine.
STUDY_FIXED = dict(inception="off")


def study_eval_files(work: Path, data: Path, smoke: bool) -> Path:
    """A folder with the domain classifier and the test split, as the pipeline's stages made them: carried
    from here (make gpu-carry), or in smoke mode trained in seconds on a few real images."""
    from dcgan.evaluate.classifier import fit_classifier

    folder = work / "eval"
    if not smoke:
        if not CARRIED_EVAL.is_dir():
            raise UserError(f"{CARRIED_EVAL} is missing: run `make gpu-carry` here first (it brings the classifier "
                            "and the test split the scores need)")
        return CARRIED_EVAL
    os.chdir(work)
    cfg = load_config(ROOT / "params.yaml").model_copy(update={**SMOKE, "classifier_epochs": 1})
    fetch_fashion_mnist(data, paths.RAW_DATA)
    for split, path in ((True, paths.EVAL_TRAIN_DATA), (False, paths.EVAL_TEST_DATA)):
        found = prepare_split(paths.RAW_DATA, train=split, size=cfg.eval_image_size, max_images=512)
        save_tensors(path, {"images": found["images"], "labels": found["labels"]})
    fit_classifier(cfg)
    folder.mkdir(exist_ok=True)
    for path in (paths.CLASSIFIER, paths.EVAL_TEST_DATA, paths.EVAL_TRAIN_DATA):
        os.replace(path, folder / path.name)
    return folder


def study(spec_file: Path, data: Path, device: torch.device, smoke: bool, work: Path, out: Path, report: dict) -> None:
    """Each configuration of the study file over each of its seeds: trained with tracking off, its G kept
    and scored as select_g, sample and evaluate do. Runs that differ only after training (keep_g, ...)
    share one training: the train stage's params in dvc.yaml say what a training is."""
    import shutil

    import yaml

    from dcgan.config import Config
    from dcgan.evaluate.pixels import corner_mean
    from dcgan.evaluate.scores import evaluate
    from dcgan.evaluate.selection import select_generator
    from dcgan.figures import display_scale, grid_image, save_image
    from dcgan.sample import generate_images, kept_generator
    from dcgan.train import train

    spec = yaml.safe_load(spec_file.read_text())
    train_params = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["params"]
    base = {**load_config(ROOT / "params.yaml").model_dump(), "device": device.type, **STUDY_FIXED,
            **(STUDY_SMOKE if smoke else {})}
    eval_files = study_eval_files(work, data, smoke)
    report["study"] = {"file": str(spec_file.relative_to(ROOT)) if spec_file.is_relative_to(ROOT) else str(spec_file),
                       "seeds": spec["seeds"], "configurations": spec["configurations"], "runs": []}
    trainings: dict[tuple, Path] = {}
    splits: dict[tuple, torch.Tensor] = {}  # the training images, decoded once per size
    for name, overrides in spec["configurations"].items():
        for seed in spec["seeds"]:
            cfg = Config(**{**base, **(overrides or {}), "seed": seed, **STUDY_FIXED})  # validated, as a stage does
            key = tuple(str(getattr(cfg, param)) for param in train_params)
            started = time.perf_counter()
            folder = trainings.get(key)
            if folder is None:
                folder = trainings[key] = work / f"training-{len(trainings)}"
                (folder / ".dvc").mkdir(parents=True)
                os.chdir(folder)
                size = (cfg.image_size, cfg.max_train_images)
                if size not in splits:
                    splits[size] = prepare_split(work / "raw", train=True, size=cfg.image_size,
                                                 max_images=cfg.max_train_images)["images"]
                save_tensors(paths.TRAIN_DATA, {"images": splits[size]})
                for source in eval_files.iterdir():
                    target = {"classifier.pt": paths.CLASSIFIER}.get(source.name, paths.EVAL_TRAIN_DATA.parent / source.name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
                train(cfg, tracked=False)
                trained_here = True
            else:
                os.chdir(folder)
                trained_here = False
            trained = time.perf_counter()
            selection, curve = select_generator(cfg)
            # The sample stage's images (its G, its noise); a grid per run stands in for its figures.
            generator, _ = kept_generator(cfg, device)
            samples = generate_images(generator, cfg.n_samples, cfg, torch.Generator().manual_seed(cfg.seed + 1), device)
            save_tensors(paths.SAMPLES, {"images": samples})
            metrics, _, _ = evaluate(cfg)
            log = paths.TRAIN_LOG.read_text().splitlines()
            last = dict(zip(log[0].split(","), log[-1].split(",")))
            row = {"configuration": name, "overrides": overrides or {}, "seed": seed, "params": cfg.model_dump(),
                   "trained_here": trained_here, "seconds_training_loop": float(last["seconds"]),
                   "images_per_second": float(last["images_seen"]) / float(last["seconds"]),
                   "seconds_train_stage": round(trained - started, 1) if trained_here else None,
                   "seconds_select_sample_evaluate": round(time.perf_counter() - trained, 1),
                   "scores": metrics["scores"], "scores_sample_spread": metrics["scores_sample_spread"],
                   "scores_floor": metrics["scores_floor"], "selection": selection,
                   "corner_mean": corner_mean(samples), "curve": curve}
            report["study"]["runs"].append(row)
            save_image(grid_image(samples[:64], scale=display_scale(cfg.image_size)), out / f"samples_{name}_seed{seed}.png")
            write_json(out / "report.json", report)  # as it goes: a run cut short keeps the rows before it
            print(f"  {name}, seed {seed}: fd_classifier {row['scores']['fd_classifier']:.2f}, recall "
                  f"{row['scores']['recall_classifier']:.3f}, pixel_intensity_emd "
                  f"{row['scores']['pixel_intensity_emd']:.2f}, corners {row['corner_mean']:.1f}; kept step "
                  f"{selection['chosen_step']} of {selection['last_step']} "
                  f"({row['seconds_training_loop']:.0f} s training{'' if trained_here else ', shared'})", flush=True)
    os.chdir(ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the samples and report.json")
    parser.add_argument("--data", type=Path, help="the Fashion-MNIST .gz files (default: .gpu-carry/fashion-mnist, "
                                                  "else Debian's /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, in seconds (make test runs it)")
    parser.add_argument("--score", action="store_true", help="score the samples in OUT with the domain classifier")
    parser.add_argument("--study", type=Path, help="instead of the check's steps: the study in this YAML file, "
                                                    "configurations x seeds (e.g. benchmarks/study_64px.yaml)")
    parser.add_argument("--train-one", type=Path, help=argparse.SUPPRESS)  # a process of step 5
    args = parser.parse_args()
    if args.train_one:
        return train_one(args.train_one)
    out = args.out.resolve()
    if args.score:
        return score(out)
    data = (args.data or (CARRIED_DATA if CARRIED_DATA.is_dir() else DEBIAN_DATA)).resolve()
    if not args.smoke and not torch.cuda.is_available():
        raise UserError("PyTorch sees no CUDA device here: run the GPU check on a GPU machine "
                        "(benchmarks/README.md), or add --smoke to check its wiring on the CPU.")
    device = torch.device("cpu") if args.smoke else pick_device("cuda")
    out.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "smoke": args.smoke,
              "device": torch.cuda.get_device_name() if device.type == "cuda" else f"CPU: {cpu().model}",
              "torch": torch.__version__, "cpu_model": cpu().model}
    started = time.perf_counter()
    if args.study:
        print(f"study {args.study} on {report['device']} (torch {torch.__version__}){' - smoke mode' if args.smoke else ''}")
        with tempfile.TemporaryDirectory(prefix="gpu-study-") as work:
            fetch_fashion_mnist(data, Path(work) / "raw")
            study(args.study.resolve(), data, device, args.smoke, Path(work), out, report)
        report["seconds"] = round(time.perf_counter() - started, 1)
        write_json(out / "report.json", report)
        print(f"done in {report['seconds']:.0f} s -> {out}/report.json (compare: dcgan-compare --study {out}/report.json)")
        return
    print(f"GPU check on {report['device']} (torch {torch.__version__}){' - smoke mode' if args.smoke else ''}")
    print("1. gpu-marked tests:")
    report["gpu_tests"] = gpu_tests(args.smoke)
    print("2. training throughput (images/s):")
    report["throughput"] = throughput(data, device, args.smoke)
    print("3. the default training, end to end (tracking off):")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        report["default_training"], cfg = default_training(data, device, args.smoke, Path(work))
        print("4. samples:")
        report["samples"] = write_samples(cfg, device, out)
        os.chdir(ROOT)
    print("5. runs sharing the device (a sweep's -j N):")
    with tempfile.TemporaryDirectory(prefix="gpu-check-shared-") as work:
        report["shared_device"] = shared_device(data, device, args.smoke, Path(work))
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out / "report.json", report)
    print(f"done in {report['seconds']:.0f} s -> {out}/report.json")
    if not report["gpu_tests"]["passed"]:
        sys.exit(1)


if __name__ == "__main__":
    run_stage(main)  # no CUDA device, no data: one clear line, not a traceback
