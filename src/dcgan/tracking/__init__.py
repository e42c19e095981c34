"""MLflow tracking: where runs go (store), the MLflow run of a pipeline run (pipeline_run), where a run came
from (lineage), and the tools around the store: its web UI (ui) and a shared team server (team)."""

from dcgan.tracking.pipeline_run import PipelineRun, Untracked
from dcgan.tracking.store import EXPERIMENT, check_access, tracking_uri

__all__ = ["EXPERIMENT", "PipelineRun", "Untracked", "check_access", "tracking_uri"]
