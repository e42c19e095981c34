"""The one naming rule for every value a run reports (`<section>/<name>`), and the one registry of scores.

MLflow groups its charts into sections by the part before the last `/`, and (in the version that
constraints.txt pins) orders the sections alphabetically. The section names are chosen so that this
order is the order a GAN researcher reads in: the training first (`gan/`: losses of D and G, D(x), D(G(z))), then the scores
of the samples, each score's floor and sample spreads, the scores over training, and the set-up.
reports/metrics.json holds the same values as nested groups ({"scores": {"fd_classifier": ...}}),
so `dvc exp show` shows `scores.fd_classifier` where MLflow shows `scores/fd_classifier`.
"""

from __future__ import annotations

from dataclasses import dataclass

GAN = "gan"                          # the training: losses, D's mean outputs, throughput (every `log_every` steps)
SCORES = "scores"                    # the samples against the real test split
FLOOR = "scores_floor"               # the same scores for real training images: the best reachable
# The sample spreads: each score's standard deviation over resamples (FD, precision, recall, density,
# coverage: bootstrap) or subsets (KID) of one trained G's samples. They say how much the score of this G
# moves with the draw of its samples, nothing about training again: the spread over training seeds is
# several times larger (docs/scores.md), and dcgan-compare measures it.
FLOOR_SAMPLE_SPREAD = "scores_floor_sample_spread"  # each floor's, over resamples of the real images
OVER_TRAINING = "scores_over_training"  # G's snapshots on validation images (step = training step)
SAMPLE_SPREAD = "scores_sample_spread"  # each score's, over resamples of one G's samples
SELECTION = "selection"              # which G the run kept (keep_g): its step and validation score, the last G's beside it
SETUP = "setup"                      # image counts, the domain classifier's test accuracy
NOTES = "notes"                      # why a family of scores is on, off or skipped (text: tags in MLflow)
SECTIONS = (GAN, SCORES, FLOOR, FLOOR_SAMPLE_SPREAD, OVER_TRAINING, SAMPLE_SPREAD, SELECTION, SETUP, NOTES)

# The training log's values (reports/train/log.csv columns, `gan/` in MLflow), in the tutorial's terms:
# D(x) is D's mean output on real images, D(G(z)) on generated ones, before and after D's update.
TRAINING = ("loss_d", "loss_g", "d_x", "d_g_z_before_d_step", "d_g_z_after_d_step")
FIXED_NOISE_GRID = f"{GAN}/fixed_noise_grid"  # an image key: G on the same z all run long



@dataclass(frozen=True)
class Score:
    """A score of the samples (docs/scores.md), as every part of the project reads it: evaluate prints the
    registry's scores in its order, dcgan-compare and the run's MLflow description lead with the headline
    ones, select_g scores each G snapshot by those on the curve, the calibration table has its own."""
    name: str
    lower_is_better: bool
    headline: bool = False     # compared over seeds by dcgan-compare, and in the run's description
    on_curve: bool = False     # scored for each G snapshot (reports/select/quality_curve.csv, `scores_over_training/`)
    calibrated: bool = False   # a column of the calibration table (evaluate/calibration.py)


SCORE_REGISTRY = (
    Score("fd_classifier", lower_is_better=True, headline=True, on_curve=True, calibrated=True),
    Score("kid_classifier", lower_is_better=True, headline=True, on_curve=True, calibrated=True),
    Score("precision_classifier", lower_is_better=False, headline=True, on_curve=True, calibrated=True),
    Score("recall_classifier", lower_is_better=False, headline=True, on_curve=True, calibrated=True),
    Score("density_classifier", lower_is_better=False, on_curve=True, calibrated=True),
    Score("coverage_classifier", lower_is_better=False, headline=True, on_curve=True, calibrated=True),
    Score("class_entropy_ratio", lower_is_better=False, calibrated=True),
    Score("classes_covered", lower_is_better=False, calibrated=True),
    Score("is_classifier", lower_is_better=False, calibrated=True),
    Score("pixel_intensity_emd", lower_is_better=True, headline=True, on_curve=True, calibrated=True),
    # Shares of samples nearer a training image than real test images are to theirs: read against the floor.
    Score("near_copy_share_classifier", lower_is_better=True),
    Score("near_copy_share_pixels", lower_is_better=True),
    # With a CUDA GPU (`inception: auto`) or when asked.
    Score("fid_inception", lower_is_better=True, headline=True),
    Score("kid_inception", lower_is_better=True, headline=True),
    Score("precision_inception", lower_is_better=False),
    Score("recall_inception", lower_is_better=False),
    Score("density_inception", lower_is_better=False),
    Score("coverage_inception", lower_is_better=False),
)
SCORE_NAMES = tuple(score.name for score in SCORE_REGISTRY)
HEADLINE_SCORES = tuple(score.name for score in SCORE_REGISTRY if score.headline)
CURVE_SCORES = tuple(score.name for score in SCORE_REGISTRY if score.on_curve)
CALIBRATED_SCORES = tuple(score.name for score in SCORE_REGISTRY if score.calibrated)
LOWER_IS_BETTER = {score.name: score.lower_is_better for score in SCORE_REGISTRY}
CURVE_COLUMNS = ("step", "images_seen", "seconds", *CURVE_SCORES)


def metric_key(section: str, name: str) -> str:
    assert section in SECTIONS, f"unknown metric section {section!r}"
    return f"{section}/{name}"


def flatten(groups: dict[str, dict]) -> dict[str, float]:
    """{"scores": {"fd_classifier": 1.0}} -> {"scores/fd_classifier": 1.0}: the numbers MLflow takes."""
    return {metric_key(section, name): float(value) for section, values in groups.items() for name, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}
