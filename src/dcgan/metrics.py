"""The one naming rule for every value a run reports: `<section>/<name>`.

MLflow groups its charts by the part before the first `/`, so the sections order what a GAN
researcher looks for: the training curves first, then the scores, their spreads and floors.
reports/metrics.json holds the same values as nested groups ({"scores": {"fd_classifier": ...}}),
so `dvc exp show` shows `scores.fd_classifier` and MLflow shows `scores/fd_classifier`.
"""

from __future__ import annotations

SECTIONS = {
    "train": "the training: losses of D and G, D's mean outputs, throughput (logged every `log_every` steps)",
    "scores": "the samples against the real test split",
    "spread": "the bootstrap standard deviation of each score",
    "floor": "the same scores for real training images against the test split: the best reachable",
    "floor_spread": "the bootstrap standard deviation of each floor",
    "curve": "scores of G's snapshots over training (step = training step)",
    "eval": "the evaluation's set-up: image counts, the domain classifier's test accuracy",
    "notes": "why a family of scores is on, off or skipped (text: MLflow tags, not metrics)",
}

# The training log's values (reports/train/log.csv columns, `train/` in MLflow), in the tutorial's terms:
# D(x) is D's mean output on real images, D(G(z)) on generated ones, before and after D's update.
TRAINING = ("loss_d", "loss_g", "d_x", "d_g_z_before_d_step", "d_g_z_after_d_step")


def flatten(groups: dict[str, dict]) -> dict[str, float]:
    """{"scores": {"fd_classifier": 1.0}} -> {"scores/fd_classifier": 1.0}: the numbers MLflow takes."""
    flat = {}
    for section, values in groups.items():
        assert section in SECTIONS, f"unknown metric section {section!r}"
        for name, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                flat[f"{section}/{name}"] = float(value)
    return flat
