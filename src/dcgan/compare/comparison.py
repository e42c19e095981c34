"""A comparison of configurations over their seeds: the numbers (as one dict, the JSON), their table
(markdown, also what the command prints) and their figure."""

from __future__ import annotations

import math

from dcgan.compare import stats
from dcgan.compare.seed_runs import EVALUATION_PARAMS, Configuration
from dcgan.metric_keys import HEADLINE_SCORES, LOWER_IS_BETTER

MORE_SEEDS = "dvc exp run --queue -S 'seed=range(1,4)' -S <your change> && scripts/run-queue.sh"


def incomparable(candidate: Configuration, baseline: Configuration) -> str | None:
    """Why two configurations' scores do not compare, if they do not."""
    size = candidate.params.get("image_size"), baseline.params.get("image_size")
    if size[0] != size[1]:
        return (f"image_size {size[0]} vs {size[1]}: each set of samples is scored through its own resize to "
                "eval_image_size, with its own floor, so the scores of different sizes are not comparable")
    return None


def evaluation_differences(groups: list[Configuration]) -> list[str]:
    """The evaluation params (n_samples, ...) that take more than one value among the runs compared."""
    notes = []
    for key in EVALUATION_PARAMS:
        values = sorted({run.params.get(key, "?") for group in groups for run in group.runs})
        if len(values) > 1:
            notes.append(f"`{key}` takes the values {', '.join(values)} among these runs: scores made with "
                         "different evaluation settings are not strictly comparable")
    return notes


def configuration_summary(group: Configuration) -> dict:
    scores = {}
    for score in HEADLINE_SCORES:
        values = group.values(score)
        if not values:
            continue
        summary = stats.summarize(values, LOWER_IS_BETTER[score])
        entry = {"n": summary.n, "mean": summary.mean, "sd_over_seeds": summary.sd, "best": summary.best,
                 "worst": summary.worst, "values": values}
        if summary.n == 1 and score in group.runs[0].sample_spread:
            entry["sample_spread_of_one_g"] = group.runs[0].sample_spread[score]
        scores[score] = entry
    return {"config": group.config, "name": group.name, "n_seeds": len(group.runs), "seeds": group.seeds,
            "image_size": group.params.get("image_size"), "run_ids": [run.run_id for run in group.runs],
            "scores": scores}


def score_difference(candidate: list[float], baseline: list[float], lower_is_better: bool) -> dict:
    if min(len(candidate), len(baseline)) < 2:
        return {"verdict": None, "why": f"no verdict: {len(candidate)} seed(s) against {len(baseline)}; a spread "
                                        f"over seeds needs at least 2 a side ({MORE_SEEDS})"}
    found = stats.difference(candidate, baseline)
    entry = {"difference": found.difference, "ci95_welch": [found.low, found.high], "df": found.df,
             "p_value": found.p_value, "ci95_bootstrap": [found.bootstrap_low, found.bootstrap_high],
             "verdict": stats.verdict(found, lower_is_better)}
    if entry["verdict"] == stats.CANT_TELL:
        sd = stats.summarize(candidate, lower_is_better).sd, stats.summarize(baseline, lower_is_better).sd
        entry["seeds_needed_a_side"] = stats.seeds_needed(found.difference, *sd)
    return entry


def comparison(groups: list[Configuration], baseline: Configuration, source: str) -> dict:
    """Everything the table, the figure and the JSON show."""
    against = []
    for candidate in (group for group in groups if group.config != baseline.config):
        why_not = incomparable(candidate, baseline)
        scores = {} if why_not else {
            score: score_difference(candidate.values(score), baseline.values(score), LOWER_IS_BETTER[score])
            for score in HEADLINE_SCORES if candidate.values(score) and baseline.values(score)}
        against.append({"config": candidate.config, "name": candidate.name, "not_comparable": why_not,
                        "scores": scores})
    return {"source": source, "baseline": {"config": baseline.config, "name": baseline.name},
            "configurations": [configuration_summary(group) for group in groups], "against_baseline": against,
            "notes": evaluation_differences(groups)}


def json_safe(value):
    """NaN (the SD of one seed) and infinity (the degrees of freedom of an exact difference) as null:
    JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


def _number(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


def _signed(value: float) -> str:
    return f"{value:+.3g}"


def markdown(result: dict) -> str:
    """The table a reader looks at: each configuration over its seeds, then each against the baseline."""
    baseline = result["baseline"]
    scores = [score for score in HEADLINE_SCORES if any(score in c["scores"] for c in result["configurations"])]
    lines = ["# Configurations compared over training seeds", "",
             f"Runs: {result['source']}. Baseline: `{baseline['name']}` (config {baseline['config']}).", "",
             "## Each configuration: mean ± SD over its seeds (best, worst)", "",
             "| configuration | config | seeds | " + " | ".join(scores) + " |",
             "|---|---|---|" + "---|" * len(scores)]
    for config in result["configurations"]:
        cells = []
        for score in scores:
            entry = config["scores"].get(score)
            if entry is None:
                cells.append("–")
            elif entry["n"] == 1:
                spread = entry.get("sample_spread_of_one_g")
                shown = f" ± {spread:.2g} sample spread (one G: not over seeds)" if spread is not None else ""
                cells.append(f"{_number(entry['mean'])}{shown}")
            else:
                cells.append(f"{_number(entry['mean'])} ± {_number(entry['sd_over_seeds'])} "
                             f"({_number(entry['best'])}, {_number(entry['worst'])})")
        seeds = ", ".join(map(str, config["seeds"]))
        lines.append(f"| `{config['name']}` | {config['config']} | {config['n_seeds']} ({seeds}) | "
                     + " | ".join(cells) + " |")
    for against in result["against_baseline"]:
        lines += ["", f"## `{against['name']}` against `{baseline['name']}`", ""]
        if against["not_comparable"]:
            lines.append(f"Not comparable: {against['not_comparable']}.")
            continue
        lines += ["Difference of means (this − baseline) with its 95% interval over seeds (Welch's t; a bootstrap "
                  "over seeds as a check):", "",
                  "| score | difference | 95% CI (Welch) | 95% CI (bootstrap) | p | verdict |",
                  "|---|---|---|---|---|---|"]
        for score, entry in against["scores"].items():
            direction = "lower is better" if LOWER_IS_BETTER[score] else "higher is better"
            if entry["verdict"] is None:
                lines.append(f"| {score} ({direction}) | | | | | {entry['why']} |")
                continue
            low, high = entry["ci95_welch"]
            b_low, b_high = entry["ci95_bootstrap"]
            verdict = entry["verdict"]
            if entry.get("seeds_needed_a_side"):
                verdict += f": about {entry['seeds_needed_a_side']} seeds a side would resolve a gap of this size"
            lines.append(f"| {score} ({direction}) | {_signed(entry['difference'])} | "
                         f"[{_signed(low)}, {_signed(high)}] | [{_signed(b_low)}, {_signed(b_high)}] | "
                         f"{entry['p_value']:.2g} | {verdict} |")
    if result["notes"]:
        lines += ["", "Notes:", *(f"- {note}" for note in result["notes"])]
    return "\n".join(lines) + "\n"
