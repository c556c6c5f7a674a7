"""Task-distribution environments and their registry.

``make_env(name, **env_params)`` builds the raw env (its own action bounds);
``make_wrapped_env`` adds the [-1, 1] action rescaling and optional observation
normalisation that data generation, training and evaluation all use.
"""

from __future__ import annotations

import difflib
from typing import Callable

from rlkit.errors import UserError

ENVS: dict[str, Callable] = {}


def register_env(name: str):
    """Class decorator: register an env constructor under ``name``."""

    def _register(cls):
        if name in ENVS:
            raise ValueError(f"env {name!r} is registered twice")
        ENVS[name] = cls
        return cls

    return _register


class UnknownEnvError(UserError, KeyError):
    def __str__(self):  # KeyError quotes its message; keep it one readable line
        return str(self.args[0])


def _check_name(name: str) -> None:
    if name not in ENVS:
        close = difflib.get_close_matches(str(name), ENVS.keys(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownEnvError(
            f"unknown env {name!r}{hint}; known envs: {', '.join(sorted(ENVS))}"
        )


def make_env(name: str, **env_params):
    """Build the task-distribution env ``name`` with the config's ``env_params``."""
    _check_name(name)
    return ENVS[name](**env_params)


def make_wrapped_env(name: str, obs_absmax=None, **env_params):
    """The env as the agent sees it: actions in [-1, 1], observations / ``abs_max``."""
    from rlkit.envs.wrappers import NormalizedActionEnv

    return NormalizedActionEnv(make_env(name, **env_params), obs_absmax=obs_absmax)


# Importing the modules registers the envs.
from rlkit.envs import point_robot  # noqa: E402,F401,I001
from rlkit.envs import half_cheetah, ant, humanoid  # noqa: E402,F401
from rlkit.envs import rand_params  # noqa: E402,F401
