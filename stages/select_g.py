"""select_g: every G snapshot scored on validation images (the quality curve), and the G the run keeps
(keep_g: best or last) -> models/generator.pt, reports/select/, and the run's MLflow model."""

from dcgan import figures, paths
from dcgan.config import load_config
from dcgan.config_tags import config_tags
from dcgan.errors import run_stage
from dcgan.evaluate.selection import select_generator
from dcgan.io import write_csv, write_json
from dcgan.metric_keys import CURVE_COLUMNS
from dcgan.sample import served_generator
from dcgan.tracking import PipelineRun
from dcgan.tracking.lineage import baseline_params


def main() -> None:
    cfg = load_config()
    with PipelineRun.continued(paths.MLFLOW_RUN, cfg, paths.GENERATOR_MLFLOW_RUN) as mlflow_run:
        selection, curve = select_generator(cfg)
        write_json(paths.SELECTION, selection)
        write_csv(paths.QUALITY_CURVE, curve, CURVE_COLUMNS)
        figures.quality_curve(curve, paths.QUALITY_CURVE_FIGURE, selection)
        # keep_g is part of a configuration: the tags that group its seeds are set once the G is chosen.
        mlflow_run.log_selection(selection, curve, config_tags(cfg, baseline_params()))
        mlflow_run.log_generator(*served_generator(cfg), register_as=cfg.register_model)


if __name__ == "__main__":
    run_stage(main)
