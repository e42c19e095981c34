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
