"""dcgan-compare: is a configuration better, or was its seed lucky?

Reads the finished training runs of the MLflow experiment `dcgan` (the store the pipeline logs to:
MLFLOW_TRACKING_URI, else the project's mlflow.db), groups them by their `config` tag (the params that
shape the weights, seed excluded) and counts each (config, seed) once. For each configuration: the
number of seeds, the mean ± SD over seeds, best and worst of each headline score. Against a baseline
(default: the DVC baseline's params, params.yaml at HEAD): the difference of means with a 95% interval
(Welch; a bootstrap over seeds as a check), a verdict (better / worse / can't tell with these seeds) and,
where it can't tell, about how many seeds a side would. Writes reports/compare/comparison.{md,json,png}
and logs them to the MLflow experiment `dcgan-comparisons` (so they are not counted as a seed's run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dcgan import figures
from dcgan.compare.comparison import comparison, json_safe, markdown
from dcgan.compare.seed_runs import Configuration, configurations, evaluated_runs, matching, study_runs
from dcgan.config import Config
from dcgan.config_tags import config_hash
from dcgan.errors import UserError, run_stage
from dcgan.io import atomic_path, write_json
from dcgan.tracking import lineage
from dcgan.tracking.store import COMPARISONS, EXPERIMENT, brief, connect, experiment_id, tracking_uri

OUT = Path("reports/compare")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    lines = __doc__.splitlines()
    parser = argparse.ArgumentParser(prog="dcgan-compare", description="\n".join(lines[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", nargs="+", metavar="KEY=VALUE",
                        help="the baseline: the configuration whose params have these values (e.g. lr=0.0002), "
                             "or its `config` hash")
    parser.add_argument("--where", nargs="+", metavar="KEY=VALUE", default=[],
                        help="compare only the configurations with these values (e.g. image_size=32)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the table and figure go (default {OUT})")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the comparison to MLflow")
    parser.add_argument("--study", type=Path, metavar="REPORT",
                        help="compare the runs of a GPU study (benchmarks/gpu_check.py --study: its report.json) "
                             "instead of MLflow's; nothing is read from or logged to MLflow")
    return parser.parse_args(argv)


def key_values(items: list[str], option: str) -> dict[str, str]:
    wanted = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{option} takes KEY=VALUE (as in `dvc exp run -S`), got {item!r}")
        wanted[key] = value
    return wanted


def listing(groups: list[Configuration]) -> str:
    return "\n".join(f"  {group.config}  {group.name}  ({len(group.runs)} seeds)" for group in groups)


def choose_baseline(groups: list[Configuration], chosen: list[str] | None) -> Configuration:
    if chosen and len(chosen) == 1 and "=" not in chosen[0]:
        found = [group for group in groups if group.config == chosen[0]]
        what = f"config {chosen[0]}"
    elif chosen:
        found = matching(groups, key_values(chosen, "--baseline"))
        what = " ".join(chosen)
    else:
        params = lineage.baseline_params("HEAD")
        try:
            config = config_hash(Config(**params)) if params is not None else None
        except Exception:
            config = None
        found = [group for group in groups if group.config == config]
        what = f"the DVC baseline's params (params.yaml at HEAD, config {config})"
        if not found:
            raise UserError(f"no evaluated runs of {what}. Choose the baseline among these configurations with "
                            f"--baseline KEY=VALUE (say --baseline lr=0.0002) or its config hash:\n{listing(groups)}")
    if len(found) != 1:
        several = "several configurations match" if found else "no configuration matches"
        raise UserError(f"{several} {what}. Add KEY=VALUE pairs until one does:\n{listing(found or groups)}")
    return found[0]


def log_comparison(files: list[Path], text: str, baseline: Configuration) -> str:
    """The comparison as a run of its own experiment: its table as the run's description, its files."""
    mlflow = connect()
    with mlflow.start_run(experiment_id=experiment_id(mlflow, COMPARISONS),
                          run_name=f"compare against {baseline.name}"[:250],
                          tags={"mlflow.note.content": text, "baseline_config": baseline.config,
                                "baseline_config_name": baseline.name}) as run:
        for path in files:
            mlflow.log_artifact(str(path))
        return run.info.run_id


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.study:
        return compare(args, study_runs_of(args.study), 0, f"the GPU study {args.study}")
    mlflow = connect()
    client = mlflow.MlflowClient()
    try:
        experiment = client.get_experiment_by_name(EXPERIMENT)
    except Exception as exc:
        raise UserError(f"the MLflow store {tracking_uri()} cannot be read ({type(exc).__name__}: {brief(exc)})."
                        " Start the server, or unset MLFLOW_TRACKING_URI to use the project's mlflow.db.") from None
    if experiment is None:
        raise UserError(f"no experiment '{EXPERIMENT}' in {tracking_uri()}: run the pipeline first (make pipeline), "
                        "or set MLFLOW_TRACKING_URI to the store it logged to.")
    runs, untagged = evaluated_runs(client, experiment.experiment_id)
    compare(args, runs, untagged, f"experiment `{EXPERIMENT}` in {tracking_uri()}")


def study_runs_of(report: Path) -> list:
    if not report.is_file():
        raise UserError(f"{report} is not a file: give the report.json that `benchmarks/gpu_check.py OUT --study FILE` "
                        "wrote into OUT")
    try:
        runs = study_runs(report)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{report} is not a study's report.json ({type(exc).__name__}: {exc}). Give the file that "
                        "`benchmarks/gpu_check.py OUT --study FILE` wrote into OUT.") from None
    if not runs:
        raise UserError(f"{report} holds no study runs: was it written with --study?")
    return runs


def compare(args: argparse.Namespace, runs: list, untagged: int, where: str) -> None:
    """Group the runs, choose the baseline, write the comparison; log it to MLflow unless told not to."""
    groups = matching(configurations(runs), key_values(args.where, "--where"))
    if not groups:
        raise UserError(f"no evaluated training runs with a `config` tag in {where}"
                        f"{' that match --where' if args.where else ''}. Train some: "
                        "dvc exp run --queue -S 'seed=range(1,4)' -S lr=0.0001,0.0002 && dvc queue start")
    baseline = choose_baseline(groups, args.baseline)
    source = (f"{where}, {sum(len(g.runs) for g in groups)} trained runs (one per config and seed) in "
              f"{len(groups)} configurations")
    result = comparison(groups, baseline, source)
    if untagged:
        result["notes"].append(f"{untagged} finished runs without a `config` tag (logged before runs were tagged, "
                               "or comparisons) are left out")
    text = markdown(result)
    files = [args.out / "comparison.md", args.out / "comparison.json", args.out / "comparison.png"]
    with atomic_path(files[0]) as tmp:
        tmp.write_text(text)
    write_json(files[1], json_safe(result))
    figures.seed_comparison(result["configurations"], baseline.config, files[2])
    print(text)
    print(f"written: {', '.join(map(str, files))}")
    if not args.no_mlflow and not args.study:
        run_id = log_comparison(files, text, baseline)
        print(f"logged to MLflow: experiment '{COMPARISONS}', run {run_id}")


def entry_point() -> None:
    run_stage(lambda: main(sys.argv[1:]))


if __name__ == "__main__":
    entry_point()
