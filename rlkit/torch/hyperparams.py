"""The settings one CSRO training step reads, in one object shared by the step and its parts.

It sits below the trainer (:mod:`rlkit.torch.csro`) and the representation
objectives (:mod:`rlkit.torch.objectives`), which both read it, so that
neither has to import the other for it.
"""

from __future__ import annotations

import difflib
from types import SimpleNamespace
from typing import Any, Mapping

from rlkit.config import ConfigError, load_defaults


def _step_defaults() -> tuple[tuple[str, Any], ...]:
    # read each time (a deep copy of a small dict, well under a millisecond): a plug-in objective's keys
    # (rlkit.config.register_algo_params) are settings from the moment they are registered
    defaults, _ = load_defaults()
    merged = {"latent_size": defaults["latent_size"], "net_size": defaults["net_size"], **defaults["algo_params"]}
    return tuple(merged.items())


class CSROHyperParams(SimpleNamespace):
    """The settings one training step reads: ``latent_size``, ``net_size`` and every ``algo_params`` key.

    Defaults come from rlkit/defaults.py, the one place they are declared, so
    a key added there (say, a new objective's weight) is readable here as
    ``hp.<key>`` with nothing else to edit. Keywords override defaults; a name
    that is not a config key is refused. Switches written 0/1 become bools.
    """

    def __init__(self, **overrides: Any):
        values = dict(_step_defaults())
        unknown = sorted(set(overrides) - set(values))
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(values), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown training setting {unknown[0]!r}{hint}; settings are the algo_params keys "
                              "of rlkit/defaults.py plus latent_size and net_size")
        values.update(overrides)
        for key, default in _step_defaults():
            if isinstance(default, bool):
                values[key] = bool(values[key])
        super().__init__(**values)

    @classmethod
    def from_config(cls, cfg: Mapping) -> "CSROHyperParams":
        """The step's settings from a resolved config (top level + algo_params)."""
        names = dict(_step_defaults())
        algo = {k: v for k, v in dict(cfg.get("algo_params", {})).items() if k in names}
        top = {k: cfg[k] for k in ("latent_size", "net_size") if k in cfg}
        if not algo.get("unicorn_classifier_classes") and "n_tasks" in (cfg.get("env_params") or {}):
            algo["unicorn_classifier_classes"] = int(cfg["env_params"]["n_tasks"])  # one class per task id
        return cls(**top, **algo)
