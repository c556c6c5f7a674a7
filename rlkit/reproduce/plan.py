"""A reproduction plan: ``configs/reproduce/ENV-SCALE.yaml``, read and checked.

A plan names the env config, the behaviour-policy dataset to build, the
methods (algo_type presets) and seeds to train, the overrides that scale the
paper's settings down (each listed with its reason in ``reductions``), how many
runs go side by side, and the published numbers to print beside ours.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from rlkit.config import REPO_CONFIG_DIR, ConfigError, algo_presets, load_config
# settings_drift lives beside the run directory it reads: one comparison for the reproduce runner,
# sweeps and --resume (imported from here by records and runner)
from rlkit.core.logger import settings_drift  # noqa: F401
from rlkit.envs import UnknownEnvError, offline_data_env

PLAN_DIR = REPO_CONFIG_DIR / "reproduce"
PROTOCOLS = ("offline", "online", "np_online")
_KEYS = {"env", "scale", "config", "description", "dataset", "methods", "seeds", "train_overrides", "parallel",
         "threads_per_run", "final_window", "context_shift_draws", "reductions", "paper", "claims"}


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
    parallel: int = 1
    threads_per_run: int = 0  # 0: let torch decide
    final_window: int = 3
    context_shift_draws: int = 20
    reductions: list[dict] = field(default_factory=list)
    paper: dict = field(default_factory=dict)
    claims: bool = False
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
                f"util_params.base_log_dir={base_log_dir}", *self.train_overrides]

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
        return load_config(self.config, [f"algo_type={method}", *self.train_overrides])


def available_plans() -> list[str]:
    return sorted(p.stem for p in PLAN_DIR.glob("*.yaml"))


def plan_path(env_or_path: str, scale: str) -> Path:
    """``point-robot`` + ``cpu`` -> configs/reproduce/point-robot-cpu.yaml; a path is taken as is."""
    if env_or_path.endswith((".yaml", ".yml")):
        return Path(env_or_path)
    name = f"{env_or_path}-{scale}"
    path = PLAN_DIR / f"{name}.yaml"
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
    config = Path(raw["config"])
    if not config.is_absolute():
        config = REPO_CONFIG_DIR.parent / config
    ds = raw["dataset"]
    dataset_config = dataset_plan = None
    if isinstance(ds, dict) and "from_plan" in ds:
        if set(ds) != {"from_plan"}:
            raise ConfigError(f"reproduction plan {str(path)!r}: a dataset taken from_plan has no settings of its own "
                              f"(found {', '.join(sorted(set(ds) - {'from_plan'}))})")
        dataset, dataset_config, dataset_plan = _dataset_of(str(ds["from_plan"]), path, str(raw["env"]),
                                                            (*_seen, path.resolve()))
    elif not isinstance(ds, dict) or "preset" not in ds:
        raise ConfigError(f"reproduction plan {str(path)!r}: dataset needs a preset (train, train_point, ...) "
                          "or from_plan (another plan's dataset)")
    else:
        dataset = DatasetPlan(str(ds["preset"]), int(ds.get("seed", 0)), [str(o) for o in ds.get("overrides", [])])
    plan = Plan(env=str(raw["env"]), scale=str(raw["scale"]), config=config, description=str(raw.get("description", "")),
                dataset=dataset, dataset_config=dataset_config, dataset_plan=dataset_plan,
                methods=[str(m) for m in raw["methods"]], seeds=[int(s) for s in raw["seeds"]],
                train_overrides=[str(o) for o in raw.get("train_overrides", [])],
                parallel=int(raw.get("parallel", 1)), threads_per_run=int(raw.get("threads_per_run", 0)),
                final_window=int(raw.get("final_window", 3)),
                context_shift_draws=int(raw.get("context_shift_draws", 20)),
                reductions=list(raw.get("reductions", [])), paper=dict(raw.get("paper", {})),
                claims=bool(raw.get("claims", False)), source=path)
    presets = algo_presets()
    for m in plan.methods:
        if m not in presets:
            raise ConfigError(f"reproduction plan {str(path)!r}: unknown method {m!r}; presets: {', '.join(presets)}")
    if not plan.methods or not plan.seeds:
        raise ConfigError(f"reproduction plan {str(path)!r} needs at least one method and one seed")
    if plan.parallel < 1 or plan.final_window < 1:
        raise ConfigError(f"reproduction plan {str(path)!r}: parallel and final_window must be at least 1")
    for m in plan.methods:  # every run's config must load: fail now, not an hour in
        cfg = plan.resolved_config(m)
        if cfg["env_name"] != plan.env:
            raise ConfigError(f"reproduction plan {str(path)!r}: config {str(config)!r} is for "
                              f"{cfg['env_name']!r}, not {plan.env!r}")
    return plan
