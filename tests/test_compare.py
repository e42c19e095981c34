"""dcgan-compare's parts: the statistics (against scipy.stats on fixed numbers), the verdict at its
boundaries, the `config` hash, one run per (config, seed), and the table it prints."""

import math

import pytest
from scipy import stats as scipy_stats

from conftest import make_config
from dcgan.compare import stats
from dcgan.compare.comparison import comparison, markdown
from dcgan.compare.seed_runs import SeedRun, configurations, matching, same_value
from dcgan.config import Config
from dcgan.config_tags import config_hash, config_name

# fd_classifier of the quick CPU variant over seeds 999, 1 and 2 (issue 18's table).
LR_2E4 = [21.70, 25.62, 24.60]
LR_1E4 = [26.35, 28.54, 27.50]


def test_welchs_interval_and_p_value_are_scipys():
    difference, low, high, df, p_value = stats.welch_interval(LR_1E4, LR_2E4)
    reference = scipy_stats.ttest_ind(LR_1E4, LR_2E4, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert difference == pytest.approx(sum(LR_1E4) / 3 - sum(LR_2E4) / 3)
    assert (low, high) == pytest.approx((interval.low, interval.high))
    assert df == pytest.approx(reference.df)
    assert p_value == pytest.approx(reference.pvalue)
    assert p_value == pytest.approx(0.077, abs=0.001)  # the issue's p = 0.08


def test_the_bootstrap_over_seeds_agrees_with_welch_when_there_are_many_seeds():
    rng = __import__("numpy").random.default_rng(0)
    a, b = list(rng.normal(10, 2, 400)), list(rng.normal(11, 3, 400))
    _, low, high, _, _ = stats.welch_interval(a, b)
    boot_low, boot_high = stats.bootstrap_interval(a, b)
    assert boot_low == pytest.approx(low, abs=0.1) and boot_high == pytest.approx(high, abs=0.1)


def test_summary_over_seeds():
    summary = stats.summarize(LR_2E4, lower_is_better=True)
    assert (summary.n, summary.best, summary.worst) == (3, 21.70, 25.62)
    assert summary.sd == pytest.approx(scipy_stats.tstd(LR_2E4))
    assert stats.summarize([0.4, 0.6], lower_is_better=False).best == 0.6
    assert math.isnan(stats.summarize([1.0], lower_is_better=True).sd)


def found(low: float, high: float) -> stats.Difference:
    return stats.Difference((low + high) / 2, low, high, 4.0, 0.5, low, high)


@pytest.mark.parametrize("low, high, lower_is_better, expected", [
    (-2.0, -1e-9, True, stats.BETTER), (-2.0, 0.0, True, stats.CANT_TELL), (0.0, 2.0, True, stats.CANT_TELL),
    (1e-9, 2.0, True, stats.WORSE), (-2.0, -1e-9, False, stats.WORSE), (1e-9, 2.0, False, stats.BETTER),
    (-1.0, 1.0, False, stats.CANT_TELL),
])
def test_the_verdict_needs_the_whole_interval_on_one_side_of_zero(low, high, lower_is_better, expected):
    assert stats.verdict(found(low, high), lower_is_better) == expected


def test_seeds_needed_is_the_t_tests_sample_size():
    # Cohen's tables: 80% power at two-sided 5% takes 64 a group for d = 0.5 and 17 for d = 1.
    assert stats.seeds_needed(0.5, 1.0, 1.0) == 64
    assert stats.seeds_needed(1.0, 1.0, 1.0) == 17
    assert stats.seeds_needed(0.0, 1.0, 1.0) is None
    gap, sds = -3.49, (scipy_stats.tstd(LR_1E4), scipy_stats.tstd(LR_2E4))
    needed = stats.seeds_needed(gap, *sds)
    assert 3 < needed < 10  # more than the 3 that could not tell, a handful more


def test_a_difference_over_seeds_needs_two_a_side():
    with pytest.raises(ValueError):
        stats.difference([1.0], [1.0, 2.0])


def test_the_config_hash_ignores_the_seed_and_evaluation_and_sees_what_shapes_the_weights():
    base = config_hash(make_config())
    assert config_hash(make_config(seed=1)) == base
    assert config_hash(make_config(n_samples=5000, sample_bn_mode="train", eval_image_size=16, log_every=7,
                                   amp="off", device="cpu")) == base
    for change in ({"lr": 0.0001}, {"ngf": 32}, {"epochs": 3}, {"max_train_images": 100}, {"label_smoothing": 0.1}):
        assert config_hash(make_config(**change)) != base, change
    assert config_hash(make_config(lr=1e-4)) == config_hash(make_config(lr=0.0001))
    params = make_config().model_dump()
    assert config_hash(Config(**dict(reversed(list(params.items()))))) == base  # key order


def test_the_config_name_says_what_differs_from_the_baseline_seed_excluded():
    baseline = make_config().model_dump()
    assert config_name(make_config(seed=5, n_samples=5000), baseline) == "baseline"
    assert config_name(make_config(lr=0.0001, seed=1), baseline) == "lr=0.0001"
    assert config_name(make_config(image_size=32, lr=0.0001), baseline) == "image_size=32, lr=0.0001"


def seed_run(config: str, seed: int, fd: float, end_time: int, **params) -> SeedRun:
    return SeedRun(f"{config}-{seed}-{end_time}", config, f"name-{config}", seed,
                   {"seed": str(seed), "image_size": "32", "n_samples": "10000", **params},
                   {"fd_classifier": fd, "precision_classifier": 0.7}, {"fd_classifier": 0.3}, end_time)


def test_each_config_and_seed_counts_once_the_newest_run():
    runs = [seed_run("a", 1, 20.0, 1), seed_run("a", 1, 21.0, 5), seed_run("a", 2, 22.0, 2), seed_run("b", 1, 30.0, 3)]
    groups = {group.config: group for group in configurations(runs)}
    assert groups["a"].seeds == [1, 2] and groups["a"].values("fd_classifier") == [21.0, 22.0]
    assert groups["b"].seeds == [1]


def test_matching_reads_params_as_typed_on_the_command_line():
    assert same_value("1e-4", "0.0001") and same_value("null", "None") and not same_value("32", "64")
    groups = configurations([seed_run("a", 1, 1.0, 1, lr="0.0002"), seed_run("b", 1, 1.0, 1, lr="0.0001")])
    assert [group.config for group in matching(groups, {"lr": "0.0002"})] == ["a"]


def test_the_table_gives_a_verdict_per_score_and_names_a_single_seeds_spread():
    runs = [seed_run("base", s, fd, s) for s, fd in zip((1, 2, 999), LR_2E4)]
    runs += [seed_run("lower", s, fd, s, lr="0.0001") for s, fd in zip((1, 2, 999), LR_1E4)]
    runs += [seed_run("once", 1, 40.0, 1), seed_run("big", 1, 30.0, 1, image_size="64")]
    groups = configurations(runs)
    base = next(group for group in groups if group.config == "base")
    result = comparison(groups, base, "test")
    text = markdown(result)
    lower = next(entry for entry in result["against_baseline"] if entry["config"] == "lower")
    assert lower["scores"]["fd_classifier"]["verdict"] == stats.CANT_TELL
    assert lower["scores"]["fd_classifier"]["seeds_needed_a_side"] > 3
    assert "can't tell with these seeds: about" in text
    assert "sample spread (one G: not over seeds)" in text  # the single seed of `once`
    assert "no verdict: 1 seed(s) against 3" in text
    assert "Not comparable: image_size 64 vs 32" in text
