"""`make ui`: the MLflow UI on the project's store, and the one URL that opens its runs.

    python -m dcgan.tracking.ui [--port 5000] [--host 127.0.0.1]

MLflow 3 opens an experiment on its GenAI overview; the printed URL opens the runs table of the
model-training view instead, where the compare view and the charts are.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from dcgan.tracking.store import EXPERIMENT, connect, experiment_id, runs_url, tracking_uri


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    uri = tracking_uri()
    experiment = experiment_id(connect())  # created (and marked as model training) if no run made it yet
    print(f"MLflow UI for {uri}\n\n  open {runs_url(f'http://{args.host}:{args.port}', experiment)}\n"
          f"\n  (experiment '{EXPERIMENT}', its runs in the model-training view; Ctrl-C stops the UI)\n", flush=True)
    mlflow_cli = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    os.execv(mlflow_cli, [mlflow_cli, "ui", "--backend-store-uri", uri, "--host", args.host,
                          "--port", str(args.port)])


if __name__ == "__main__":
    main()
