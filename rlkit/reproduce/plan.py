"""A reproduction plan: ``configs/reproduce/ENV-SCALE.yaml``, read and checked.

A plan names the env config, the behaviour-policy dataset to build, the
methods (algo_type presets) and seeds to train, the overrides that scale the
paper's settings down (each listed with its reason in ``reductions``), how many
runs go side by side, and the published numbers to print beside ours.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlkit.config import (
    REPO_CONFIG_DIR,
    ConfigError,
    algo_presets,
    load_config,
    parse_override,
)

# settings_drift lives beside the run directory it reads: one comparison for the reproduce runner,
# sweeps and --resume (imported from here by records and runner)
from rlkit.core.logger import settings_drift  # noqa: F401
from rlkit.envs import UnknownEnvError, offline_data_env
from rlkit.evaluation.protocols import PROTOCOLS
from rlkit.reproduce.renames import RENAMES_FILE, PlanRenamed, renamed_from

PLAN_DIR = REPO_CONFIG_DIR / "reproduce"
# What the runner sets for each run itself: a plan that set them would train one method under
# another's label, one seed under another's, or read and write elsewhere than the plan's folders.
RUNNER_KEYS = ("algo_type", "util_params.exp_name", "seed", "seed_list", "algo_params.data_dir",
               "util_params.base_log_dir")
# every method of a plan trains for as many steps: its table compares them at one length
SAME_LENGTH_KEYS = ("algo_params.num_iterations", "algo_params.num_train_steps_per_itr")
MAX_SEED = 2**32 - 1  # numpy's and the generators' seeds are 32-bit
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_KEYS = {"env", "scale", "config", "description", "dataset", "methods", "seeds", "train_overrides",
         "method_overrides", "parallel",
         "threads_per_run", "final_window", "context_shift_draws", "reductions", "paper", "claims", "report_steps"}


@dataclass
class DatasetPlan:
    preset: str
    seed: int = 0
    overrides: list[str] = field(default_factory=list)

    def policy_train_args(self, config: Path, data_dir: Path) -> list[str]:
        return ["--config", str(config), "--preset", self.preset, "--seed", str(self.seed), "--data_dir",
                str(data_dir), *self.overrides]


@dataclass
class Plan:
    """One env at one scale. ``name`` = ``ENV-SCALE`` names its output and record folders."""

    env: str
    scale: str
    config: Path
    description: str
    dataset: DatasetPlan
    methods: list[str]
    seeds: list[int]
    train_overrides: list[str]
    # per method, overrides after train_overrides: a method's own settings (BOReL's VAE stage), which
    # another method's config does not carry
    method_overrides: dict[str, list[str]] = field(default_factory=dict)
    parallel: int = 1
    threads_per_run: int = 0  # 0: let torch decide
    final_window: int = 3
    context_shift_draws: int = 20
    reductions: list[dict] = field(default_factory=list)
    paper: dict = field(default_factory=dict)
    claims: bool = False
    report_steps: list[int] = field(default_factory=list)  # training lengths the page reads each run's gap at
    source: Path | None = None
    dataset_config: Path | None = None  # the env config the dataset is generated from (default: config)
    dataset_plan: str | None = None  # the plan whose work folder holds the dataset (default: this one)

    @property
    def name(self) -> str:
        return f"{self.env}-{self.scale}"

    @property
    def dataset_home(self) -> str:
        """The work folder (a plan name) that holds this plan's dataset: plans that differ only in
        how they train (longer, larger batches) share one dataset instead of generating it again."""
        return self.dataset_plan or self.name

    @property
    def num_iterations(self) -> int:
        return int(self.resolved_config(self.methods[0])["algo_params"]["num_iterations"])

    def run_overrides(self, method: str, data_dir: Path, base_log_dir: Path) -> list[str]:
        return [f"algo_type={method}", f"util_params.exp_name={method}", f"algo_params.data_dir={data_dir}",
                f"util_params.base_log_dir={base_log_dir}", *self.overrides_of(method)]

    def overrides_of(self, method: str) -> list[str]:
        """The plan's training overrides of ``method``'s runs: train_overrides, then its method_overrides."""
        return [*self.train_overrides, *self.method_overrides.get(method, [])]

    def select_methods(self, methods: list[str] | None) -> list[str]:
        """The plan's methods in plan order, or the named subset of them (``--methods``)."""
        if methods is None:
            return list(self.methods)
        for m in methods:
            if m not in self.methods:
                raise ConfigError(f"method {m!r} is not in plan {self.name!r}; its methods: {', '.join(self.methods)}")
        return [m for m in self.methods if m in methods]

    def select_seeds(self, seeds: list[int] | None) -> list[int]:
        """The plan's seeds in plan order, or the named subset of them (``--seeds``)."""
        if seeds is None:
            return list(self.seeds)
        for s in seeds:
            if s not in self.seeds:
                raise ConfigError(f"seed {s} is not in plan {self.name!r}; its seeds: "
                                  f"{', '.join(map(str, self.seeds))}")
        return [s for s in self.seeds if s in seeds]

    def resolved_config(self, method: str) -> dict:
        return load_config(self.config, [f"algo_type={method}", *self.overrides_of(method)])


def available_plans() -> list[str]:
    return sorted(p.stem for p in PLAN_DIR.glob("*.yaml") if p.name != RENAMES_FILE.name)


def plan_path(env_or_path: str, scale: str) -> Path:
    """``point-robot`` + ``cpu`` -> configs/reproduce/point-robot-cpu.yaml; a path is taken as is."""
    if env_or_path.endswith((".yaml", ".yml")):
        return Path(env_or_path)
    name = f"{env_or_path}-{scale}"
    path = PLAN_DIR / f"{name}.yaml"
    if not path.is_file() and renamed_from(name) is not None:
        raise PlanRenamed(renamed_from(name), env_or_path)
    if not path.is_file():
        close = difflib.get_close_matches(name, available_plans(), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"no reproduction plan {name!r}{hint}; plans: {', '.join(available_plans())} "
                          f"(configs/reproduce/)")
    return path


def _dataset_of(name: str, path: Path, env: str, seen: tuple[Path, ...]) -> tuple[DatasetPlan, Path, str]:
    """``dataset: {from_plan: NAME}``: that plan's dataset, its env config and where it lives. NAME is
    a committed plan (``point-robot-cpu``) or a plan file, relative to this one. The other plan's env
    must be one whose data this plan's env learns from (itself, or e.g. point-robot for
    sparse-point-robot: rlkit.envs.offline_data_env)."""
    other_path = path.parent / name if name.endswith((".yaml", ".yml")) else PLAN_DIR / f"{name}.yaml"
    if not other_path.is_file() and renamed_from(name) is not None:
        raise ConfigError(f"reproduction plan {str(path)!r}: dataset from_plan {name!r}: {renamed_from(name).line()}; "
                          f"write from_plan: {renamed_from(name).new}")
    if not other_path.is_file():
        raise ConfigError(f"reproduction plan {str(path)!r}: dataset from_plan {name!r} is not a plan; plans: "
                          f"{', '.join(available_plans())}")
    if other_path.resolve() in seen:
        raise ConfigError(f"reproduction plan {str(path)!r}: dataset from_plan {name!r} leads back to itself")
    other = load_plan(other_path, _seen=seen)
    try:
        shares = offline_data_env(other.env) == offline_data_env(env)
    except UnknownEnvError as exc:
        raise ConfigError(f"reproduction plan {str(path)!r}: {exc}") from None
    if not shares:
        raise ConfigError(f"reproduction plan {str(path)!r}: dataset from_plan {name!r} is a {other.env!r} dataset, "
                          f"which {env!r} does not learn from")
    return other.dataset, other.dataset_config or other.config, other.dataset_home


# ------------------------------------------------------------------ checks of a plan's values
# Each turns a wrong type or value into one line naming the key, at load time: a plan is read before
# any work starts, so a mistake in it must not surface as a traceback hours later, after records.


def _safe_name(value: Any, key: str, where: str) -> str:
    """A single path component (the plan's name is ENV-SCALE, a folder under --out and the records)."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not _SAFE_NAME.fullmatch(text):
        raise ConfigError(f"{where}: {key} {value!r} must be one plain name (letters, digits, '-', '_', '.'; "
                          "no '/', no leading '.'), e.g. cpu")
    return text


def _int(value: Any, key: str, where: str, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None
                                                                                     and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
        raise ConfigError(f"{where}: {key} must be a whole number {bound}, got {value!r}")
    return value


def _bool(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _string(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be text, got {value!r}")
    return value


def _strings(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise ConfigError(f"{where}: {key} must be a list of KEY=VALUE overrides, got {value!r}")
    return [str(v) for v in value]


def _methods(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(m, str) for m in value):
        raise ConfigError(f"{where}: methods must be a list of algo presets, e.g. [CSRO, FOCAL], got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: methods lists {_first_repeat(value)!r} twice; each method trains once per seed")
    return list(value)


def _seeds(value: Any, where: str) -> list[int]:
    """Distinct whole numbers: ``0.7`` is not seed 0, and a seed listed twice would run (and count) twice."""
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED for s in value)):
        raise ConfigError(f"{where}: seeds must be a list of whole numbers from 0 to {MAX_SEED}, e.g. [0, 1, 2], "
                          f"got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: seeds lists {_first_repeat(value)} twice; give each seed once")
    return list(value)


def _first_repeat(values: list) -> Any:
    seen = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None


def _report_steps(value: Any, where: str) -> list[int]:
    """Training lengths (meta-training steps) at which the page reads every run's curves, rising."""
    if (not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
            or value != sorted(set(value))):
        raise ConfigError(f"{where}: report_steps must be a rising list of step counts, e.g. [6000, 12000], "
                          f"got {value!r}")
    return list(value)


def _train_overrides(value: Any, where: str) -> list[str]:
    """The plan's overrides, none of which may set what the runner sets per run (RUNNER_KEYS)."""
    overrides = _strings(value, "train_overrides", where)
    for text in overrides:
        key = parse_override(text)[0]
        if key in RUNNER_KEYS:
            raise ConfigError(f"{where}: train_overrides may not set {key} ({text!r}); the runner sets it for each "
                              "run from the plan's methods, seeds and folders")
    return overrides


def _method_overrides(value: Any, methods: Any, where: str) -> dict[str, list[str]]:
    """``{METHOD: [KEY=VALUE, ...]}`` for methods of the plan, checked as train_overrides are."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: method_overrides must map a method to its overrides, got {value!r}")
    known = list(methods) if isinstance(methods, list) else []
    for method in value:
        if method not in known:
            raise ConfigError(f"{where}: method_overrides names {method!r}, which is not among the plan's methods "
                              f"({', '.join(map(str, known))})")
    out = {str(m): _train_overrides(v, f"{where} (method_overrides of {m})") for m, v in value.items()}
    for m, texts in out.items():
        for text in texts:
            if parse_override(text)[0] in SAME_LENGTH_KEYS:
                raise ConfigError(f"{where}: method_overrides of {m} may not set {text!r}: every method of a plan "
                                  "trains for the same steps (set it in train_overrides, or make another plan)")
    return out


def _reductions(value: Any, where: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(r, dict) and set(r) <= {"what", "why"} for r in value):
        raise ConfigError(f"{where}: reductions must be a list of {{what: ..., why: ...}}, got {value!r}")
    return list(value)


def _paper(value: Any, where: str) -> dict:
    """The published numbers: ``{METHOD: {PROTOCOL: number}}``."""
    ok = isinstance(value, dict) and all(
        isinstance(m, str) and isinstance(row, dict) and all(
            p in PROTOCOLS and isinstance(v, (int, float)) and not isinstance(v, bool) for p, v in row.items())
        for m, row in value.items())
    if not ok:
        raise ConfigError(f"{where}: paper must map methods to {{protocol: number}} (protocols: "
                          f"{', '.join(PROTOCOLS)}), e.g. {{FOCAL: {{offline: -4.4}}}}, got {value!r}")
    return dict(value)


def load_plan(path: Path, _seen: tuple[Path, ...] = ()) -> Plan:
    """Read and check a plan; every mistake is a one-line :class:`ConfigError`."""
    if not path.is_file():
        raise ConfigError(f"reproduction plan {str(path)!r} not found")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as exc:  # yaml syntax errors and the like, one line
        raise ConfigError(f"cannot read reproduction plan {str(path)!r}: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"reproduction plan {str(path)!r} must be a mapping")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(_KEYS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown key {unknown[0]!r}{hint} in reproduction plan {str(path)!r}")
    for key in ("env", "scale", "config", "dataset", "methods", "seeds"):
        if key not in raw:
            raise ConfigError(f"reproduction plan {str(path)!r} lacks {key!r}")
    where = f"reproduction plan {str(path)!r}"
    env, scale = _safe_name(raw["env"], "env", where), _safe_name(raw["scale"], "scale", where)
    if not isinstance(raw["config"], str) or not raw["config"]:
        raise ConfigError(f"{where}: config must be the path of an env config, e.g. configs/point-robot.json")
    config = Path(raw["config"])
    if not config.is_absolute():
        config = REPO_CONFIG_DIR.parent / config
    ds = raw["dataset"]
    dataset_config = dataset_plan = None
    if isinstance(ds, dict) and "from_plan" in ds:
        if set(ds) != {"from_plan"}:
            raise ConfigError(f"reproduction plan {str(path)!r}: a dataset taken from_plan has no settings of its own "
                              f"(found {', '.join(sorted(set(ds) - {'from_plan'}))})")
        dataset, dataset_config, dataset_plan = _dataset_of(str(ds["from_plan"]), path, env,
                                                            (*_seen, path.resolve()))
    elif not isinstance(ds, dict) or "preset" not in ds:
        raise ConfigError(f"reproduction plan {str(path)!r}: dataset needs a preset (train, train_point, ...) "
                          "or from_plan (another plan's dataset)")
    else:
        dataset = DatasetPlan(_safe_name(ds["preset"], "dataset preset", where),
                              _int(ds.get("seed", 0), "dataset seed", where, 0, MAX_SEED),
                              _strings(ds.get("overrides", []), "dataset overrides", where))
    plan = Plan(env=env, scale=scale, config=config,
                description=_string(raw.get("description", ""), "description", where),
                dataset=dataset, dataset_config=dataset_config, dataset_plan=dataset_plan,
                methods=_methods(raw["methods"], where), seeds=_seeds(raw["seeds"], where),
                train_overrides=_train_overrides(raw.get("train_overrides", []), where),
                method_overrides=_method_overrides(raw.get("method_overrides", {}), raw.get("methods"), where),
                parallel=_int(raw.get("parallel", 1), "parallel", where, 1),
                threads_per_run=_int(raw.get("threads_per_run", 0), "threads_per_run", where, 0),
                final_window=_int(raw.get("final_window", 3), "final_window", where, 1),
                context_shift_draws=_int(raw.get("context_shift_draws", 20), "context_shift_draws", where, 1),
                reductions=_reductions(raw.get("reductions", []), where), paper=_paper(raw.get("paper", {}), where),
                claims=_bool(raw.get("claims", False), "claims", where),
                report_steps=_report_steps(raw.get("report_steps", []), where), source=path)
    presets = algo_presets()
    for m in plan.methods:
        if m not in presets:
            raise ConfigError(f"reproduction plan {str(path)!r}: unknown method {m!r}; presets: {', '.join(presets)}")
    for m in plan.methods:  # every run's config must load: fail now, not an hour in
        cfg = plan.resolved_config(m)
        if cfg["env_name"] != plan.env:
            raise ConfigError(f"reproduction plan {str(path)!r}: config {str(config)!r} is for "
                              f"{cfg['env_name']!r}, not {plan.env!r}")
    return plan
