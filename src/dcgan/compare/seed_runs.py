"""What a comparison reads from MLflow: the finished, evaluated training runs, one per (config, seed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dcgan.metric_keys import HEADLINE_SCORES, SAMPLE_SPREAD, SCORES, metric_key

# What scores the samples: runs of one configuration scored with other values of these do not compare.
EVALUATION_PARAMS = ("n_samples", "sample_bn_mode", "eval_image_size", "eval_seed", "classifier_epochs",
                     "kid_subset_size", "kid_subsets", "inception")


@dataclass
class SeedRun:
    run_id: str
    config: str
    config_name: str
    seed: int
    params: dict[str, str]
    scores: dict[str, float]
    sample_spread: dict[str, float]
    end_time: int


@dataclass
class Configuration:
    config: str
    name: str
    params: dict[str, str]  # its newest run's
    runs: list[SeedRun] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    def values(self, score: str) -> list[float]:
        return [run.scores[score] for run in self.runs if score in run.scores]


def evaluated_runs(client, experiment_id: str) -> tuple[list[SeedRun], int]:
    """(the finished runs with a `config` tag and scores, how many finished runs had no `config` tag:
    logged before runs were tagged)."""
    runs, untagged, token = [], 0, None
    while True:
        page = client.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'",
                                  max_results=1000, page_token=token, order_by=["attributes.end_time DESC"])
        for run in page:
            tags, metrics = run.data.tags, run.data.metrics
            if "config" not in tags:
                untagged += 1
                continue
            scores = {name: metrics[metric_key(SCORES, name)] for name in HEADLINE_SCORES
                      if metric_key(SCORES, name) in metrics}
            if not scores:  # trained, not evaluated
                continue
            spread = {name: metrics[metric_key(SAMPLE_SPREAD, name)] for name in scores
                      if metric_key(SAMPLE_SPREAD, name) in metrics}
            runs.append(SeedRun(run.info.run_id, tags["config"], tags.get("config_name", tags["config"]),
                                int(run.data.params.get("seed", -1)), dict(run.data.params), scores, spread,
                                run.info.end_time or 0))
        token = page.token
        if not token:
            return runs, untagged


def study_runs(report_file: Path) -> list[SeedRun]:
    """The runs of a GPU study (benchmarks/gpu_check.py --study: its report.json), as MLflow's would be
    read: `config` from the run's params as the pipeline hashes them, named after the study's
    configuration. A study may vary what a `config` leaves out on purpose (amp: bf16 against fp32): a
    second configuration of the same hash keeps its own group, `<hash>-<name>`."""
    from dcgan.config import Config
    from dcgan.config_tags import config_hash

    rows = json.loads(Path(report_file).read_text()).get("study", {}).get("runs", [])
    runs, names = [], {}
    for index, row in enumerate(rows):
        config = config_hash(Config(**row["params"]))
        owner = names.setdefault(config, row["configuration"])
        config = config if owner == row["configuration"] else f"{config}-{row['configuration']}"
        params = {key: str(value) for key, value in row["params"].items()}
        scores = {name: row["scores"][name] for name in HEADLINE_SCORES if name in row["scores"]}
        spread = {name: row["scores_sample_spread"][name] for name in scores if name in row["scores_sample_spread"]}
        runs.append(SeedRun(f"study:{row['configuration']}:{row['seed']}", config,
                            row["configuration"], int(row["seed"]), params, scores, spread, end_time=index))
    return runs


def configurations(runs: list[SeedRun]) -> list[Configuration]:
    """The runs grouped by `config`, one per seed: the newest, so that a seed trained again, or a trained
    G that DVC restored and sampled or scored anew (a new MLflow run), counts once."""
    found: dict[str, Configuration] = {}
    for run in sorted(runs, key=lambda run: -run.end_time):
        group = found.setdefault(run.config, Configuration(run.config, run.config_name, run.params))
        if run.seed not in group.seeds:
            group.runs.append(run)
    for group in found.values():
        group.runs.sort(key=lambda run: run.seed)
    return sorted(found.values(), key=lambda group: group.name)


def same_value(typed: str, logged: str) -> bool:
    """A param typed on the command line against its logged text: 1e-4 is 0.0001, null is None."""
    typed, logged = ("None" if text in ("null", "~", "None") else text for text in (typed, logged))
    try:
        return float(typed) == float(logged)
    except ValueError:
        return typed == logged


def matching(groups: list[Configuration], wanted: dict[str, str]) -> list[Configuration]:
    """The configurations whose params have every `key=value` of `wanted`."""
    return [group for group in groups
            if all(key in group.params and same_value(value, group.params[key]) for key, value in wanted.items())]
