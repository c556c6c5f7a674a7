"""Config loading: the shipped JSONs, deep-merge, overrides and the one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlkit.config import (
    ConfigError,
    algo_presets,
    apply_overrides,
    epoch_range,
    load_config,
    load_defaults,
    parse_value,
    save_config,
)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SHIPPED = sorted(CONFIGS.glob("*.json"))
# The authors' six envs: file name here -> values from their JSON (spot checks).
REFERENCE_ENVS = {
    "point-robot": dict(num_iterations=65, embedding_batch_size=1024, discount=0.9, reward_scale=100.0,
                        use_brac=False, club_loss_weight=25.0, train_epoch=[2200, 5000, 200]),
    "cheetah-vel": dict(num_iterations=105, embedding_batch_size=100, alpha_init=50.0, club_loss_weight=10.0,
                        use_brac=True, train_epoch=[100000, 1000000, 50000]),
    "ant-goal": dict(meta_batch=10, num_train_steps_per_itr=2000, num_steps_per_eval=800, club_loss_weight=50.0),
    "humanoid-dir": dict(embedding_batch_size=256, alpha_init=500.0, train_epoch=[50000, 1000000, 50000]),
    "hopper-rand-params": dict(use_next_obs_in_context=True, club_use_sa=True, alpha_max=1e4),
    "walker-rand-params": dict(use_next_obs_in_context=True, club_use_sa=True, alpha_max=1e4),
}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def minimal(tmp_path) -> Path:
    """A small valid config file (the defaults come from the package)."""
    return write_json(tmp_path / "mini.json", {
        "env_name": "point-robot",
        "n_train_tasks": 3,
        "n_eval_tasks": 1,
        "env_params": {"n_tasks": 4},
        "algo_params": {"meta_batch": 2},
    })


# ---- shipped files ---------------------------------------------------------------------


def test_every_env_has_a_config():
    names = {p.stem for p in SHIPPED}
    for env in [*REFERENCE_ENVS, "sparse-point-robot", "point-robot-wind", "cheetah-dir", "ant-dir"]:
        assert env in names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_loads_and_validates(path):
    cfg = load_config(path)
    raw = json.loads(path.read_text())
    assert cfg["env_name"] == raw["env_name"]
    assert cfg["n_train_tasks"] + cfg["n_eval_tasks"] == cfg["env_params"]["n_tasks"]
    # booleans written 0/1 in the JSON come back as real booleans
    assert isinstance(cfg["algo_params"]["use_brac"], bool)
    assert isinstance(cfg["env_params"]["randomize_tasks"], bool)
    assert isinstance(cfg["util_params"]["use_gpu"], bool)


@pytest.mark.parametrize("env", sorted(REFERENCE_ENVS))
def test_reference_values(env):
    cfg = load_config(CONFIGS / f"{env}.json")
    assert cfg["env_params"]["n_tasks"] == 40
    assert (cfg["n_train_tasks"], cfg["n_eval_tasks"]) == (30, 10)
    assert cfg["latent_size"] == (40 if env == "walker-rand-params" else 20)
    assert cfg["interpolation"] is True and cfg["randomize_tasks"] is False
    assert cfg["algo_params"]["use_club"] is True and cfg["algo_params"]["use_FOCAL_cl"] is True
    for key, value in REFERENCE_ENVS[env].items():
        assert cfg["algo_params"][key] == value, key
        assert type(cfg["algo_params"][key]) is type(value), key


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_env_params_build_the_env(path):
    """Every env_params key must be one the env constructor accepts (configs and envs drift apart otherwise)."""
    envs = pytest.importorskip("rlkit.envs")
    cfg = load_config(path)
    env = envs.make_env(cfg["env_name"], **cfg["env_params"])
    assert len(env.get_all_task_idx()) == cfg["env_params"]["n_tasks"]


def test_focal_ablation_only_drops_club():
    for env in ("point-robot", "cheetah-vel"):
        full, ablation = load_config(CONFIGS / f"{env}.json"), load_config(CONFIGS / f"{env}-focal.json")
        assert ablation["algo_params"]["use_club"] is False
        assert ablation["util_params"]["exp_name"] != full["util_params"]["exp_name"]
        assert ablation["algo_type"] == "FOCAL"
        ablation["algo_params"]["use_club"] = True
        ablation["util_params"]["exp_name"] = full["util_params"]["exp_name"]
        ablation["algo_type"] = full["algo_type"]
        assert ablation == full


def test_defaults_keep_reference_values():
    defaults, optional = load_defaults()
    algo = defaults["algo_params"]
    assert defaults["env_name"] == "cheetah-dir"
    assert defaults["env_params"] == dict(n_tasks=2, randomize_tasks=True, max_episode_steps=200)
    assert (algo["meta_batch"], algo["batch_size"], algo["num_iterations"]) == (16, 256, 500)
    assert (algo["alpha_init"], algo["alpha_max"], algo["alpha_lr"], algo["c_iter"]) == (500, 2000, 1, 3)
    assert algo["train_epoch"] == 6e5 and algo["divergence_name"] == "kl"
    assert defaults["util_params"]["debug"] is True and defaults["algo_type"] == "CSRO"
    assert "goal_radius" in optional["env_params"] and "goal_radius" not in defaults["env_params"]


# ---- merging and overrides -------------------------------------------------------------


def test_deep_merge_keeps_defaults_for_absent_keys(minimal):
    cfg = load_config(minimal)
    defaults, _ = load_defaults()
    assert cfg["env_params"]["n_tasks"] == 4
    assert cfg["env_params"]["max_episode_steps"] == defaults["env_params"]["max_episode_steps"]
    assert cfg["algo_params"]["meta_batch"] == 2
    assert cfg["algo_params"]["batch_size"] == defaults["algo_params"]["batch_size"]
    assert cfg["util_params"] == defaults["util_params"]
    assert "goal_radius" not in cfg["env_params"]


def test_overrides_set_value_and_type(minimal):
    cfg = load_config(minimal, [
        "algo_params.num_iterations=5",
        "algo_params.discount=0.5",
        "algo_params.reward_scale=3",  # int for a float key -> float
        "algo_params.use_brac=0",  # 0/1 for a bool key -> bool
        "algo_params.use_club=false",
        "algo_params.train_epoch=[0, 10, 5]",
        "algo_params.alpha_init=1e3",
        "algo_params.data_dir=./somewhere/else",
        "util_params.exp_name=2024",  # a string key keeps digits as text
        "env_params.goal_radius=0.1",  # optional key
        "path_to_weights=null",
    ])
    algo = cfg["algo_params"]
    assert algo["num_iterations"] == 5 and type(algo["num_iterations"]) is int
    assert algo["discount"] == 0.5
    assert algo["reward_scale"] == 3.0 and type(algo["reward_scale"]) is float
    assert algo["use_brac"] is False and algo["use_club"] is False
    assert algo["train_epoch"] == [0, 10, 5]
    assert algo["alpha_init"] == 1000.0
    assert algo["data_dir"] == "./somewhere/else"
    assert cfg["util_params"]["exp_name"] == "2024"
    assert cfg["env_params"]["goal_radius"] == 0.1
    assert cfg["path_to_weights"] is None
    # untouched siblings keep their values
    assert algo["batch_size"] == 256


def test_override_whole_section_merges(minimal):
    cfg = load_config(minimal, ['env_params={"max_episode_steps": 20}'])
    assert cfg["env_params"] == dict(n_tasks=4, randomize_tasks=True, max_episode_steps=20)


def test_parse_value():
    assert parse_value("5") == 5 and parse_value("1e-3") == 1e-3 and parse_value(".5") == 0.5
    assert parse_value("true") is True and parse_value("False") is False and parse_value("None") is None
    assert parse_value("[1, 2, 3]") == [1, 2, 3] and parse_value("[a, b]") == ["a", "b"]
    assert parse_value("kl") == "kl" and parse_value('"7"') == "7"


def test_apply_overrides_revalidates(minimal):
    cfg = load_config(minimal)
    with pytest.raises(ConfigError, match="n_tasks"):
        apply_overrides(cfg, ["n_eval_tasks=5"])


def test_epoch_range():
    assert list(epoch_range([2200, 5000, 200]))[:2] == [2200, 2400] and len(epoch_range([2200, 5000, 200])) == 14
    assert list(epoch_range(6e5)) == [600000]


# ---- errors ------------------------------------------------------------------------------


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


def test_misspelled_top_level_key_in_json(tmp_path, minimal):
    data = json.loads(minimal.read_text())
    data["laten_size"] = 8
    bad = write_json(tmp_path / "bad.json", data)
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    msg = one_line(exc)
    assert "unknown config key 'laten_size' (did you mean 'latent_size'?)" in msg
    assert "bad.json" in msg


def test_misspelled_nested_key_in_json(tmp_path, minimal):
    data = json.loads(minimal.read_text())
    data["algo_params"]["num_iteration"] = 5
    bad = write_json(tmp_path / "bad.json", data)
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert "unknown config key 'algo_params.num_iteration' (did you mean 'algo_params.num_iterations'?)" in one_line(exc)


def test_misspelled_keys_in_overrides(minimal):
    with pytest.raises(ConfigError) as exc:
        load_config(minimal, ["algo_params.num_iteration=5"])
    msg = one_line(exc)
    assert "unknown config key 'algo_params.num_iteration' (did you mean 'algo_params.num_iterations'?)" in msg
    assert "override" in msg
    with pytest.raises(ConfigError, match=r"unknown config key 'net_sise' \(did you mean 'net_size'\?\)"):
        load_config(minimal, ["net_sise=64"])
    # a key placed in the wrong section points to where it lives
    with pytest.raises(ConfigError, match=r"did you mean 'algo_params.meta_batch'"):
        load_config(minimal, ["meta_batch=4"])
    with pytest.raises(ConfigError, match=r"unknown config key 'algo_params.meta_batch.x'"):
        load_config(minimal, ["algo_params.meta_batch.x=4"])


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("algo_params.use_brac=2", "expected a boolean"),
        ("algo_params.num_iterations=2.5", "expected an integer"),
        ("algo_params.num_iterations=true", "expected an integer"),
        ("algo_params.discount=fast", "expected a number"),
        ("algo_params.divergence_name=3", None),  # digits kept as the string "3", then rejected by value
        ("algo_params.train_epoch=[1, 2]", "list of 3 integers"),
        ("env_params=4", "must be a section"),
        ('algo_params.batch_size={"a": 1}', "single value"),
        ("latent_size=[0, x]", "expected an integer"),
    ],
)
def test_wrong_types(minimal, override, fragment):
    with pytest.raises(ConfigError) as exc:
        load_config(minimal, [override])
    msg = one_line(exc)
    if fragment:
        assert fragment in msg
        assert override.split("=")[0] in msg


def test_wrong_type_in_json_names_key_and_file(tmp_path, minimal):
    data = json.loads(minimal.read_text())
    data["algo_params"]["batch_size"] = "big"
    bad = write_json(tmp_path / "bad.json", data)
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    msg = one_line(exc)
    assert "'algo_params.batch_size'" in msg and "expected an integer" in msg and "bad.json" in msg


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["n_train_tasks=5"], "n_train_tasks + n_eval_tasks must equal env_params.n_tasks: 5 + 1 != 4"),
        (["algo_params.meta_batch=4"], "meta_batch (4) exceeds n_train_tasks (3)"),
        (["algo_params.divergence_name=mmd"], "divergence_name must be one of kl, w"),
        (["algo_params.corro_negatives_from=gt"], "corro_negatives_from must be one of cvae, relabel"),
        (["algo_params.normalize_transition_z=true", "algo_params.use_information_bottleneck=true"],
         "cannot be combined with use_information_bottleneck"),
        (["algo_params.corro_temperature=0.0"], "corro_temperature must be positive"),
        (["algo_params.unicorn_recon_weight=-1.0"], "unicorn_recon_weight must not be negative"),
        (["algo_params.batch_size=0"], "algo_params.batch_size must be at least 1"),
        (["algo_params.embedding_batch_size=-3"], "embedding_batch_size must be at least 1"),
        (["algo_params.train_epoch=[5000, 2200, 200]"], "train_epoch selects no checkpoint"),
        (["algo_params.eval_epoch=[0, 10, 0]"], "eval_epoch step must be positive"),
        (["algo_params.num_iterations=-1"], "must not be negative"),
        (["oops"], "must look like KEY=VALUE"),
    ],
)
def test_semantic_errors(minimal, overrides, fragment):
    with pytest.raises(ConfigError) as exc:
        load_config(minimal, overrides)
    assert fragment in one_line(exc)


def test_meta_batch_may_exceed_train_tasks_with_replacement(minimal):
    cfg = load_config(minimal, ["algo_params.meta_batch=16", "algo_params.mb_replace=1"])
    assert cfg["algo_params"]["meta_batch"] == 16


def test_n_tasks_mismatch_in_json(tmp_path, minimal):
    data = json.loads(minimal.read_text())
    data["env_params"]["n_tasks"] = 40
    with pytest.raises(ConfigError, match=r"3 \+ 1 != 40"):
        load_config(write_json(tmp_path / "bad.json", data))


def test_malformed_json_names_file_and_position(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{\n  "env_name": "point-robot",\n  "latent_size": 20,\n}\n')
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    msg = one_line(exc)
    assert str(bad) in msg and "line 4" in msg and "column" in msg


def test_duplicate_key_in_json(tmp_path):
    bad = tmp_path / "dup.json"
    bad.write_text('{"env_name": "point-robot", "algo_params": {"meta_batch": 2, "meta_batch": 4}}')
    with pytest.raises(ConfigError, match=r"dup\.json.*sets key 'meta_batch' twice"):
        load_config(bad)


def test_missing_and_non_object_json(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.json.*not found"):
        load_config(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match=r"list\.json.*must hold a JSON object"):
        load_config(write_json(tmp_path / "list.json", [1, 2]))


# ---- saving ------------------------------------------------------------------------------


def test_save_config_roundtrip_and_atomic(tmp_path):
    cfg = load_config(CONFIGS / "point-robot.json")
    out = save_config(cfg, tmp_path / "run" / "variant.json")
    assert json.loads(out.read_text()) == cfg
    assert [p.name for p in out.parent.iterdir()] == ["variant.json"]  # no temp file left


def test_cli_prints_error_and_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rlkit.config", str(CONFIGS / "point-robot.json"), "algo_params.num_iteration=5"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO)}, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown config key 'algo_params.num_iteration'")
    assert len(proc.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- algorithm presets (configs/algos/)


def test_algo_presets_switch_the_representation_losses():
    csro = load_config(REPO / "configs" / "point-robot.json")
    focal = load_config(REPO / "configs" / "point-robot.json", ["algo_type=FOCAL"])
    pearl = load_config(REPO / "configs" / "point-robot.json", ["algo_type=offline-PEARL"])
    assert (csro["algo_params"]["use_club"], csro["algo_params"]["use_FOCAL_cl"]) == (True, True)
    assert (focal["algo_params"]["use_club"], focal["algo_params"]["use_FOCAL_cl"]) == (False, True)
    a = pearl["algo_params"]
    assert (a["use_club"], a["use_FOCAL_cl"], a["use_information_bottleneck"], a["allow_backward_z"]) == \
        (False, False, True, True)
    # everything that is not the method stays the env's
    for key in ("discount", "reward_scale", "embedding_batch_size", "num_iterations"):
        assert focal["algo_params"][key] == pearl["algo_params"][key] == csro["algo_params"][key]


def test_focal_config_file_is_the_focal_preset():
    via_file = load_config(REPO / "configs" / "point-robot-focal.json")
    via_preset = load_config(REPO / "configs" / "point-robot.json", ["algo_type=FOCAL", "util_params.exp_name=FOCAL"])
    assert via_file == via_preset


def test_the_run_name_follows_algo_type_unless_it_was_chosen(tmp_path):
    """Was: algo_type=CORRO without --exp_name wrote into output/ENV/CSRO/seedN (the env JSONs set exp_name
    CSRO), and plots labelled it CSRO. A method's name as exp_name is a label, not a choice: it follows the
    method run. A name given on the command line, or any other name in a JSON, is kept."""
    from rlkit.launchers.meta_train import run_directory

    pr = CONFIGS / "point-robot.json"
    name = lambda *a, **k: load_config(*a, **k)["util_params"]["exp_name"]  # noqa: E731
    assert name(pr) == "CSRO" and name(CONFIGS / "point-robot-focal.json") == "FOCAL"
    for method in algo_presets():
        assert name(pr, [f"algo_type={method}"]) == method
    assert name(CONFIGS / "point-robot-focal.json", ["algo_type=CORRO"]) == "CORRO"
    cfg = load_config(pr, ["algo_type=UNICORN-SS"])
    assert run_directory(cfg, 3) == Path(cfg["util_params"]["base_log_dir"]) / "point-robot" / "UNICORN-SS" / "seed3"
    # chosen on the command line (--exp_name is this override): kept, even a method's name
    assert name(pr, ["algo_type=CORRO", "util_params.exp_name=CSRO"]) == "CSRO"
    assert name(pr, ["algo_type=CORRO", "util_params.exp_name=mine"]) == "mine"
    # the user's own JSON: a name of their own is kept; a copied env JSON whose algo_type was edited while
    # its exp_name still names the old method follows the method; no exp_name at all, too
    own = json.loads(pr.read_text())
    for written, algo_type, expected in (("ablation-1", "CORRO", "ablation-1"), ("CSRO", "CORRO", "CORRO"),
                                         (None, "FOCAL", "FOCAL")):
        mine = json.loads(json.dumps(own))
        mine["algo_type"] = algo_type
        if written is None:
            del mine["util_params"]["exp_name"]
        else:
            mine["util_params"]["exp_name"] = written
        path = tmp_path / f"{algo_type}-{written}.json"
        path.write_text(json.dumps(mine))
        assert name(path) == expected, (written, algo_type)


def test_command_line_overrides_win_over_the_preset():
    cfg = load_config(REPO / "configs" / "point-robot.json", ["algo_params.use_club=true", "algo_type=FOCAL"])
    assert cfg["algo_type"] == "FOCAL" and cfg["algo_params"]["use_club"] is True


def test_unknown_algo_type_names_the_closest_preset():
    with pytest.raises(ConfigError, match=r"unknown algo_type 'FOCL' \(did you mean 'FOCAL'\?\)"):
        load_config(REPO / "configs" / "point-robot.json", ["algo_type=FOCL"])


@pytest.mark.parametrize("override,message", [
    ("algo_params.recurrent=true", "recurrent context encoder is not implemented"),
    ("algo_params.save_replay_buffer=true", "snapshots hold networks"),
    ("util_params.docker=true", "docker is not supported"),
])
def test_keys_that_cannot_do_what_they_say_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS / "point-robot.json", [override])


def test_auto_selection_is_accepted_where_a_dataset_can_answer():
    cfg = load_config(CONFIGS / "point-robot.json",
                      ["algo_params.train_epoch=auto", "algo_params.eval_epoch=auto", "algo_params.n_trj=auto"])
    assert cfg["algo_params"]["train_epoch"] == "auto" and cfg["algo_params"]["n_trj"] == "auto"
    with pytest.raises(ConfigError, match="auto"):
        load_config(CONFIGS / "point-robot.json", ["algo_params.n_trj=many"])


def test_compute_dtype_is_float32_unless_float64_is_asked_for():
    assert load_config(CONFIGS / "point-robot.json")["util_params"]["dtype"] == "float32"
    assert load_config(CONFIGS / "point-robot.json", ["util_params.dtype=float64"])["util_params"]["dtype"] == "float64"
    with pytest.raises(ConfigError, match=r"util_params.dtype must be one of float32, float64, got 'float16'"):
        load_config(CONFIGS / "point-robot.json", ["util_params.dtype=float16"])


# --------------------------------------------------------------------------------------
# issue 19: the unknown env first, safe run names, seeds in range, sizes with a bound


def test_an_unknown_env_is_reported_before_the_task_counts_that_follow_from_it(tmp_path):
    from rlkit.launchers.meta_train import check_env_name

    path = write_json(tmp_path / "x.json", {"env_name": "no-such-env"})
    with pytest.raises(ConfigError, match="n_train_tasks"):
        load_config(path)  # without the registry's check: the first check across keys speaks
    with pytest.raises(ConfigError) as err:
        load_config(path, check_env=check_env_name)
    text = str(err.value)
    assert text.startswith("unknown env_name 'no-such-env' (the closest is ")
    assert "known envs: " in text and "point-robot" in text and "cheetah-vel" in text and "n_train" not in text
    # an override that names the env is checked too, and a close name is offered
    with pytest.raises(ConfigError, match="the closest is 'point-robot'"):
        load_config(CONFIGS / "point-robot.json", ["env_name=point-robt"], check_env=check_env_name)


def test_launch_experiment_names_the_unknown_env(tmp_path, capsys):
    from rlkit.cli import meta_train

    path = write_json(tmp_path / "x.json", {"env_name": "no-such-env"})
    for argv in ([str(path)], [str(path), "--seeds", "0,1"]):
        with pytest.raises(SystemExit) as exit_:
            meta_train.main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: unknown env_name 'no-such-env'") and "known envs" in err[0]


@pytest.mark.parametrize("name, fragment", [
    ("a\nb", "control characters"), ("a\tb", "control characters"), ("../x", "single folder name"),
    ("a/b", "single folder name"), ("a\\b", "single folder name"), ("..", "cannot be '..'"), (".", "cannot be '.'"),
])
def test_exp_names_are_single_safe_folder_names(minimal, name, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(minimal, [f"util_params.exp_name={name}"])
    assert str(err.value).startswith("util_params.exp_name ") and fragment in str(err.value)
    assert "\n" not in str(err.value)  # one line, the newline shown escaped


def test_ordinary_exp_names_are_kept(minimal):
    for name in ("CSRO", "csro-lr1e-3", "a..b", "run 2"):
        assert load_config(minimal, [f"util_params.exp_name={name}"])["util_params"]["exp_name"] == name


def test_seeds_must_fit_numpy_seeding():
    from rlkit.config import SEED_RANGE, check_seed

    assert check_seed(0) == 0 and check_seed(2**32 - 1) == 2**32 - 1 and SEED_RANGE == (0, 2**32 - 1)
    for bad in (-1, 2**32, 99999999999, 1.0, True, "3"):
        with pytest.raises(ConfigError, match=r"--seed must be an integer from 0 to 4294967295"):
            check_seed(bad)


def test_a_context_larger_than_a_tasks_buffer_is_refused(minimal):
    with pytest.raises(ConfigError) as err:
        load_config(minimal, ["algo_params.embedding_batch_size=10000000"])
    assert "algo_params.embedding_batch_size (10000000) exceeds algo_params.replay_buffer_size" in str(err.value)
    cfg = load_config(minimal, ["algo_params.embedding_batch_size=1000", "algo_params.replay_buffer_size=1000"])
    assert cfg["algo_params"]["embedding_batch_size"] == 1000


def _env_json(tmp_path, **algo) -> Path:
    cfg = json.loads((REPO / "configs" / "point-robot.json").read_text())
    cfg["algo_params"].update(algo)
    path = tmp_path / "env.json"
    path.write_text(json.dumps(cfg))
    return path


def test_an_env_json_that_contradicts_its_preset_is_refused(tmp_path):
    """Was: the preset went on top, so "use_club": false in an env JSON loaded as true under CSRO."""
    path = _env_json(tmp_path, use_club=False)
    with pytest.raises(ConfigError, match=r"sets algo_params.use_club=false but the CSRO preset \(CSRO.json, "
                                          r"algo_type=CSRO\) sets true: .*on the command line"):
        load_config(path)
    # the command line wins over both: a deliberate ablation is one override away
    assert load_config(path, ["algo_params.use_club=false"])["algo_params"]["use_club"] is False
    # agreeing with the preset (as the authors' JSONs do) is fine, whatever algo_type picks it
    assert load_config(_env_json(tmp_path, use_club=True, use_FOCAL_cl=True))["algo_params"]["use_club"] is True
    with pytest.raises(ConfigError, match="the FOCAL preset"):
        load_config(_env_json(tmp_path, use_club=True), ["algo_type=FOCAL"])


def test_every_shipped_env_config_runs_every_preset(tmp_path):
    """The env JSONs leave the method to the preset, so `algo_type=X` works on each of them."""
    from rlkit.config import _leaves

    for env_json in sorted((REPO / "configs").glob("*.json")):
        for name, preset in algo_presets().items():
            cfg = load_config(env_json, [f"algo_type={name}"])
            for key, value in _leaves(json.loads(preset.read_text())):
                section, _, leaf = key.rpartition(".")
                assert cfg[section][leaf] == value, (env_json.name, name, key)


def test_the_authors_dead_keys_load_with_a_note_and_are_refused_on_the_command_line(tmp_path, capsys):
    """seed_list, num_tasks_sample, update_post_train, dropout and dump_eval_paths are read by nothing here
    (dump_eval_paths was documented as working). An authors' JSON that sets them loads, saying so once per
    key; typing one on the command line expects an effect, and is refused."""
    from rlkit.config import IGNORED_KEYS

    cfg = json.loads((REPO / "configs" / "point-robot.json").read_text())
    cfg["seed_list"] = [0, 1]
    cfg["algo_params"].update(num_tasks_sample=10, update_post_train=1, dropout=0.1, dump_eval_paths=1)
    path = tmp_path / "authors.json"
    path.write_text(json.dumps(cfg))
    loaded = load_config(path)
    notes = capsys.readouterr().err.strip().splitlines()
    assert len(notes) == len(IGNORED_KEYS) == 5
    assert all(n.startswith(f"note: {path} sets ") and "ignores" in n for n in notes)
    assert "seed_list" not in loaded and not set(loaded["algo_params"]) & {"num_tasks_sample", "update_post_train",
                                                                         "dropout", "dump_eval_paths"}
    for key in IGNORED_KEYS:
        with pytest.raises(ConfigError, match=f"{key} has no effect here"):
            load_config(REPO / "configs" / "point-robot.json", [f"{key}=1"])
    load_config(REPO / "configs" / "point-robot.json")
    assert capsys.readouterr().err == ""  # the shipped configs carry none of them


# ---------------------------------------------------------------- presets close every method key


def test_every_method_preset_fixes_every_method_defining_key():
    """Each objective's switch, the encoder's method switches and the variant settings of the objectives
    a preset turns on (the list comes from the objectives' registry, not typed here)."""
    from rlkit.trainers import trainer_of

    for name, preset in algo_presets().items():
        values = json.loads(preset.read_text())
        assert trainer_of(values).preset_open_keys(values) == [], name


@pytest.mark.parametrize("algo_type,key,value", [
    ("CSRO", "use_corro", True), ("FOCAL", "use_unicorn_decoder", True), ("offline-PEARL", "use_corro", True),
    ("CSRO", "normalize_transition_z", True), ("CORRO", "corro_negatives_from", "relabel")])
def test_an_env_json_cannot_change_the_method_a_preset_names(tmp_path, algo_type, key, value):
    """Was: CSRO, FOCAL and offline PEARL left use_corro, use_unicorn_decoder and normalize_transition_z
    open, and CORRO corro_negatives_from: an env JSON that set one made a "CSRO" run with a CORRO loss."""
    from rlkit.launchers.meta_train import load_run_config

    with pytest.raises(ConfigError, match=rf"sets algo_params.{key}=.* but the {algo_type} preset"):
        load_run_config(_env_json(tmp_path, **{key: value}), [f"algo_type={algo_type}"])


def test_a_preset_that_leaves_a_method_key_open_is_refused(tmp_path, monkeypatch):
    from rlkit.launchers import meta_train

    open_preset = tmp_path / "MINE.json"
    open_preset.write_text(json.dumps({"algo_params": {"use_FOCAL_cl": True, "use_club": False, "use_corro": True}}))
    monkeypatch.setattr(meta_train, "algo_presets", lambda: {"MINE": open_preset})
    with pytest.raises(ConfigError, match=r"MINE.json' does not fix use_information_bottleneck, use_unicorn_decoder, use_unicorn_classifier, "
                                          r"allow_backward_z, normalize_transition_z, corro_negatives_from"):
        meta_train.check_method_preset("MINE")


def test_trainer_settings_tables_extend_and_refuse_in_one_line(tmp_path, monkeypatch):
    """The one reader of configs/trainers/NAME/VARIANT.json: common, then the env block, over the
    table a variant extends; a missing table, a missing env and a loop are one-line errors."""
    from rlkit import config as C

    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "Base.json").write_text(json.dumps(
        {"_doc": "ignored", "common": {"a": 1, "b": 2}, "point-robot": {"b": 3}, "cheetah-vel": {}}))
    (folder / "Child.json").write_text(json.dumps({"extends": "Base", "common": {"a": 10, "c": 4}}))
    (folder / "Loop1.json").write_text(json.dumps({"extends": "Loop2", "common": {}}))
    (folder / "Loop2.json").write_text(json.dumps({"extends": "Loop1", "common": {}}))
    monkeypatch.setattr(C, "TRAINER_SETTINGS_DIR", tmp_path)
    assert C.trainer_settings("toy", "Base", "point-robot") == {"a": 1, "b": 3}
    assert C.trainer_settings("toy", "Base", "cheetah-vel") == {"a": 1, "b": 2}
    assert C.trainer_settings("toy", "Child", "point-robot") == {"a": 10, "b": 3, "c": 4}
    with pytest.raises(C.ConfigError, match=r"trainer 'toy' has no settings for env 'ant-dir' in .*Base.json; "
                                            r"settings for: cheetah-vel, point-robot"):
        C.trainer_settings("toy", "Child", "ant-dir")
    with pytest.raises(C.ConfigError, match="has no settings table 'Nope'; its tables: Base, Child, Loop1, Loop2"):
        C.trainer_settings("toy", "Nope", "point-robot")
    with pytest.raises(C.ConfigError, match="in a loop: Loop1 -> Loop2 -> Loop1"):
        C.trainer_settings("toy", "Loop1", "point-robot")
