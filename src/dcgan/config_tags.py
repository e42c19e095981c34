"""The MLflow tags that name a run's configuration (config.CONFIG_PARAMS, the values that runs differing
by seed alone share): a short stable hash (`config`) and a readable name (`config_name`: what differs from
the DVC baseline's params, e.g. `lr=0.0001`, or `baseline`). The runs table groups a configuration's
seeds by them (Group by -> tag config_name), and dcgan-compare counts them.
"""

from __future__ import annotations

import hashlib
import json

from dcgan.config import CONFIG_PARAMS, Config

BASELINE_NAME = "baseline"


def config_values(cfg: Config) -> dict[str, object]:
    return {key: getattr(cfg, key) for key in CONFIG_PARAMS}


def config_hash(cfg: Config) -> str:
    """12 hex digits of the SHA-256 of the configuration's values: the same for runs that differ only in
    `seed` or in how they are sampled, scored, watched or sped up; another for any other change.
    Computed from the validated values (`lr: 1e-4` and `lr: 0.0001` are one configuration)."""
    text = json.dumps(config_values(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_name(cfg: Config, baseline: dict | None) -> str:
    """`key=value` for each configuration param that differs from `baseline` (the params.yaml of the DVC
    baseline commit), in CONFIG_PARAMS order, or `baseline`; `unknown baseline` without one."""
    if baseline is None:
        return "unknown baseline"
    try:  # typed as the run's own values are; a baseline of an older params.yaml compares as written
        baseline = Config(**baseline).model_dump()
    except Exception:
        pass
    changed = [f"{key}={value}" for key, value in config_values(cfg).items() if baseline.get(key) != value]
    return ", ".join(changed) or BASELINE_NAME


def config_tags(cfg: Config, baseline: dict | None) -> dict[str, str]:
    """The run's MLflow tags `config` and `config_name`."""
    return {"config": config_hash(cfg), "config_name": config_name(cfg, baseline)}
