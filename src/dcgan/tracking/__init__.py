"""MLflow tracking: where runs go (store), the MLflow run of a pipeline run (pipeline_run), and where a run
came from (lineage). The servers around the store are dcgan.servers."""

from dcgan.tracking.pipeline_run import PipelineRun, Untracked
from dcgan.tracking.store import EXPERIMENT, check_access, tracking_uri

__all__ = ["EXPERIMENT", "PipelineRun", "Untracked", "check_access", "tracking_uri"]
