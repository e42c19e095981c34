"""benchmarks/gpu_check.py, the one-call GPU check, in its CPU smoke mode: CI keeps it working."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from conftest import requires_fashion_mnist
from dcgan.io import load_tensors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


@requires_fashion_mnist
def test_the_smoke_mode_runs_every_step_and_writes_the_samples_and_report(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", str(tmp_path / "out"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["smoke"] and report["gpu_tests"]["passed"] and "test_fast_path.py" in report["gpu_tests"]["files"]
    assert [row["variant"] for row in report["throughput"]][:2] == ["tutorial loop", "eager fp32"]
    assert all(row["images_per_second"] > 0 for row in report["throughput"])
    training = report["default_training"]
    assert training["images"] == 256 and int(training["last_logged"]["step"]) == 8  # 256 images / batch 32
    assert [row["runs_at_once"] for row in report["shared_device"]] == [1, 2]  # what a sweep's -j N gives
    assert all(row["seconds"] > 0 and row["runs_per_hour"] > 0 for row in report["shared_device"])
    images = torch.cat([load_tensors(tmp_path / "out" / f["file"])["images"] for f in report["samples"]["files"]])
    assert images.dtype == torch.uint8 and images.shape == (300, 1, 16, 16) and images.float().std() > 0


def test_samples_are_split_into_files_of_at_most_15_mib(tmp_path):
    from gpu_check import MAX_FILE_BYTES, save_in_files

    images = torch.randint(0, 256, (10_000, 1, 64, 64), dtype=torch.uint8)
    files = save_in_files(images, tmp_path)
    assert len(files) == 3 and sum(f["images"] for f in files) == 10_000
    assert all((tmp_path / f["file"]).stat().st_size <= MAX_FILE_BYTES for f in files)
    assert torch.equal(torch.cat([load_tensors(tmp_path / f["file"])["images"] for f in files]), images)


@requires_fashion_mnist
def test_a_study_trains_each_configuration_over_its_seeds_and_dcgan_compare_reads_it(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("seeds: [1, 2]\nconfigurations:\n  tutorial: {keep_g: last}\n  best-g: {keep_g: best}\n")
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", str(tmp_path / "out"), "--smoke", "--study",
                           str(study)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = json.loads((tmp_path / "out" / "report.json").read_text())["study"]["runs"]
    assert [(run["configuration"], run["seed"]) for run in runs] == [("tutorial", 1), ("tutorial", 2), ("best-g", 1),
                                                                     ("best-g", 2)]
    # best-g changes nothing before training: it reuses each seed's training, and keeps its best snapshot.
    assert [run["trained_here"] for run in runs] == [True, True, False, False]
    for run in runs:
        assert run["scores"]["fd_classifier"] > 0 and 0 <= run["corner_mean"] <= 255
        assert [row["step"] for row in run["curve"]] == [4, 8]
        best = min(run["curve"], key=lambda row: (row["fd_classifier"], -row["step"]))["step"]
        assert run["selection"]["chosen_step"] == (8 if run["configuration"] == "tutorial" else best)
        assert (tmp_path / "out" / f"samples_{run['configuration']}_seed{run['seed']}.png").is_file()
    compared = subprocess.run([sys.executable, "-m", "dcgan.compare.cli", "--study", str(tmp_path / "out" / "report.json"),
                               "--baseline", "keep_g=last", "--out", str(tmp_path / "compare")],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert compared.returncode == 0, compared.stdout[-3000:] + compared.stderr[-3000:]
    result = json.loads((tmp_path / "compare" / "comparison.json").read_text())
    assert sorted((c["name"], c["n_seeds"]) for c in result["configurations"]) == [("best-g", 2), ("tutorial", 2)]
    assert "pixel_intensity_emd" in (tmp_path / "compare" / "comparison.md").read_text()
