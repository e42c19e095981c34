"""The trained generator as an MLflow model: latent vectors in, images in [-1, 1] out.

Logged at the end of training with `mlflow.pytorch.log_model`, so that it shows under the run's
Logged models, loads with `mlflow.pytorch.load_model("runs:/<run id>/generator")` and serves with
`mlflow models serve -m runs:/<run id>/generator --env-manager local`. It is saved as a torch.export
program (pt2): loading it runs no pickled code and needs no `dcgan` package. Its requirements are
written out, so nothing is inferred online.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

from dcgan.config import Config
from dcgan.models import LatentToImage, draw_noise

MODEL_NAME = "generator"


def generator_model(generator: torch.nn.Module) -> LatentToImage:
    """A CPU copy of G in eval mode (BatchNorm's running statistics), wrapped for [N, nz] input."""
    return LatentToImage(copy.deepcopy(generator).cpu().eval())


def log_generator(generator: torch.nn.Module, cfg: Config, run_id: str):
    """Log G to the run; with `register_model` set, also as a new version of that registered model.
    The run's tag `generator_model_uri` says where it is (models:/<model id>)."""
    import mlflow
    from mlflow.models import infer_signature

    # The model belongs to the run's experiment (log_model would otherwise pick the active, default one).
    mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(run_id).info.experiment_id)
    model = generator_model(generator)
    latents = draw_noise(4, cfg, rng=torch.Generator().manual_seed(cfg.seed)).reshape(4, cfg.nz).numpy()
    with torch.no_grad():
        images = model(torch.from_numpy(latents)).numpy()
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}",
                    f"mlflow=={mlflow.__version__}"]
    with warnings.catch_warnings():  # torch.export's packager, about weights that are all on the CPU anyway
        warnings.filterwarnings("ignore", message="No complete tensor found in the group")
        info = mlflow.pytorch.log_model(
            model, name=MODEL_NAME, run_id=run_id, signature=infer_signature(latents, images),
            input_example=latents, pip_requirements=requirements, serialization_format="pt2",
            registered_model_name=cfg.register_model,
            metadata={"latent": cfg.noise, "nz": cfg.nz, "image_size": cfg.image_size, "channels": cfg.nc,
                      "output_range": [-1, 1], "to_uint8": "round((x + 1) * 127.5)"})
    mlflow.MlflowClient().set_tag(run_id, "generator_model_uri", info.model_uri)
    return info
