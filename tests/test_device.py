"""Trainer, generator and evaluator on the chosen device (``pytest --device cuda``), files readable anywhere.

On the CPU (CI) these check the device plumbing and that snapshots hold only
CPU tensors; ``benchmarks/gpu_check.sh`` runs them with ``--device cuda`` on a
GPU machine, where they check that nothing silently stays on (or moves to)
the wrong device.
"""

import numpy as np
import torch

from rlkit.core.logger import atomic_torch_save, load_snapshot
from rlkit.torch.csro import CSROHyperParams, CSROTrainer, MetaBatch


def _all_tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _all_tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _all_tensors(v)


def _batch(device, t=3, n=16, b=8, obs=2, act=2, extra=2):
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g).to(device)  # noqa: E731
    return MetaBatch(task_ids=torch.arange(t, device=device), context=r(t, n, obs + act + 1), obs=r(t, b, obs),
                     actions=r(t, b, act).clamp(-1, 1), rewards=r(t, b, 1), next_obs=r(t, b, obs),
                     terminals=torch.zeros(t, b, 1, device=device), extra_obs=r(extra, t, b, obs),
                     extra_actions=r(extra, t, b, act).clamp(-1, 1))


def test_trainer_step_on_device_and_snapshot_loads_on_cpu(device, tmp_path):
    hp = CSROHyperParams(latent_size=4, net_size=32, use_brac=True, alpha_init=5.0)
    trainer = CSROTrainer(2, 2, hp, device=device)
    stats = trainer.train_step(_batch(device), with_stats=True)
    assert all(torch.isfinite(v).all() and v.device.type == device.type for v in stats.values())
    for module in trainer.modules().values():
        assert all(p.device.type == device.type for p in module.parameters())
    path = atomic_torch_save({"trainer": trainer.state_dict()}, tmp_path / "agent.pth")
    state = load_snapshot(path)  # weights_only, onto the CPU
    assert all(t.device.type == "cpu" for t in _all_tensors(state))
    # and back onto the device: the optimizer state follows its parameters
    other = CSROTrainer(2, 2, hp, device=device)
    other.load_state_dict(state["trainer"])
    for opt in other.optimizers.values():
        for s in opt.state.values():
            assert all(v.device.type == device.type for v in s.values() if isinstance(v, torch.Tensor) and v.dim())
    before = [p.detach().cpu().clone() for p in other.agent.parameters()]
    other.train_step(_batch(device))
    assert any(not torch.equal(a, p.detach().cpu()) for a, p in zip(before, other.agent.parameters()))


def test_generator_on_device_writes_cpu_weights(device, tmp_path):
    from rlkit.behavior.config import compose_sac_config
    from rlkit.behavior.generate import BehaviourPolicyGenerator, GenerationJob, weights_path

    sac = compose_sac_config("train_quick", ["num_train_steps=140", "num_seed_steps=100", "eval_frequency=20",
                                             "num_eval_sample_episodes=2", "agent.hidden_dim=16",
                                             "agent.batch_size=16"])
    job = GenerationJob("point-robot", {"n_tasks": 2, "randomize_tasks": 0, "max_episode_steps": 20}, [0, 1], sac,
                        tmp_path / "data", device=str(device), progress=False)
    gen = BehaviourPolicyGenerator(job)
    gen.run()
    weights = torch.load(weights_path(job.data_dir, 1, gen.schedule[-1]), weights_only=True)
    assert all(t.device.type == "cpu" for t in _all_tensors(weights))
    state = load_snapshot(job.state_path)
    assert all(t.device.type == "cpu" for t in _all_tensors(state))


def test_evaluator_on_device(device):
    from rlkit.evaluation.protocols import PROTOCOLS, EvalSettings, evaluate
    from rlkit.torch.csro import CSROAgent

    torch.manual_seed(0)
    agent = CSROAgent(2, 2, CSROHyperParams(latent_size=4, net_size=32)).to(device).eval()
    settings = EvalSettings(max_path_length=20, num_steps_per_eval=40, num_exp_traj_eval=1, num_evals=2)

    def offline(task_ids, n):
        assert task_ids.device.type == device.type
        return torch.randn(len(task_ids), n, 5, device=device)

    results = evaluate(agent, "point-robot", {"n_tasks": 4, "max_episode_steps": 20}, [1, 3], settings,
                       offline_context=offline, seed=0, device=device)
    assert set(results) == set(PROTOCOLS)
    for res in results.values():
        assert np.isfinite(res.average_final_return()) and res.z.shape == (4, 4)
