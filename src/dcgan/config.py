"""The one definition of the pipeline's parameters: `params.yaml`, typed and validated.

Every key is top level so that `dvc exp run -S key=value` reaches it and MLflow's compare view
lines runs up by the same names. Values and what each key means live in params.yaml only (no defaults
or descriptions here, so there is one place to read them); this module says what each may be.
Validation runs before any stage does work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dcgan.data.datasets import DATASETS
from dcgan.errors import ConfigError

# What shapes the trained weights, and nothing else: a training's identity. A checkpoint resumes only a
# run that shares these (and the training data's bytes and the process count; train.run_identity), so a
# run killed mid-way resumes after `-S n_samples=5000` or `-S log_every=100`, and the train stage's params
# in dvc.yaml are these plus what changes only how a run is watched, how long or how fast it goes
# (tests/test_dag.py holds dvc.yaml to it). `epochs` is not here: training longer continues the same
# stream of batches. The data params (max_train_images, ...) reach the weights through the data's bytes.
WEIGHTS_PARAMS = ("seed", "dataset", "channels", "image_size", "arch", "nz", "ngf", "ndf", "d_dropout", "noise",
                  "batch_size", "nproc", "lr", "lr_d", "lr_g", "beta1", "label_smoothing", "ema_decay",
                  "lr_decay_start")

# A configuration, as dcgan-compare and MLflow's `config` tag group runs: what shapes the trained weights but
# the seed, the params that choose the training images (they reach the weights through the data's bytes),
# how long it trains and which of its Gs it keeps. Runs that share these differ by chance alone, so their spread is the seed's.
CONFIG_PARAMS = (*(key for key in WEIGHTS_PARAMS if key != "seed"), "path", "max_train_images", "epochs", "keep_g")

# Powers of two (4x4 maps next to the latent) and 28, the 7 -> 14 -> 28 layout of the MNIST tutorials.
IMAGE_SIZES = (16, 28, 32, 64, 128, 256)


class Config(BaseModel):
    # allow_inf_nan=False: `lr: .inf` or `.nan` would pass a `gt=0` check and wreck a run hours later.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    seed: int = Field(ge=0, lt=2**32)

    # data
    dataset: Literal[tuple(DATASETS)]
    data_mirror: str
    path: Optional[str]
    channels: Optional[Literal[1, 3]]
    max_bad_image_fraction: float = Field(ge=0, le=1)
    max_train_images: int = Field(ge=0)
    image_size: int

    # model
    arch: Literal["dcgan", "mlp"]
    # Upper bounds catch typos (ngf: 6400) that would otherwise end in an out-of-memory error mid-run.
    nz: int = Field(ge=1, le=4096)
    ngf: int = Field(ge=1, le=4096)
    ndf: int = Field(ge=1, le=4096)
    d_dropout: float = Field(ge=0, lt=1)
    noise: Literal["normal", "uniform"]

    # training
    batch_size: int = Field(ge=1, le=65536)
    epochs: int = Field(ge=1, le=100_000)
    lr: float = Field(gt=0)
    lr_d: Optional[float] = Field(gt=0)
    lr_g: Optional[float] = Field(gt=0)
    beta1: float = Field(ge=0, lt=1)
    label_smoothing: float = Field(ge=0, lt=0.5)
    ema_decay: float = Field(ge=0, lt=1)
    lr_decay_start: float = Field(ge=0, le=1)
    device: Literal["auto", "cpu", "cuda", "mps"]
    log_every: int = Field(ge=1)
    sample_every: int = Field(ge=1)
    eval_every: int = Field(ge=1)
    checkpoint_every: int = Field(ge=1)
    keep_checkpoints: int = Field(ge=1)
    nproc: int = Field(ge=1, le=1024)
    register_model: Optional[str] = Field(min_length=1, max_length=256, pattern=r"^[\w.\- ]+$")

    # the fast path (src/dcgan/fast_path.py): auto = on only where it pays off
    channels_last: Literal["auto", "on", "off"]
    fused_adam: Literal["auto", "on", "off"]
    cudnn_benchmark: Literal["auto", "on", "off"]
    amp: Literal["auto", "on", "off"]
    compile: Literal["auto", "on", "off"]

    # sampling and evaluation
    keep_g: Literal["best", "last"]
    n_samples: int = Field(ge=64, le=1_000_000)
    sample_bn_mode: Literal["eval", "train"]
    curve_samples: int = Field(ge=64)
    eval_image_size: int
    eval_seed: int = Field(ge=0, lt=2**32)
    classifier_epochs: int = Field(ge=1)
    inception: Literal["auto", "on", "off"]
    kid_subset_size: int = Field(ge=10)
    kid_subsets: int = Field(ge=1)

    @field_validator("inception", "channels_last", "fused_adam", "cudnn_benchmark", "amp", "compile", mode="before")
    @classmethod
    def _yaml_on_off(cls, value):
        """YAML reads a bare on/off (also from `dvc exp run -S inception=on`) as a boolean."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("image_size", "eval_image_size")
    @classmethod
    def _supported_size(cls, size: int) -> int:
        if size not in IMAGE_SIZES:
            raise ValueError(f"must be one of {', '.join(map(str, IMAGE_SIZES))}")
        return size

    @model_validator(mode="after")
    def _batch_splits_over_processes(self) -> "Config":
        if self.batch_size % self.nproc:
            raise ValueError(f"`batch_size` = {self.batch_size} must split evenly over `nproc` = {self.nproc} "
                             "processes (it is the global batch; each process takes batch_size / nproc)")
        return self

    @model_validator(mode="after")
    def _folder_params(self) -> "Config":
        if self.dataset == "folder":
            missing = [key for key in ("path", "channels") if getattr(self, key) is None]
            if missing:
                raise ValueError(f"`dataset` = 'folder' needs {' and '.join(f'`{k}`' for k in missing)}: "
                                 "`path` is the image folder, `channels` is 1 (grayscale) or 3 (RGB)")
        else:
            given = [key for key in ("path", "channels") if getattr(self, key) is not None]
            if given:
                raise ValueError(f"{' and '.join(f'`{k}`' for k in given)} apply only to `dataset: folder`; "
                                 f"{self.dataset} has its own files and {DATASETS[self.dataset].channels} "
                                 "channel(s). Set them to null")
        return self

    @property
    def nc(self) -> int:
        """Image channels, derived from the data set and never typed twice."""
        return DATASETS[self.dataset].channels or self.channels

    @property
    def mirror(self) -> Optional[str]:
        """The local copy to read before going online: `auto` = the data set's usual place, if any."""
        return DATASETS[self.dataset].default_mirror if self.data_mirror == "auto" else self.data_mirror

    @property
    def lr_d_effective(self) -> float:
        return self.lr_d if self.lr_d is not None else self.lr

    @property
    def lr_g_effective(self) -> float:
        return self.lr_g if self.lr_g is not None else self.lr

    def flat(self) -> dict[str, object]:
        """The params as MLflow logs them: every key, plus the learning rates actually used."""
        return {**self.model_dump(), "nc": self.nc,
                "lr_d_effective": self.lr_d_effective, "lr_g_effective": self.lr_g_effective}


def _describe(error: dict, raw: dict) -> str:
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if not key:  # a rule across keys: its message names them
        return f"{message}."
    if error["type"] == "missing":
        return f"`{key}` is missing. Every parameter needs a value; see the project's params.yaml for all of them."
    if error["type"] == "extra_forbidden":
        return f"`{key}` is not a known parameter. Known parameters: {', '.join(Config.model_fields)}."
    if error["type"] == "literal_error" and key == "dataset":
        return (f"`dataset` = {raw.get('dataset')!r} is not a supported data set. "
                f"Supported: {', '.join(DATASETS)} (folder = any folder of images, with `path` and `channels`).")
    shown = raw.get(error["loc"][0], "(missing)") if error["loc"] else raw
    return f"`{key}` = {shown!r} is not allowed: {message}."


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read and validate params.yaml; any problem raises ConfigError with one line per bad key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found. Run the stages from the project root, where params.yaml lives.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of `key: value` lines, got {type(raw).__name__}.")
    try:
        return Config(**raw)
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(e, raw)}" for e in exc.errors())
        raise ConfigError(f"{path} has invalid parameters:\n{problems}\n"
                          f"Fix them in {path} (or in your `dvc exp run -S` overrides) and run again.") from None

