"""The stateful agent contract (rlkit.evaluation.agent): "infer z, then act" as one adapter of it keeps
every shipped preset's protocol numbers, bit for bit, against the runner as it was (tests/legacy_protocols.py)."""

import numpy as np
import pytest
import torch

from rlkit.config import algo_presets, load_config
from rlkit.evaluation.agent import CAPABILITIES, EvalAgent, ZContextAdapter, as_eval_agent
from rlkit.evaluation.protocols import ALL_PROTOCOLS, EvalSettings, run_protocol
from rlkit.torch.csro import CSROAgent, CSROHyperParams
from tests.legacy_protocols import legacy_run_protocol

REPO_POINT_ROBOT = "point-robot"
PARAMS = dict(n_tasks=6, max_episode_steps=20)
SETTINGS = EvalSettings(max_path_length=20, num_steps_per_eval=60, num_exp_traj_eval=1, num_evals=2)
TASKS = [1, 4]


def preset_agent(preset: str) -> CSROAgent:
    """A seeded, untrained agent of ``preset`` on point-robot's settings (small networks)."""
    cfg = load_config(REPO_POINT_ROBOT, [f"algo_type={preset}", "latent_size=3", "net_size=16"])
    torch.manual_seed(0)
    return CSROAgent(2, 2, CSROHyperParams.from_config(cfg)).eval()


def offline_source(dim: int):
    """Seeded offline rows: the same draws for both runners."""
    g = torch.Generator().manual_seed(7)
    return lambda tasks, n: torch.randn(len(tasks), n, dim, generator=g) + tasks[:, None, None].float()


def _run(fn, protocol, agent):
    torch.manual_seed(11)  # policy noise comes from torch's global RNG
    return fn(protocol, agent, REPO_POINT_ROBOT, PARAMS, TASKS, SETTINGS, offline_context=offline_source(5),
              seed=3, record_trace=True)


# the z-context presets: the adapter is theirs (BOReL's agent is an EvalAgent itself, tests/test_borel.py)
Z_CONTEXT_PRESETS = sorted(name for name in algo_presets()
                           if load_config(REPO_POINT_ROBOT, [f"algo_type={name}"])["algo_params"]["trainer"] == "csro")


@pytest.mark.parametrize("preset", Z_CONTEXT_PRESETS)
@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_the_adapter_keeps_every_presets_protocol_numbers_bit_for_bit(preset, protocol):
    agent = preset_agent(preset)
    old, new = _run(legacy_run_protocol, protocol, agent), _run(run_protocol, protocol, agent)
    assert new.episode_returns == old.episode_returns
    np.testing.assert_array_equal(new.trace["actions"], old.trace["actions"])
    np.testing.assert_array_equal(new.trace["obs"], old.trace["obs"])
    np.testing.assert_array_equal(new.context_lengths, old.context_lengths)
    np.testing.assert_array_equal(new.z, old.z)
    assert (new.z_var is None) == (old.z_var is None)
    if old.z_var is not None:
        np.testing.assert_array_equal(new.z_var, old.z_var)


def test_a_model_without_declared_capabilities_takes_the_plain_path_with_the_same_numbers():
    """Without ``capabilities`` the adapter infers z from the padded context (``infer_z``) and acts twice
    where it explores; for the same encoder the numbers are those of the cached path, as they were."""

    class Plain(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.latent_dim, self.use_next_obs_in_context = inner, inner.latent_dim, False

        def infer_z(self, context, lengths):
            return self.inner.infer_z(context, lengths)

        def act(self, obs, z, deterministic):
            return self.inner.act(obs, z, deterministic)

    plain = Plain(preset_agent("CSRO"))
    assert not ZContextAdapter(plain).cached and ZContextAdapter(plain.inner).cached
    old, new = _run(legacy_run_protocol, "np_online", plain), _run(run_protocol, "np_online", plain)
    assert new.episode_returns == old.episode_returns and new.z_var is None
    np.testing.assert_array_equal(new.z, old.z)


def test_capabilities_are_declared_and_checked():
    assert CSROAgent.capabilities <= CAPABILITIES
    agent = preset_agent("CSRO")
    agent.capabilities = frozenset({"encode_per_transition", "telepathy"})
    with pytest.raises(TypeError, match="unknown capabilities.*telepathy"):
        ZContextAdapter(agent)


class CountingAgent(EvalAgent):
    """An agent with no z whose belief is its own: the count of observed transitions that joined."""

    def reset(self, tasks, rollout):
        self.events, self.joined, self.begun = [], np.zeros(len(tasks), dtype=int), np.zeros(len(tasks), dtype=int)

    def observe(self, transitions):
        self.events.append("offline" if transitions.offline else "step")
        self.joined[transitions.envs[transitions.joins]] += transitions.rows().shape[1]

    def begin_evaluation(self, mask):
        self.events.append("begin")
        self.begun += mask

    def end_episodes(self, ended, evaluation, eval_steps):
        self.events.append("end")

    def act(self, obs, deterministic):
        return torch.zeros(obs.shape[0], 2)


def test_an_agent_without_z_runs_every_protocol_and_sees_what_joins_the_context():
    agent = CountingAgent()
    assert as_eval_agent(agent) is agent
    for protocol in ("online", "offline", "np_online"):
        res = run_protocol(protocol, agent, REPO_POINT_ROBOT, PARAMS, TASKS, SETTINGS,
                           offline_context=offline_source(5))
        assert res.z is None and res.z_var is None  # "n/a": no z diagnostics
        np.testing.assert_array_equal(agent.joined, res.context_lengths)
        episodes = SETTINGS.num_steps_per_eval // SETTINGS.max_path_length  # point-robot: fixed-length episodes
        np.testing.assert_array_equal(agent.begun, episodes)  # every evaluation episode is announced once
        assert ("offline" in agent.events) == (protocol == "offline")
