"""The step benchmarks build their methods from the presets (rlkit/configs/algos/*.json), so what
docs/performance.md times is what a run of that preset trains: benchmarks/common.py once typed the
presets again, and its CORRO lacked normalize_transition_z."""

import json

import pytest

from benchmarks.common import STEP_CONFIGS, step_config, step_trainer_and_batches
from rlkit.config import algo_presets
from rlkit.torch.hyperparams import CSROHyperParams


@pytest.mark.parametrize("name", sorted(STEP_CONFIGS))
def test_every_step_benchmark_has_its_presets_method_keys(name):
    cfg = step_config(name)
    _, preset, _ = STEP_CONFIGS[name]
    hp = CSROHyperParams.from_config(cfg)
    for key, value in json.loads(algo_presets()[preset].read_text())["algo_params"].items():
        if hasattr(hp, key):
            assert getattr(hp, key) == value, (name, key)


def test_the_corro_benchmark_times_corros_encoder_and_overrides_reach_the_step():
    assert CSROHyperParams.from_config(step_config("point-robot CORRO")).normalize_transition_z
    trainer, batches = step_trainer_and_batches("point-robot", "cpu", fused_adam=True)
    assert trainer.hp.fused_adam and trainer.hp.reward_scale == 100.0 and not trainer.hp.use_brac
    assert batches[0].context.shape == (16, 1024, 5)
    trainer.train_step(batches[0])


def test_the_method_step_benchmark_times_every_preset_through_its_trainer_and_weights_borels_stages():
    """benchmarks/bench_method_steps builds each method from its preset and the trainer registry (no method
    typed there); a staged trainer's run average weighs its stages by their share of the run's steps."""
    from benchmarks import bench_method_steps as bench
    from rlkit.config import load_config

    for preset in algo_presets():
        shares = [share for _, _, share in bench.stages(load_config("point-robot", [f"algo_type={preset}"]))]
        assert abs(sum(shares) - 1) < 1e-12, preset
    cfg = load_config("point-robot", ["algo_type=BOReL", "algo_params.num_iterations=40",
                                      "algo_params.num_train_steps_per_itr=200", "borel.vae_train_steps=2000",
                                      "borel.policy_start_step=2000"])
    assert bench.stages(cfg) == [("VAE", 0, 0.25), ("SAC", 2000, 0.75)]
    out = bench.main(["--quick", "--methods", "CSRO,BOReL"])
    rows = {(r["method"], r["stage"]): r for r in out["rows"]}
    assert set(rows) == {("CSRO", "step"), ("BOReL", "VAE"), ("BOReL", "SAC"), ("CSRO", "run average"),
                         ("BOReL", "run average")}
    assert rows["CSRO", "step"]["vs_CSRO"] == 1 and all(r["median_ms"] > 0 for r in rows.values())
    avg = rows["BOReL", "run average"]["median_ms"]
    vae, sac = rows["BOReL", "VAE"], rows["BOReL", "SAC"]
    assert abs(avg - (vae["share"] * vae["median_ms"] + sac["share"] * sac["median_ms"])) < 1e-9
