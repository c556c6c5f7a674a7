"""Task-distribution environments and their registry.

``make_env(name, **env_params)`` builds the raw env (its own action bounds);
``make_wrapped_env`` adds the [-1, 1] action rescaling and optional observation
normalisation that data generation, training and evaluation all use.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import sys
from typing import Callable

import gymnasium

from rlkit.errors import UserError

ENVS: dict[str, Callable] = {}
GYM_NAMESPACE = "csro"


def gym_id(name: str) -> str:
    """The gymnasium id of a config env name: ``point-robot`` -> ``csro/PointRobot-v0``."""
    return f"{GYM_NAMESPACE}/{''.join(part.capitalize() for part in name.split('-'))}-v0"


# The task set each gymnasium id builds by default: the paper's (configs/ENV.json's env_params,
# which tests/test_envs.py checks against these), so ``gymnasium.make(id, task=K)`` is task K of the
# paper's 40 goals, velocities or parameter draws, not of a 2-task toy.
PAPER_TASK_SETS: dict[str, dict] = {}

RENDER_MODES = ["rgb_array"]


def _sub_envs_in_make_vec() -> int | None:
    """How many sub-envs a ``gym.make_vec(..., vectorization_mode="sync"/"async")`` making this env
    builds, or None when it is not made that way.

    gymnasium passes make_vec's kwargs unchanged to every sub-env, so all of them would run the same
    task; the entry point cannot tell, except from its callers: make_vec's ``create_single_env``, called
    from the ``SyncVectorEnv`` / ``AsyncVectorEnv`` constructor that holds the ``env_fns`` list (the
    async one also makes its first env in this process, so the refusal comes before any worker starts).
    """
    frame, inside = sys._getframe(1), False
    while frame is not None:
        code = frame.f_code
        if code.co_name == "create_single_env" and code.co_filename.endswith("registration.py"):
            inside = True
        elif inside and isinstance(frame.f_locals.get("env_fns"), (list, tuple)):
            return len(frame.f_locals["env_fns"])
        frame = frame.f_back
    return None


def _make_for_gymnasium(name: str, task: int = 0, render_mode: str | None = None, width: int | None = None,
                        height: int | None = None, camera_id: int | None = None, camera_name: str | None = None,
                        **env_params):
    """gymnasium's entry point: the env of ``env_params`` (default: the paper's task set) on task ``task``.

    ``width``, ``height``, ``camera_id`` and ``camera_name`` are gymnasium's MuJoCo rendering arguments
    (:meth:`rlkit.envs.base.MultiTaskEnv.configure_rendering`); they are not env_params, since they change
    no task or dynamics and so no config, dataset or checkpoint needs them.

    Made this way, the episode horizon is gymnasium's TimeLimit: the registered
    spec's ``max_episode_steps`` (the paper's horizon) or the one given to
    ``gymnasium.make``, so the env does not also truncate at its own.
    """
    n_sub = _sub_envs_in_make_vec()
    if n_sub is not None and n_sub > 1:
        raise ValueError(f"gym.make_vec's sync/async modes would give all {n_sub} sub-envs the same task {task}: "
                         "use vectorization_mode='vector_entry_point' (the default) with tasks=[...], one id per "
                         "sub-env, or gymnasium.vector.SyncVectorEnv([lambda k=k: gymnasium.make(id, task=k) "
                         "for k in tasks])")
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode {render_mode!r} is not supported; use one of {RENDER_MODES} "
                         "(or 'human', which gymnasium shows through its HumanRendering wrapper)")
    env = ENVS[name](**env_params)
    env.configure_rendering(width, height, camera_id, camera_name)
    env.render_mode = render_mode
    env.truncates_itself = False
    if task:
        env.reset_task(task)
    return env


# gymnasium.make reads the creator's render modes: "human" then becomes rgb_array + HumanRendering.
_make_for_gymnasium.metadata = {"render_modes": RENDER_MODES}


def register_env(name: str, **paper_task_set):
    """Class decorator: register an env under its config name and, in gymnasium, as :func:`gym_id`.

    ``paper_task_set`` is the env_params of the paper's task set (n_tasks, task
    draws, horizon); ``gymnasium.make("csro/PointRobot-v0", task=5)`` (after
    ``import rlkit.envs``, or ``gymnasium.make("rlkit.envs:csro/PointRobot-v0")``)
    builds task 5 of it, the same env as the configs do, with ``env.spec`` set;
    other env_params given to ``make`` replace the paper's. ``max_episode_steps``
    given to ``make`` sets the horizon (gymnasium's TimeLimit); the spec's
    default is the paper's.
    """

    def _register(cls):
        if name in ENVS:
            raise ValueError(f"env {name!r} is registered twice")
        ENVS[name] = cls
        cls.registered_name = name  # the config name, for messages (a class name means nothing to users)
        PAPER_TASK_SETS[name] = dict(paper_task_set)
        horizon = paper_task_set.get("max_episode_steps")
        # A string entry point (not the function): a spec saved as JSON (a Minari dataset's env_spec)
        # can be made in a process that never imported rlkit; making it imports this module.
        gymnasium.register(id=gym_id(name), entry_point=f"{__name__}:_make_for_gymnasium",
                           vector_entry_point=f"{__name__}.vector:make_vec_for_gymnasium",
                           kwargs={"name": name, **{k: v for k, v in paper_task_set.items()
                                                    if k != "max_episode_steps"}},
                           max_episode_steps=horizon, order_enforce=False, disable_env_checker=True)
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


class RelabelUnsupported(UserError, NotImplementedError):
    """The env cannot relabel a stored transition with another task's outcome (MultiTaskEnv.relabel_outcomes)."""


class EnvParamError(UserError, TypeError):
    """An env_params key the env does not take (the optional keys belong to some envs only)."""


def _check_params(name: str, env_params: dict) -> None:
    accepted = [p for p in inspect.signature(ENVS[name]).parameters if p not in ("self", "args", "kwargs")]
    unknown = sorted(set(env_params) - set(accepted))
    if unknown:
        raise EnvParamError(f"env {name!r} takes no env_params.{unknown[0]}; its env_params are: "
                            f"{', '.join(accepted)} (remove the key from the config)")


def env_class(name: str):
    """The registered class of ``name``: what tools ask about an env (sac_preset, path_figure, ...)."""
    _check_name(name)
    return ENVS[name]


def offline_data_env(name: str) -> str:
    """The env whose offline data ``name`` learns from: itself, or the one its class names in
    ``offline_data_of``. sparse-point-robot names point-robot: the same dynamics, tasks and dense
    training reward (only evaluation sparsifies it), so its behaviour data is point-robot's and
    one dataset serves both instead of two generator runs of the same thing."""
    return getattr(env_class(name), "offline_data_of", None) or name


def make_env(name: str, **env_params):
    """Build the task-distribution env ``name`` with the config's ``env_params``, through gymnasium's
    registry: ``env.spec`` is the registered spec with these arguments."""
    _check_name(name)
    _check_params(name, env_params)
    # Not gymnasium.make(): the tools want the bare env, which ends its own episodes at its horizon
    # (no TimeLimit wrapper). The registered spec, with these arguments, is attached as env.spec.
    env = ENVS[name](**env_params)
    spec = gymnasium.spec(gym_id(name))
    env.spec = dataclasses.replace(spec, kwargs={**spec.kwargs, **env_params}, max_episode_steps=env.max_episode_steps)
    return env


def run_context_reward(env, algo_params: dict) -> Callable | None:
    """The rule that turns a transition's dense reward into the one a run's context holds: the env's
    ``context_reward`` in a sparse-reward run (``algo_params.sparse_rewards``), ``None`` (the stored
    reward as it is) otherwise. The trainers, the generic loop and the run loader all ask here, so
    training and every later reading of a run build the context by one rule."""
    return env.context_reward if algo_params.get("sparse_rewards", False) else None


def make_wrapped_env(name: str, obs_absmax=None, **env_params):
    """The env as the agent sees it: actions in [-1, 1], observations / ``abs_max``."""
    from rlkit.envs.wrappers import NormalizedActionEnv

    return NormalizedActionEnv(make_env(name, **env_params), obs_absmax=obs_absmax)


# Importing the modules registers the envs.
from rlkit.envs import point_robot  # noqa: E402,F401,I001
from rlkit.envs import half_cheetah, ant, humanoid  # noqa: E402,F401
from rlkit.envs import rand_params  # noqa: E402,F401
