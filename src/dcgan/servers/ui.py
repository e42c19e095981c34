"""`make ui`: the MLflow UI on the project's store, and the URLs that open its runs.

    python -m dcgan.servers.ui [--port 5000] [--host 127.0.0.1]

MLflow 3 opens an experiment on its GenAI overview; the printed URL opens the runs table of the
model-training view instead, where the compare view and the charts are. A second URL opens the same
table grouped by the runs' `config_name` tag (one group per configuration, its seeds inside), whose
charts draw one line per configuration (the mean over its seeds) in a min-max band.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.parse

from dcgan.tracking.store import EXPERIMENT, RUNS_VIEW, connect, experiment_id, runs_url, tracking_uri

# The grouped view is MLflow-internal UI state, read off the pinned MLflow's JS bundle (mlflow/server/js/build):
# a saved view is the experiment tag `mlflow.sharedViewState.<key>` holding an envelope
# {"name", "createdAt", "updatedAt" (ms), "state"}, where "state" is the JSON of the page's search facets
# and UI state (the UI deflates it, "deflate;<base64>", but reads plain JSON too), and the URL parameter
# viewStateShareKey=<key> applies it (so does picking the view in the runs page's "Views" menu). Only
# while the URL carries no search facet (searchFilter, orderByKey, ...): with one, the view is ignored.
# groupBy is {"aggregateFunction": "min" | "average" | "max", "groupByKeys": [{"mode": "tag" | "param" |
# "dataset", "groupByData": <key>}]}; a group's chart line is its aggregate, its band always min to max.
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
SHARE_KEY_PARAM = "viewStateShareKey"
GROUPED_VIEW_KEY = "dcgan-by-config"
GROUPED_VIEW_NAME = "Runs by configuration"
GROUP_TAG = "config_name"
GROUPED_VIEW_STATE = {
    "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": GROUP_TAG}]},
    "useGroupedValuesInCharts": True,  # the charts draw the groups, not their runs
    # The headline score (a group row shows its mean over the seeds) and the data set. Not the seed: a
    # group row would show the seeds' mean there too, which means nothing.
    "selectedColumns": ["metrics.`scores/fd_classifier`", "attributes.`Dataset`"],
}


def grouped_runs_url(base_url: str, experiment: str, client=None) -> str:
    """Saves the view "runs grouped by config_name" in the experiment (an experiment tag; rewritten only
    when its state changed) and returns the URL that opens it in the model-training view's runs table."""
    if client is None:
        from mlflow import MlflowClient

        client = MlflowClient()
    tag = SHARED_VIEW_TAG_PREFIX + GROUPED_VIEW_KEY
    state = json.dumps(GROUPED_VIEW_STATE, separators=(",", ":"))
    try:
        saved = json.loads(client.get_experiment(experiment).tags.get(tag, "null"))
    except ValueError:
        saved = None
    if not (isinstance(saved, dict) and saved.get("state") == state and saved.get("name") == GROUPED_VIEW_NAME):
        now = int(time.time() * 1000)
        client.set_experiment_tag(experiment, tag, json.dumps(
            {"name": GROUPED_VIEW_NAME, "createdAt": now, "updatedAt": now, "state": state}))
    query = urllib.parse.urlencode({SHARE_KEY_PARAM: GROUPED_VIEW_KEY})
    return f"{runs_url(base_url, experiment)}{'&' if '?' in RUNS_VIEW else '?'}{query}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    uri = tracking_uri()
    experiment = experiment_id(connect())  # created (and marked as model training) if no run made it yet
    base = f"http://{args.host}:{args.port}"
    print(f"MLflow UI for {uri}\n\n  open {runs_url(base, experiment)}\n"
          f"\n  (experiment '{EXPERIMENT}', its runs in the model-training view; Ctrl-C stops the UI)\n"
          f"\n  runs grouped by configuration: {grouped_runs_url(base, experiment)}\n"
          f"  (tag {GROUP_TAG}, one chart line per configuration in its seeds' min-max band; a view saved\n"
          f"  in the experiment as MLflow-internal UI state, tag {SHARED_VIEW_TAG_PREFIX}{GROUPED_VIEW_KEY})\n",
          flush=True)
    mlflow_cli = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    os.execv(mlflow_cli, [mlflow_cli, "ui", "--backend-store-uri", uri, "--host", args.host,
                          "--port", str(args.port)])


if __name__ == "__main__":
    main()
