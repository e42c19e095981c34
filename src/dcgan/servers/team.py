"""A team's tracking server, from its admin's side: the experiments the team writes to, and teammates.

Run by scripts/team-server.sh with the admin's credentials in MLFLOW_TRACKING_USERNAME/PASSWORD:
    python -m dcgan.servers.team init                  the experiments, made once by the admin
    python -m dcgan.servers.team add-user NAME [--read]  a user with EDIT (or READ) on them
"""

from __future__ import annotations

import argparse
import secrets
import warnings

from dcgan.errors import UserError, run_stage
from dcgan.tracking.store import COMPARISONS, EXPERIMENT, connect, experiment_id, tracking_uri

TEAM_EXPERIMENTS = (EXPERIMENT, COMPARISONS)


def init() -> dict[str, str]:
    """The team's experiments, created by the admin: MLflow grants permissions on experiments that exist."""
    mlflow = connect()
    return {name: experiment_id(mlflow, name) for name in TEAM_EXPERIMENTS}


def add_user(name: str, read_only: bool = False) -> str:
    """Create `name` with a new password and grant it EDIT (or READ) on the team's experiments."""
    with warnings.catch_warnings():  # the server's own modules warn of its web framework's deprecations
        warnings.simplefilter("ignore")
        from mlflow.server import get_app_client

    experiments = init()
    auth = get_app_client("basic-auth", tracking_uri=tracking_uri())
    password = secrets.token_urlsafe(18)
    try:
        auth.create_user(username=name, password=password)
    except Exception as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_ALREADY_EXISTS":
            raise UserError(f"user {name} exists already on {tracking_uri()}: pick another name, or have them "
                            "keep their password") from None
        raise
    permission = "READ" if read_only else "EDIT"
    for experiment in experiments.values():
        auth.grant_user_permission(name, "experiment", experiment, permission)
    return password


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dcgan.servers.team", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the team's experiments")
    add = commands.add_parser("add-user", help="a teammate: EDIT on the team's experiments")
    add.add_argument("name")
    add.add_argument("--read", action="store_true", help="READ only: sees every run, writes none")
    args = parser.parse_args()
    if args.command == "init":
        init()
        return
    password = add_user(args.name, read_only=args.read)
    what = "read only" if args.read else "EDIT on " + ", ".join(TEAM_EXPERIMENTS)
    print(f"user {args.name} ({what}) on {tracking_uri()}. Their password is shown this once; send it to them "
          f"privately. In their shell:\n"
          f"  export MLFLOW_TRACKING_URI={tracking_uri()}\n"
          f"  export MLFLOW_TRACKING_USERNAME={args.name}\n"
          f"  export MLFLOW_TRACKING_PASSWORD='{password}'")


if __name__ == "__main__":
    run_stage(main)
