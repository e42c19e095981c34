import pytest
import torch

from dcgan.data.download import raw_folder
from dcgan.data.normalize import normalize
from dcgan.data.preprocess import prepare_split, resize, summarize
from dcgan.errors import DataError


def test_resize_keeps_uint8_and_range_and_antialiases():
    stripes = torch.zeros(1, 1, 48, 48, dtype=torch.uint8)
    stripes[..., ::2] = 255  # the finest pattern there is: must average to grey, not alias
    small = resize(stripes, 16)
    assert small.dtype == torch.uint8 and small.shape == (1, 1, 16, 16)
    assert small[..., 1:-1].float().sub(127.5).abs().max() <= 20  # near grey inside; edges see half a kernel
    aliased = torch.nn.functional.interpolate(stripes.float(), size=16, mode="bilinear", antialias=False)
    assert aliased.sub(127.5).abs().max() > 100  # what the antialiasing prevents
    assert resize(stripes, 48) is stripes


def test_summary_statistics_are_exact():
    images = torch.tensor([0, 255, 0, 255], dtype=torch.uint8).reshape(4, 1, 1, 1)
    summary = summarize(images, torch.tensor([0, 1, 1, 3]))
    assert summary["count"] == 4 and summary["shape"] == [1, 1, 1]
    assert (summary["normalized_min"], summary["normalized_max"]) == (-1.0, 1.0)
    assert summary["channel_mean"] == [0.0] and summary["channel_std"] == [1.0]
    assert summary["class_counts"] == [1, 2, 0, 1]


def test_summary_matches_a_direct_computation():
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    summary = summarize(images, torch.zeros(50, dtype=torch.int64))
    direct = normalize(images).double()
    assert summary["channel_mean"] == pytest.approx(direct.mean((0, 2, 3)).tolist(), abs=1e-6)
    assert summary["channel_std"] == pytest.approx(direct.std((0, 2, 3), unbiased=False).tolist(), abs=1e-6)


def test_prepare_split_reads_idx_files(tmp_path, tiny_mirror):
    target = raw_folder(tmp_path)
    target.mkdir(parents=True)
    import gzip
    for file in tiny_mirror.iterdir():
        (target / file.stem).write_bytes(gzip.open(file).read())
    split = prepare_split(tmp_path, train=True, size=32, max_images=25)
    assert split["images"].shape == (25, 1, 32, 32) and split["images"].dtype == torch.uint8
    assert split["labels"].tolist() == [i % 10 for i in range(25)]
    assert prepare_split(tmp_path, train=False, size=28)["images"].shape == (20, 1, 28, 28)


def test_missing_raw_data_says_which_stage_to_run(tmp_path):
    with pytest.raises(DataError, match="dvc repro download"):
        prepare_split(tmp_path, train=True, size=32)
