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
                                          ("offline-PEARL", ["information_bottleneck"]),
                                          ("CORRO", ["corro"]),
                                          ("UNICORN-SS", ["distance_metric", "unicorn_decoder"]),
                                          ("UNICORN-SUP", ["unicorn_classifier"])])
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
    from rlkit.trainers.csro import objective_statistics, training_columns

    assert objective_statistics(hp) == ["Spread fits", "Spread Loss"]
    header = training_columns(4, {}, objective_statistics(hp))
    assert header.index("Spread Loss") < header.index("QF Loss") and "Club Loss" not in header


def test_the_header_lists_the_enabled_objectives_statistics_from_the_registry():
    """The columns were typed again in progress_columns.py (from use_club / use_FOCAL_cl), and offline
    PEARL's KL Divergence only appeared by widening the table after its first row."""
    from rlkit.trainers.csro import objective_statistics

    for preset, want in (("CSRO", ["Club model Loss", "Club Loss", "Z Loss"]), ("FOCAL", ["Z Loss"]),
                         ("offline-PEARL", ["KL Divergence"]), ("CORRO", ["CORRO CVAE Loss", "CORRO InfoNCE Loss"]),
                         ("UNICORN-SS", ["Z Loss", "Reconstruction Loss"])):
        cfg = load_config(REPO_CONFIG_DIR / "point-robot.json", [f"algo_type={preset}"])
        assert objective_statistics(CSROHyperParams.from_config(cfg)) == want, preset


def test_unknown_setting_is_refused_with_the_closest_key():
    with pytest.raises(ValueError, match="did you mean 'club_loss_weight'"):
        CSROHyperParams(club_los_weight=3.0)


# ---------------------------------------------------------------- CORRO (rlkit/torch/objectives/corro.py)
def test_info_nce_equals_the_cross_entropy_written_out_query_by_query():
    from rlkit.torch.objectives.corro import info_nce

    g = torch.Generator().manual_seed(1)
    q, k, neg = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), torch.randn(5, 4, 3, generator=g)
    total = 0.0
    for b in range(5):
        cands = [k[b]] + [neg[b, j] for j in range(4)]
        logits = torch.stack([torch.dot(q[b], c) / (q[b].norm() * c.norm()) / 0.1 for c in cands])
        total += -(logits[0] - torch.logsumexp(logits, 0))
    torch.testing.assert_close(info_nce(q, k, neg, 0.1), total / 5)
    # a query that matches its key and opposes its negatives costs almost nothing; the reverse, a lot
    assert info_nce(q, q, -q[:, None, :].expand(-1, 4, -1), 0.1) < 1e-6
    assert info_nce(q, -q, q[:, None, :].expand(-1, 4, -1), 0.1) > 10


def test_cvae_loss_is_the_mse_of_each_outcome_column_plus_the_weighted_kl(monkeypatch):
    tr, hp = _trainer("CORRO")
    corro = tr.objective("corro")
    enc = _encoded(tr, make_batch(hp))
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)  # h = the posterior mean: no noise to match
    x, y = enc.context[..., :OBS + ACT].reshape(-1, OBS + ACT), enc.context[..., OBS + ACT:].reshape(-1, 1)
    mean, logvar = corro.cvae.encoder(torch.cat([x, y], -1)).chunk(2, -1)
    y_hat = corro.cvae.decoder(torch.cat([x, mean], -1))
    recon = sum(((y_hat[:, j] - y[:, j]) ** 2).mean() for j in range(y.shape[1]))
    kl = torch.stack([0.5 * sum(mean[i, d] ** 2 + logvar[i, d].exp() - 1 - logvar[i, d]
                                for d in range(mean.shape[1])) for i in range(len(x))]).mean()
    torch.testing.assert_close(corro.cvae_loss(enc), recon + hp.corro_cvae_kl_weight * kl)


def test_corro_negatives_keep_the_querys_state_and_action_and_only_infonce_reaches_the_encoder():
    tr, hp = _trainer("CORRO")
    corro = tr.objective("corro")
    enc = _encoded(tr, make_batch(hp))
    task, query, _ = corro.draw(enc)
    rows = corro.negatives(enc, task, query)
    assert rows.shape == (hp.corro_batch_size, hp.corro_negatives, enc.context.shape[-1])
    x_query = enc.context[task, query, :OBS + ACT]
    assert torch.equal(rows[..., :OBS + ACT], x_query[:, None, :].expand_as(rows[..., :OBS + ACT]))
    assert rows[..., OBS + ACT:].std() > 0  # the outcomes are drawn, not copied
    before = snapshot(tr)
    term, _ = corro.loss(enc)
    term.backward()
    grads = {name for name, m in tr.modules().items() for p in m.parameters() if p.grad is not None}
    assert grads == {"agent"}
    assert all(p.grad is None for p in tr.agent.policy.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.agent.encoder.parameters())
    assert changed(before, tr) == set()  # computing the term steps nothing
    corro.fit(enc)
    assert changed(before, tr) == {"corro"}  # the CVAE's own step moves only the CVAE


# ---------------------------------------------------------------- UNICORN-SS (rlkit/torch/objectives/unicorn.py)
def test_decoder_nll_equals_the_gaussian_likelihood_written_out_with_soft_bounded_log_variance():
    from rlkit.torch.objectives.unicorn import GaussianMLP

    torch.manual_seed(0)
    dec = GaussianMLP(4, 2, hidden=8)
    x, y = torch.randn(6, 4), torch.randn(6, 2)
    mean, logvar = dec(x)
    assert (logvar < dec.max_logvar).all() and (logvar > dec.min_logvar).all()
    terms = [(y[i, j] - mean[i, j]) ** 2 / logvar[i, j].exp() + logvar[i, j] for i in range(6) for j in range(2)]
    penalty = 0.01 * (dec.max_logvar.sum() - dec.min_logvar.sum())
    torch.testing.assert_close(dec.nll(x, y), sum(terms) / len(terms) + penalty)


def test_unicorn_decoder_reads_each_tasks_z_and_trains_jointly_with_the_encoder():
    tr, hp = _trainer("UNICORN-SS", use_next_obs_in_context=True)
    dec = tr.objective("unicorn_decoder")
    assert set(dec.decoders) == {"reward", "dynamics"}  # s' in the context: the dynamics head too
    batch = make_batch(hp)
    enc = _encoded(tr, batch)
    term, _ = dec.loss(enc)
    # written out: every transition of task t is decoded from z_t; targets r and s' - s
    o, a = OBS, ACT
    c = enc.context
    want = 0.0
    for name, target in (("reward", c[..., o + a:o + a + 1]), ("dynamics", c[..., o + a + 1:] - c[..., :o])):
        rows = [dec.decoders[name].nll(torch.cat([enc.posterior.z[t].expand(c.shape[1], -1), c[t, :, :o + a]], -1),
                                       target[t]) for t in range(c.shape[0])]
        want = want + sum(rows) / len(rows)
    torch.testing.assert_close(term, hp.unicorn_recon_weight * want)
    term.backward()
    grads = {name for name, m in tr.modules().items() for p in m.parameters() if p.grad is not None}
    assert grads == {"agent", "unicorn_decoder"}
    assert all(p.grad is None for p in tr.agent.policy.parameters())
    # one training step moves the decoder with the encoder (its optimizer is stepped jointly)
    tr2, hp2 = _trainer("UNICORN-SS", use_next_obs_in_context=True)
    before = snapshot(tr2)
    tr2.train_step(make_batch(hp2))
    assert {"encoder", "unicorn_decoder"} <= changed(before, tr2)


# ---------------------------------------------------------------- UNICORN-SUP (objectives/unicorn_classifier.py)
def test_unicorn_classifier_is_the_cross_entropy_of_each_transitions_task_label_written_out():
    tr, hp = _trainer("UNICORN-SUP")
    assert hp.unicorn_classifier_classes == 40  # 0 in the config: one class per point-robot task id
    clf = tr.objective("unicorn_classifier")
    batch = make_batch(hp)
    batch.task_ids = torch.tensor([3, 17, 3, 39])[: batch.task_ids.shape[0]]
    enc = _encoded(tr, batch)
    term, stats = clf.loss(enc)
    z_t = enc.z_t
    rows, hits = [], 0
    for t in range(z_t.shape[0]):
        for n in range(z_t.shape[1]):
            logits = clf.classifier(z_t[t, n])
            label = int(batch.task_ids[t])
            rows.append(torch.logsumexp(logits, 0) - logits[label])  # -log softmax(logits)[label]
            hits += int(logits.argmax()) == label
    torch.testing.assert_close(term, hp.unicorn_classifier_weight * sum(rows) / len(rows))
    torch.testing.assert_close(stats["Classifier Accuracy"], torch.tensor(hits / len(rows), dtype=term.dtype))
    term.backward()  # the term reaches the encoder and the classifier, nothing else
    grads = {name for name, m in tr.modules().items() for p in m.parameters() if p.grad is not None}
    assert grads == {"agent", "unicorn_classifier"}
    assert all(p.grad is None for p in tr.agent.policy.parameters())
    tr2, hp2 = _trainer("UNICORN-SUP")  # a step moves the classifier with the encoder (stepped jointly)
    before = snapshot(tr2)
    tr2.train_step(make_batch(hp2))
    assert {"encoder", "unicorn_classifier"} <= changed(before, tr2)


def test_unicorn_classifier_refuses_a_task_id_without_a_class():
    tr, hp = _trainer("UNICORN-SUP", unicorn_classifier_classes=2)
    with pytest.raises(ValueError, match="task id 3 has no class among unicorn_classifier_classes=2"):
        tr.objective("unicorn_classifier").loss(_encoded(tr, make_batch(hp)))


def _trainer(preset, **kw):
    cfg = load_config(REPO_CONFIG_DIR / "point-robot.json", [f"algo_type={preset}"])
    hp = CSROHyperParams.from_config(cfg)
    hp.latent_size, hp.net_size = 4, 16
    for k, v in kw.items():
        setattr(hp, k, v)
    torch.manual_seed(0)
    return CSROTrainer(OBS, ACT, hp), hp


def test_corro_presets_normalise_each_transitions_embedding_and_z_keeps_a_readable_scale():
    """CORRO's encoder outputs unit vectors (its normalize_z): InfoNCE cannot see their length, so without
    it the raw outputs drift to ~0.01 and the policy reads an almost constant z (measured on point-robot)."""
    for preset in ("CORRO", "CORRO-relabel"):
        tr, hp = _trainer(preset)
        assert hp.normalize_transition_z
        per = tr.agent.encoder.per_transition(make_batch(hp).context)
        torch.testing.assert_close(per.norm(dim=-1), torch.ones(per.shape[:-1]))
    tr, hp = _trainer("CSRO")
    per = tr.agent.encoder.per_transition(make_batch(hp).context)
    assert not torch.allclose(per.norm(dim=-1), torch.ones(per.shape[:-1]))  # other presets: raw tanh outputs
    with pytest.raises(ValueError, match="deterministic encoder only"):
        from rlkit.torch.networks import ContextEncoder

        ContextEncoder(OBS, ACT, 4, use_information_bottleneck=True, normalize_transition_z=True)


class _PluginPull(RepresentationObjective):
    """An objective from user code: pull every task embedding towards the origin, weight plugin_pull_weight."""

    name = "plugin_pull"
    statistics = ("Pull Loss",)
    switch = "use_plugin_pull"
    settings = ("plugin_pull_weight",)

    def loss(self, batch):
        term = self.hp.plugin_pull_weight * (batch.posterior.z ** 2).mean()
        return term, {"Pull Loss": term.detach()}


@pytest.fixture
def plugin_objective():
    from rlkit.torch.objectives import register_objective, unregister_objective

    register_objective(_PluginPull, {"use_plugin_pull": False, "plugin_pull_weight": 0.5})
    yield _PluginPull
    unregister_objective(_PluginPull)


def test_an_objective_registered_from_user_code_brings_its_keys_and_trains_through_the_cli(plugin_objective,
                                                                                            tiny_csro_run, tmp_path):
    """register_objective adds the objective after the shipped ones and its algo_params keys to every
    config (off by default); a run turns it on by an override and logs its column; nothing in rlkit/ is
    edited. Unregistered, its keys are unknown again."""
    import pandas as pd

    from rlkit.cli import meta_train
    from rlkit.config import ConfigError
    from rlkit.torch.objectives import OBJECTIVES, SHIPPED_OBJECTIVES, register_objective, unregister_objective

    assert OBJECTIVES[-1] is _PluginPull and _PluginPull not in SHIPPED_OBJECTIVES
    off = load_config(REPO_CONFIG_DIR / "point-robot.json")
    assert off["algo_params"]["use_plugin_pull"] is False  # present everywhere, off
    cfg = load_config(REPO_CONFIG_DIR / "point-robot.json", ["algo_params.use_plugin_pull=true"])
    hp = CSROHyperParams.from_config(cfg)
    hp.latent_size, hp.net_size = 4, 16
    tr = CSROTrainer(OBS, ACT, hp)
    assert [o.name for o in tr.objectives][-1] == "plugin_pull"
    stats = tr.train_step(make_batch(hp), with_stats=True)
    assert "Pull Loss" in stats
    with pytest.raises(ValueError, match="must default to false"):
        register_objective(type("Other", (_PluginPull,), {"name": "other"}), {"use_plugin_pull": True,
                                                                               "plugin_pull_weight": 1.0})
    with pytest.raises(ValueError, match="built-in setting"):
        register_objective(type("Club2", (_PluginPull,), {"name": "club2", "switch": "use_club"}),
                           {"use_club": False, "plugin_pull_weight": 0.5})
    out = tmp_path / "out"
    assert meta_train.main([str(tiny_csro_run.config), "--seed", "0", "--exp_name", "pull",
                            f"algo_params.data_dir={tiny_csro_run.data_dir}", f"util_params.base_log_dir={out}",
                            "algo_params.train_epoch=[100,200,100]", "algo_params.eval_epoch=[100,200,100]",
                            "algo_params.n_trj=2", "algo_params.num_iterations=1", "algo_params.num_train_steps_per_itr=2",
                            "algo_params.embedding_batch_size=16", "algo_params.batch_size=16",
                            "algo_params.num_steps_per_eval=40", "algo_params.use_plugin_pull=true"]) == 0
    progress = pd.read_csv(out / "point-robot" / "pull" / "seed0" / "progress.csv")
    assert "Pull Loss" in progress.columns and progress["Pull Loss"].notna().all()
    unregister_objective(_PluginPull)
    with pytest.raises(ConfigError, match="unknown config key 'algo_params.use_plugin_pull'"):
        load_config(REPO_CONFIG_DIR / "point-robot.json", ["algo_params.use_plugin_pull=true"])
    register_objective(_PluginPull, {"use_plugin_pull": False, "plugin_pull_weight": 0.5})  # for the fixture
