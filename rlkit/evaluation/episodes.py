"""Recorded rollouts of a trained run and the episodes in them: what show_path.py draws and its clips replay.

:func:`rollouts` runs the evaluation protocols on a few test tasks with every step recorded
(``record_trace``), sharing one vector env as meta-training does; :func:`labelled_episodes` cuts a
sub-env's trace into episodes and says which are exploration, evaluation and the scored last one.
They sit with the protocols rather than in a command, because both the figures
(:mod:`rlkit.cli.show_path`) and the clips (:mod:`rlkit.evaluation.protocol_video`) read them:
a command importing another command's helpers tied the two in an import cycle.
"""

from __future__ import annotations

import numpy as np
import torch

from rlkit.evaluation.protocols import OFFLINE_DATA, eval_transitions, get_protocol, run_protocol, trace_episodes


def reads_offline_data(protocol: str) -> bool:
    """Whether the protocol's context comes from the offline data (what it reads, not its name)."""
    return OFFLINE_DATA in get_protocol(protocol).context


def rollouts(run, protocols, tasks, num_evals: int = 1, seed: int = 0) -> dict:
    """``{protocol: ProtocolResult}`` with traces, sharing one vector env like meta-training does."""
    from gymnasium.vector import AutoresetMode

    from rlkit.core.progress import progress
    from rlkit.envs.vector import make_vector_env

    torch.manual_seed(seed)  # np_online samples policy actions: the same --seed gives the same paths
    settings = run.settings(num_evals=num_evals)
    venv = make_vector_env(run.env_name, run.env_params, np.repeat(tasks, settings.num_evals),
                           obs_absmax=run.obs_absmax, autoreset_mode=AutoresetMode.DISABLED)
    bar = progress(total=eval_transitions(settings, len(tasks), len(protocols)), desc="rollouts", unit="transition")
    try:
        return {p: run_protocol(p, run.agent, run.env_name, run.env_params, tasks, settings,
                                offline_context=run.offline_context(seed) if reads_offline_data(p) else None,
                                obs_absmax=run.obs_absmax, seed=seed + k, device=run.device,
                                record_trace=True, venv=venv, progress=bar)
                for k, p in enumerate(protocols)}
    finally:
        bar.close()
        venv.close()


def labelled_episodes(result, m: int, num_exp_traj_eval: int, max_path_length: int) -> list[dict]:
    """Episodes of sub-env ``m`` with a ``kind``: exploration, evaluation or last (the scored one).

    The online protocol's first episodes, run before z leaves the prior, count as exploration.
    """
    episodes = trace_episodes(result.trace, m)
    eval_steps = 0
    for ep in episodes:
        prior = result.protocol == "online" and eval_steps < num_exp_traj_eval * max_path_length
        ep["kind"] = "exploration" if ep["exploring"] or prior else "evaluation"
        if not ep["exploring"]:
            eval_steps += len(ep["steps"])
    evaluation = [ep for ep in episodes if not ep["exploring"]]
    if evaluation:
        evaluation[-1]["kind"] = "last"
    return episodes


def first_env_of(result, task: int) -> int:
    """The sub-env of ``result`` that ran ``task``'s first repeat (the one the figures and clips show)."""
    return int(np.flatnonzero(result.task_of == task)[0])
