"""Representation objectives (rlkit/torch/objectives): presets pick them, losses are computed
without stepping, and a new objective plugs into the step without editing the trainer."""

import copy

import pytest
import torch

from rlkit.config import REPO_CONFIG_DIR, load_config
from rlkit.torch import objectives as objectives_pkg
from rlkit.torch.csro import CSROHyperParams, CSROTrainer
from rlkit.torch.objectives import EncodedBatch, RepresentationObjective
from tests.test_csro_step import ACT, OBS, changed, make_batch, snapshot


@pytest.mark.parametrize("preset,names", [("CSRO", ["club", "distance_metric"]),
                                          ("FOCAL", ["distance_metric"]),
                                          ("offline-PEARL", ["information_bottleneck"])])
def test_each_preset_switches_on_its_objectives(preset, names):
    cfg = load_config(REPO_CONFIG_DIR / "point-robot.json", [f"algo_type={preset}"])
    hp = CSROHyperParams.from_config(cfg)
    hp.latent_size, hp.net_size = 4, 16
    trainer = CSROTrainer(OBS, ACT, hp)
    assert [o.name for o in trainer.objectives] == names
    assert ("club" in trainer.modules()) == ("club" in names)


def _encoded(trainer, batch):
    per = trainer.agent.encoder.per_transition(batch.context)
    post = trainer.agent.encoder.posterior_from_outputs(per)
    return EncodedBatch(batch.context, per, post, batch.task_ids, trainer.hp.latent_size, trainer.agent.encoder,
                        trainer.agent.obs_dim, trainer.agent.action_dim)


def test_computing_losses_moves_nothing_and_fit_moves_only_its_model():
    torch.manual_seed(0)
    hp = CSROHyperParams(latent_size=4, net_size=16)
    tr = CSROTrainer(OBS, ACT, hp)
    batch = make_batch(hp)
    before = snapshot(tr)
    club = tr.objective("club")
    enc = _encoded(tr, batch)
    model_loss = club.model_loss(enc)
    terms = [obj.loss(enc)[0] for obj in tr.objectives]
    assert changed(before, tr) == set()
    # the model loss is the weighted Gaussian NLL of the detached z_t, written out
    mu, var = club.net.from_context(batch.context)
    nll = ((enc.z_t.detach() - mu) ** 2 / (2 * var) + 0.5 * torch.log(var)).mean()
    torch.testing.assert_close(model_loss, hp.club_model_loss_weight * nll)
    # the distance metric, written out pair by pair (docs/method.md §5.6)
    z, pos, neg = enc.posterior.z, [], []
    for i in range(len(z)):
        for j in range(i + 1, len(z)):
            d = ((z[i] - z[j]) ** 2).mean()
            (pos if batch.task_ids[i] == batch.task_ids[j] else neg).append(d)
    expected = sum(1 / (d + 0.1) for d in neg) / (len(neg) + 1e-3)
    torch.testing.assert_close(terms[1], hp.z_loss_weight * expected)
    club.fit(enc)
    assert changed(before, tr) == {"club"}


class _SpreadObjective(RepresentationObjective):
    """A toy objective for the test: push the task embeddings' mean towards 1, with a counter step."""

    name = "spread"
    statistics = ("Spread fits", "Spread Loss")
    calls: list = []

    @classmethod
    def enabled(cls, hp):
        return True

    def fit(self, batch):
        self.calls.append("fit")
        return {"Spread fits": torch.tensor(1.0)}

    def loss(self, batch):
        self.calls.append("loss")
        term = ((batch.posterior.z.mean() - 1.0) ** 2)
        return term, {"Spread Loss": term.detach()}


def test_a_new_objective_plugs_in_through_the_registry(monkeypatch):
    monkeypatch.setattr(objectives_pkg, "OBJECTIVES", (_SpreadObjective,))
    _SpreadObjective.calls.clear()
    torch.manual_seed(0)
    hp = CSROHyperParams(latent_size=4, net_size=16, use_club=False, use_FOCAL_cl=False)
    tr = CSROTrainer(OBS, ACT, hp)
    enc_before = copy.deepcopy(tr.agent.encoder.state_dict())
    stats = tr.train_step(make_batch(hp), with_stats=True)
    assert _SpreadObjective.calls == ["fit", "loss"]
    assert "Spread Loss" in stats and "Spread fits" in stats
    assert any(not torch.equal(v, tr.agent.encoder.state_dict()[k]) for k, v in enc_before.items())
    # its columns enter every run's progress.csv header from the same registry line, and nothing else's
    from rlkit.launchers.progress_columns import objective_statistics, reference_columns

    assert objective_statistics(hp) == ["Spread fits", "Spread Loss"]
    header = reference_columns(4, {}, objective_statistics(hp))
    assert header.index("Spread Loss") < header.index("QF Loss") and "Club Loss" not in header


def test_the_header_lists_the_enabled_objectives_statistics_from_the_registry():
    """The columns were typed again in progress_columns.py (from use_club / use_FOCAL_cl), and offline
    PEARL's KL Divergence only appeared by widening the table after its first row."""
    from rlkit.launchers.progress_columns import objective_statistics

    for preset, want in (("CSRO", ["Club model Loss", "Club Loss", "Z Loss"]), ("FOCAL", ["Z Loss"]),
                         ("offline-PEARL", ["KL Divergence"])):
        cfg = load_config(REPO_CONFIG_DIR / "point-robot.json", [f"algo_type={preset}"])
        assert objective_statistics(CSROHyperParams.from_config(cfg)) == want, preset


def test_unknown_setting_is_refused_with_the_closest_key():
    with pytest.raises(ValueError, match="did you mean 'club_loss_weight'"):
        CSROHyperParams(club_los_weight=3.0)
