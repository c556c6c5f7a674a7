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
