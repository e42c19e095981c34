"""A study run as DVC experiments on a CPU, read back: each experiment's scores, its kept G, its training
time and the corner diagnostic of its samples, then each configuration's mean ± SD over its seeds.

    dvc exp run --queue -n study64-s1-tut -S seed=1 ...   # docs/studies.md lists the study's experiments
    scripts/run-queue.sh 1
    .venv/bin/python benchmarks/exp_study.py study64-      # every experiment whose name starts so

The verdicts come from dcgan-compare (MLflow's runs of the same experiments); this adds what MLflow does
not hold: the mean of the four 6x6 corners of the 10,000 samples (0-255; a black background gives ~1.4
on real Fashion-MNIST at 64 px, the grey background of issue 29 gave 16), read from each experiment's
own samples in DVC's cache.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from dcgan.config import CONFIG_PARAMS  # noqa: E402
from dcgan.evaluate.pixels import corner_mean  # noqa: E402

COLUMNS = ("fd_classifier", "recall_classifier", "coverage_classifier", "pixel_intensity_emd")


def experiments(prefix: str) -> dict[str, str]:
    """{name: git ref} of the finished experiments whose names start with `prefix`."""
    refs = subprocess.run(["git", "for-each-ref", "refs/exps", "--format=%(refname)"], capture_output=True,
                          text=True, check=True).stdout.split()
    return {ref.rsplit("/", 1)[1]: ref for ref in refs if ref.rsplit("/", 1)[1].startswith(prefix)}


def read(path: str, ref: str) -> bytes:
    import dvc.api

    with dvc.api.open(path, rev=ref, mode="rb") as file:
        return file.read()


def row(name: str, ref: str) -> dict:
    params = yaml.safe_load(subprocess.run(["git", "show", f"{ref}:params.yaml"], capture_output=True, text=True,
                                           check=True).stdout)
    metrics = json.loads(read("reports/metrics.json", ref))
    samples = torch.load(io.BytesIO(read("data/samples/samples.pt", ref)), weights_only=True)["images"]
    selection = metrics["selection"]
    return {"name": name, "seed": params["seed"], "config": {key: params[key] for key in CONFIG_PARAMS},
            **{column: metrics["scores"][column] for column in COLUMNS},
            "floor": {column: metrics["scores_floor"][column] for column in COLUMNS},
            "corner_mean": corner_mean(samples), "training_seconds": metrics["gan"]["seconds"],
            "kept_step": selection["chosen_step"], "last_step": selection["last_step"],
            "kept_validation_fd": selection["chosen_validation_score"],
            "last_validation_fd": selection["last_validation_score"]}


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.3g} ± {sd:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", help="the experiments' common name prefix, e.g. study64-")
    args = parser.parse_args()
    rows = [row(name, ref) for name, ref in sorted(experiments(args.prefix).items())]
    if not rows:
        sys.exit(f"no finished experiment named {args.prefix}*: see `dvc exp show`")
    print("| experiment | seed | " + " | ".join(COLUMNS) + " | corner mean | training s | kept step (last) |")
    print("| --- " * (len(COLUMNS) + 5) + "|")
    for r in rows:
        print(f"| {r['name']} | {r['seed']} | " + " | ".join(f"{r[c]:.4g}" for c in COLUMNS)
              + f" | {r['corner_mean']:.2f} | {r['training_seconds']:.0f} | {r['kept_step']} ({r['last_step']}) |")
    print("\nfloors (real training images): " + ", ".join(f"{c} {rows[0]['floor'][c]:.3g}" for c in COLUMNS))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(json.dumps(r["config"], sort_keys=True), []).append(r)
    print("\n| configuration | seeds | " + " | ".join(COLUMNS) + " | corner mean |")
    print("| --- " * (len(COLUMNS) + 3) + "|")
    for members in groups.values():
        names = ", ".join(r["name"] for r in members)
        print(f"| {names} | {', '.join(str(r['seed']) for r in members)} | "
              + " | ".join(mean_sd([r[c] for r in members]) for c in COLUMNS)
              + f" | {mean_sd([r['corner_mean'] for r in members])} |")
    print("\n± is the SD over the seeds of each configuration.")


if __name__ == "__main__":
    main()
