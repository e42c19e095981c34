"""MLflow tracking: where runs go (store), how training logs through outages (run_logger), what each
stage adds to its pipeline run (runs), where a run came from (lineage), G as a model (generator_model)."""

from dcgan.tracking.run_logger import RunLogger
from dcgan.tracking.runs import continued_run, log_evaluation, log_samples, log_selection, training_run
from dcgan.tracking.store import EXPERIMENT, check_access, tracking_uri

__all__ = ["EXPERIMENT", "RunLogger", "check_access", "continued_run", "log_evaluation", "log_samples", "log_selection",
           "training_run", "tracking_uri"]
