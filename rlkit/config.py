"""Load, validate and save experiment configurations.

A config is a plain nested dict: the package's defaults (:mod:`rlkit.defaults`)
with one ``configs/ENV.json`` deep-merged on top, then ``KEY.PATH=VALUE``
overrides. Configs are data: no Python is imported from a config folder.
Keeping it a dict means ``variant.json`` is the resolved config verbatim and
every consumer reads the reference's key names.

Unlike the reference, every key is checked against the defaults: a misspelled
key would otherwise be silently ignored and the default used instead. Errors
are :class:`ConfigError` with a one-line message; CLIs print ``error: <msg>``
and exit with status 2 (:func:`exit_on_config_error`).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rlkit import defaults as _defaults
from rlkit.errors import UserError, cli, usage_name
from rlkit.fileio import atomic_write_text

Config = dict[str, Any]

# The shipped configs live in the package (an installed, non-editable csro has them too); the
# checkout's top-level configs/ is a link to this folder, so the authors' command paths still work.
REPO_CONFIG_DIR = Path(__file__).resolve().parent / "configs"
ALGO_CONFIG_DIR = REPO_CONFIG_DIR / "algos"
DIVERGENCES = ("kl", "w")
# util_params.dtype: what a run computes in (rlkit.core.precision turns the name into a torch dtype)
COMPUTE_DTYPES = ("float32", "float64")


class ConfigError(UserError, ValueError):
    """A config that cannot be used; the message is one line meant for the user."""


# --------------------------------------------------------------------------------------
# defaults


IGNORED_DEFAULT_PY = "default.py"
_warned_default_py: set[Path] = set()


def warn_if_default_py_beside(json_path: str | os.PathLike) -> None:
    """Say once, in one line, that a ``default.py`` beside a config JSON is ignored.

    The reference (and earlier versions of this code) imported such a file, so
    a config folder copied from elsewhere could run any Python. A config is
    data: defaults come from the package (:mod:`rlkit.defaults`) and the JSON
    changes them; the file is never read, let alone executed.
    """
    beside = Path(json_path).resolve().parent / IGNORED_DEFAULT_PY
    if beside in _warned_default_py or not beside.is_file():
        return
    _warned_default_py.add(beside)
    print(f"warning: ignoring {beside}: defaults come from the installed package (rlkit/defaults.py) and "
          "Python beside a config is never run; put the settings you need in the JSON or in KEY=VALUE overrides",
          file=sys.stderr)


# A trainer's own settings form one config section (``borel.kl_weight=0.1``): valid keys, absent
# unless a preset or an override writes them. A shipped trainer's section is read from its settings
# tables, configs/trainers/NAME/VARIANT.json (data, so a config loads without importing the trainer);
# a trainer from the user's code brings its own through rlkit.trainers.register_trainer.
TRAINER_SETTINGS_DIR = REPO_CONFIG_DIR / "trainers"
_TRAINER_SECTIONS: dict[str, Config] = {}


def shipped_section(name: str) -> Config:
    """The section of the shipped trainer ``name``: ``variant`` (the name of one of its tables,
    configs/trainers/NAME/VARIANT.json) and every key of the tables' blocks (``common`` and one per env),
    with its first value as the example that types it. ``{}`` for a name without tables."""
    tables = sorted((TRAINER_SETTINGS_DIR / name).glob("*.json"))
    if not tables:
        return {}
    section: Config = {"variant": tables[0].stem}
    for table in tables:
        for block, values in read_json_object(table).items():
            if isinstance(values, Mapping) and not str(block).startswith("_"):
                for key, value in values.items():
                    section.setdefault(str(key), value)
    return section


def trainer_settings(name: str, variant: str, env_name: str, *, _seen: tuple[str, ...] = ()) -> Config:
    """The values of the shipped trainer ``name``'s table ``variant`` for ``env_name``, the one reader of
    configs/trainers/NAME/VARIANT.json: the ``common`` block, then the env's block, over the values of
    the table it ``extends`` (BOReL-RR extends BOReL). A table that extends another need not name the
    env; the first of the chain must (a trainer without settings for an env is a one-line error)."""
    folder = TRAINER_SETTINGS_DIR / name
    path = folder / f"{variant}.json"
    if not path.is_file():
        names = sorted(p.stem for p in folder.glob("*.json"))
        raise ConfigError(f"trainer {name!r} has no settings table {variant!r}; its tables: "
                          f"{', '.join(names) or 'none'} ({folder})")
    if variant in _seen:
        raise ConfigError(f"trainer {name!r}'s settings tables extend each other in a loop: "
                          f"{' -> '.join((*_seen, variant))}")
    table = read_json_object(path)
    parent = table.get("extends")
    base = trainer_settings(name, str(parent), env_name, _seen=(*_seen, variant)) if parent is not None else {}
    envs = sorted(k for k in table if k not in ("common", "extends") and not str(k).startswith("_"))
    if parent is None and env_name not in envs:
        raise ConfigError(f"trainer {name!r} has no settings for env {env_name!r} in {path}; "
                          f"settings for: {', '.join(envs)}")
    return {**base, **table.get("common", {}), **table.get(env_name, {})}


def _sections() -> dict[str, Config]:
    shipped = {d.name: shipped_section(d.name) for d in sorted(TRAINER_SETTINGS_DIR.glob("*")) if d.is_dir()}
    return {**{k: v for k, v in shipped.items() if v}, **_TRAINER_SECTIONS}


def register_config_section(name: str, example: Mapping[str, Any], *, replace: bool = False) -> None:
    """Make ``NAME.KEY`` valid config keys, typed by ``example``'s values (a None value takes anything).

    Called by :func:`rlkit.trainers.register_trainer` for a trainer's ``config_section``, so a method
    from the user's own code brings its settings with it and a misspelt one is still refused. A name
    that is a built-in key, or another trainer's section with other keys, is refused.
    """
    name = str(name)
    if not name.isidentifier():
        raise ValueError(f"config section {name!r} must be an identifier")
    if name in _defaults.default_config or name in _defaults.optional_config:
        raise ValueError(f"config section {name!r} is a built-in config key; choose another name")
    taken = _sections().get(name)
    if taken is not None and taken != dict(example) and not replace:
        raise ValueError(f"config section {name!r} is already registered with other keys; pass replace=True")
    _TRAINER_SECTIONS[name] = copy.deepcopy(dict(example))


def unregister_config_section(name: str) -> None:
    """Forget a section :func:`register_config_section` added (plug-ins and tests); a shipped one stays."""
    _TRAINER_SECTIONS.pop(name, None)


# algo_params keys a plug-in adds with their defaults (rlkit.torch.objectives.register_objective: an
# objective's switch and settings from the user's code); present in every config, like the built-in ones.
_REGISTERED_ALGO_PARAMS: Config = {}


def register_algo_params(defaults: Mapping[str, Any], *, replace: bool = False) -> None:
    """Make ``algo_params.KEY`` valid keys with these defaults (their types are what the keys accept).

    A built-in key, or a key registered before with another default, is refused (``replace=True`` says it
    is meant), so a plug-in cannot change what an existing setting means."""
    built_in = _defaults.default_config["algo_params"]
    for key, value in defaults.items():
        if key in built_in:
            raise ValueError(f"algo_params.{key} is a built-in setting; choose another name")
        if key in _REGISTERED_ALGO_PARAMS and _REGISTERED_ALGO_PARAMS[key] != value and not replace:
            raise ValueError(f"algo_params.{key} is already registered with default "
                             f"{_REGISTERED_ALGO_PARAMS[key]!r}; pass replace=True")
    _REGISTERED_ALGO_PARAMS.update(copy.deepcopy(dict(defaults)))


def unregister_algo_params(keys: Iterable[str]) -> None:
    """Forget keys :func:`register_algo_params` added (plug-ins and tests)."""
    for key in keys:
        _REGISTERED_ALGO_PARAMS.pop(key, None)


def load_defaults() -> tuple[Config, Config]:
    """``(default_config, optional_config)``: fresh copies of :mod:`rlkit.defaults`, the registered
    trainers' sections among the optional ones.

    Copies, so that a caller building a config in place never changes what the
    next caller gets.
    """
    optional = copy.deepcopy(_defaults.optional_config)
    optional.update(copy.deepcopy(_sections()))
    defaults = copy.deepcopy(_defaults.default_config)
    defaults["algo_params"].update(copy.deepcopy(_REGISTERED_ALGO_PARAMS))
    return defaults, optional


# --------------------------------------------------------------------------------------
# types: derived from the default value, with a few keys whose default cannot say it


def _describe(value: Any) -> str:
    text = json.dumps(value) if _jsonable(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _check_bool(v: Any) -> bool:
    # The reference JSONs write booleans as 0/1 ("use_brac": 1); store real bools.
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, float) and v in (0.0, 1.0):
        return bool(v)
    raise TypeError("expected a boolean (true/false or 0/1)")


def _check_int(v: Any) -> int:
    if isinstance(v, bool):
        raise TypeError("expected an integer, not a boolean")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)  # 1e6 in JSON is a float; as a count it means 1000000
    raise TypeError("expected an integer")


def _check_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError("expected a number")
    return float(v)


def _check_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError("expected a string")
    return v


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def _check(v: Any) -> Any:
        return None if v is None else check(v)

    return _check


def _list_of(check: Callable[[Any], Any]) -> Callable[[Any], list]:
    def _check(v: Any) -> list:
        if not isinstance(v, (list, tuple)):
            raise TypeError("expected a list")
        return [check(x) for x in v]

    return _check


def _check_epochs(v: Any) -> int | list[int] | str:
    """Behaviour checkpoints: one step (FOCAL style), [start, stop, step] like range(), or "auto"."""
    if v == "auto":
        return v
    if isinstance(v, (list, tuple)):
        if len(v) != 3:
            raise TypeError("expected a number or a [start, stop, step] list of 3 integers")
        try:
            return [_check_int(x) for x in v]
        except TypeError:
            raise TypeError("expected a number, a [start, stop, step] list of 3 integers or \"auto\"") from None
    try:
        return _check_int(v)
    except TypeError:
        raise TypeError("expected a number, a [start, stop, step] list of 3 integers or \"auto\"") from None


def _check_count_or_auto(v: Any) -> int | str:
    """An episode count, or "auto" (as many as the dataset holds at every selected checkpoint)."""
    if v == "auto":
        return v
    try:
        return _check_int(v)
    except TypeError:
        raise TypeError("expected an integer or \"auto\"") from None


_check_str_opt = _optional(_check_str)

# Keys whose default value (None, a float standing for a list, ...) does not give the type.
_SPECIAL_TYPES: dict[str, Callable[[Any], Any]] = {
    "path_to_weights": _check_str_opt,
    "epoch_to_weights": _optional(_check_int),
    "algo_params.train_epoch": _check_epochs,
    "algo_params.eval_epoch": _check_epochs,
    "algo_params.n_trj": _check_count_or_auto,
}


def _checker_for(path: str, default: Any) -> Callable[[Any], Any]:
    if path in _SPECIAL_TYPES:
        return _SPECIAL_TYPES[path]
    if isinstance(default, bool):
        return _check_bool
    if isinstance(default, int):
        return _check_int
    if isinstance(default, float):
        return _check_float
    if isinstance(default, str):
        return _check_str
    if isinstance(default, list):
        return _list_of(lambda x: x)
    return lambda x: x  # None default without a declared type: anything JSON can hold


def _is_str_key(path: str, default: Any) -> bool:
    check = _checker_for(path, default)
    return check is _check_str or check is _check_str_opt


# --------------------------------------------------------------------------------------
# merging with key and type checks


class _Schema:
    """The valid keys and their types: default_config plus optional_config."""

    def __init__(self, defaults: Config, optional: Config):
        self.types: dict[str, Any] = {}  # dotted path -> default/example value
        self._collect(defaults, "")
        self._collect(optional, "")

    def _collect(self, tree: Mapping, prefix: str) -> None:
        for key, value in tree.items():
            path = f"{prefix}{key}"
            self.types[path] = value
            if isinstance(value, dict):
                self._collect(value, path + ".")

    def is_section(self, path: str) -> bool:
        return isinstance(self.types.get(path), dict)

    def suggest(self, path: str) -> str | None:
        """The closest valid key: a sibling first, else the same name in another section."""
        parent, _, leaf = path.rpartition(".")
        prefix = parent + "." if parent else ""
        siblings = [p[len(prefix):] for p in self.types if p.startswith(prefix) and "." not in p[len(prefix):]]
        close = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
        if close:
            return prefix + close[0]
        # e.g. "meta_batch" written at the top level instead of inside algo_params
        leaves = {p.rpartition(".")[2]: p for p in self.types}
        close = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.75)
        if close:
            return leaves[close[0]]
        close = difflib.get_close_matches(path, list(self.types), n=1, cutoff=0.6)
        return close[0] if close else None


def _unknown_key(schema: _Schema, path: str, where: str) -> ConfigError:
    hint = schema.suggest(path)
    hint_text = f" (did you mean {hint!r}?)" if hint else ""
    return ConfigError(f"unknown config key {path!r}{hint_text} {where}")


def _set_value(cfg: Config, schema: _Schema, path: str, value: Any, where: str) -> None:
    """Type-check ``value`` for ``path`` and store it; dicts are merged key by key."""
    if path not in schema.types:
        raise _unknown_key(schema, path, where)
    example = schema.types[path]
    parent_path, _, leaf = path.rpartition(".")
    node = cfg
    for part in parent_path.split(".") if parent_path else []:
        node = node.setdefault(part, {})
    if schema.is_section(path):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {path!r} must be a section (a JSON object), got {_describe(value)} {where}")
        node.setdefault(leaf, {})
        for key, sub in value.items():
            _set_value(cfg, schema, f"{path}.{key}", sub, where)
        return
    if isinstance(value, dict):
        raise ConfigError(f"config key {path!r} takes a single value, not a section {where}")
    try:
        node[leaf] = _checker_for(path, example)(value)
    except TypeError as exc:
        raise ConfigError(f"config key {path!r}: {exc}, got {_describe(value)} {where}") from None


# --------------------------------------------------------------------------------------
# reading JSON and overrides


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    # json keeps the last of two equal keys silently; in a config that hides an edit.
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def read_json_object(path: Path) -> Config:
    """The JSON object in ``path``, or a one-line :class:`ConfigError` (missing, unreadable, not JSON, a key
    set twice, not an object). Every reader of a config file goes through here, so they all say it alike."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read config file {str(path)!r}: {reason}") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"config file {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except _DuplicateKey as exc:
        raise ConfigError(f"config file {str(path)!r} sets key {exc.args[0]!r} twice") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a JSON object, got {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    """An override's value: a JSON literal (5, 0.1, true, [1, 2], "x"), else YAML, else the text.

    JSON first because PyYAML reads ``1e-3`` as a string and ``no`` as false.
    """
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", "~"):
        return None
    try:
        return float(stripped)  # .5, 5., inf
    except ValueError:
        pass
    if stripped[:1] in ("[", "{"):
        try:
            import yaml  # flow lists without quotes: [a, b]

            return yaml.safe_load(stripped)
        except Exception:
            pass
    return text


def parse_override(text: str) -> tuple[str, str]:
    """Split ``algo_params.num_iterations=5`` into (dotted key, raw value)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} must look like KEY=VALUE, e.g. algo_params.num_iterations=5")
    return key, raw


def _override_value(schema: _Schema, path: str, raw: str) -> Any:
    """An override's parsed value before the schema's type check: a string key keeps its text."""
    value = parse_value(raw)
    if path in schema.types and _is_str_key(path, schema.types[path]) and value is not None and not isinstance(value, str):
        value = raw.strip()  # exp_name=2024 names a run "2024", it is not a number
    return value


def typed_value(path: str, raw: str) -> Any:
    """The value ``PATH=RAW`` stores in a config, typed as the schema types it (``latent_size=5.0`` -> 5).

    Two spellings of one setting (``5`` and ``5.0``, ``true`` and ``1``) give the same value here, so a
    sweep can tell them from two settings. A key the schema lacks, or a value of the wrong type, is a
    ConfigError (the one :func:`load_config` would raise).
    """
    schema = _Schema(*load_defaults())
    if path not in schema.types:
        raise _unknown_key(schema, path, f"in override {path}={raw}")
    if schema.is_section(path):
        raise ConfigError(f"config key {path!r} is a section; give its keys one by one")
    try:
        return _checker_for(path, schema.types[path])(_override_value(schema, path, raw))
    except TypeError as exc:
        raise ConfigError(f"config key {path!r}: {exc}, got {raw!r}") from None


def apply_overrides(cfg: Config, overrides: Iterable[str], *, schema: _Schema | None = None,
                    check_env: Callable[[str], Any] | None = None) -> Config:
    """Apply ``KEY.PATH=VALUE`` overrides in place and re-validate; returns ``cfg``.

    ``check_env(env_name)``, when given, runs before the checks across keys:
    an unknown env is the mistake to report, not the task counts that follow
    from it. This layer cannot see the env registry (rlkit.envs sits above
    it), so the commands pass their registry's check in.
    """
    schema = schema or _Schema(*load_defaults())
    for text in overrides:
        path, raw = parse_override(text)
        if path in IGNORED_KEYS:
            raise ConfigError(f"override {text!r}: {path} has no effect here ({IGNORED_KEYS[path]}); remove it")
        _set_value(cfg, schema, path, _override_value(schema, path, raw), f"in override {text!r}")
    if check_env is not None:
        check_env(cfg["env_name"])
    validate(cfg)
    return cfg


# --------------------------------------------------------------------------------------
# public entry points


# Keys of the authors' default.py and JSONs that nothing here reads. An authors' JSON that sets them
# still loads (each is dropped with one note line naming why); a command-line override of one is refused,
# since whoever typed it expects an effect.
IGNORED_KEYS = {
    "seed_list": "the authors' sweep list; a sweep here takes --seeds, a run --seed",
    "algo_params.num_tasks_sample": "online PEARL's data collection per iteration; offline training collects nothing",
    "algo_params.update_post_train": "online PEARL's posterior resampling during collection; offline training "
                                     "collects nothing",
    "algo_params.dropout": "the authors' launcher never passes it to the encoder, so no run of theirs used it",
    "algo_params.dump_eval_paths": "the authors' pickle dump of evaluation paths; show_path.py records and draws "
                                   "the rollouts instead, without pickles",
}


def _drop_ignored(data: dict, where: str) -> dict:
    """``data`` without :data:`IGNORED_KEYS`, with one note on stderr per key it held."""
    out = json.loads(json.dumps(data))
    for key, why in IGNORED_KEYS.items():
        parent, _, leaf = key.rpartition(".")
        node = out.get(parent) if parent else out
        if isinstance(node, dict) and leaf in node:
            del node[leaf]
            print(f"note: {where} sets {key}, which this implementation ignores ({why})", file=sys.stderr)
    return out


def shipped_configs() -> dict[str, Path]:
    """The env configs this package ships, by env name (``configs/NAME.json``)."""
    return {p.stem: p for p in sorted(REPO_CONFIG_DIR.glob("*.json"))}


def resolve_config(arg: str | os.PathLike) -> Path:
    """The config file ``arg`` names: a path that exists, else a shipped env config by its name
    (``point-robot``), else ``configs/...`` inside the installed package (the checkout's
    ``configs/`` links there), so an installed package runs ``csro-train point-robot`` from any folder.
    A name that is none of these is refused in one line listing the shipped names."""
    path = Path(arg)
    if path.exists():
        return path
    shipped = shipped_configs()
    if str(arg) in shipped:
        return shipped[str(arg)]
    if len(path.parts) >= 2 and path.parts[0] == "configs" and REPO_CONFIG_DIR.joinpath(*path.parts[1:]).exists():
        return REPO_CONFIG_DIR.joinpath(*path.parts[1:])
    raise ConfigError(f"config file {str(arg)!r} not found; the shipped env configs are named by env: "
                      f"{', '.join(shipped)} (e.g. csro-train point-robot, --config point-robot)")


def load_config(json_path: str | os.PathLike, overrides: Iterable[str] = (), *,
                check_env: Callable[[str], Any] | None = None) -> Config:
    """The resolved config: defaults, then the JSON file, then the overrides.

    Raises :class:`ConfigError` for a missing or malformed file, an unknown key
    (naming the closest valid one), a wrong type or inconsistent values. The
    defaults alone do not validate (as in the reference, 2 + 2 tasks against
    n_tasks 2), so a run always names an ENV.json. ``check_env`` (see
    :func:`apply_overrides`) checks the env name before the values that depend on it.
    """
    path = resolve_config(json_path)
    overrides = list(overrides)
    warn_if_default_py_beside(path)
    defaults, optional = load_defaults()
    schema = _Schema(defaults, optional)
    cfg = defaults
    data = _drop_ignored(read_json_object(path), str(path))
    for key, value in data.items():
        _set_value(cfg, schema, key, value, f"in {str(path)!r}")
    overridden = set()
    for text in overrides:  # algo_type=NAME on the command line picks the preset applied below
        key, raw = parse_override(text)
        overridden.add(key)
        if key == "algo_type":
            _set_value(cfg, schema, key, raw.strip(), f"in override {text!r}")
    written = dict(_leaves(data))
    apply_algo_preset(cfg, schema)
    _refuse_preset_conflicts(path, written, cfg["algo_type"], overridden)
    cfg = apply_overrides(cfg, overrides, schema=schema, check_env=check_env)
    if "util_params.exp_name" not in overridden:
        _name_run_after_method(cfg)
    return cfg


def _name_run_after_method(cfg: Config) -> Config:
    """A run name that is a method's name (the shipped JSONs' ``exp_name: CSRO``, the default) becomes
    the name of the method run: ``algo_type`` (in place).

    Such a name is a label, not a choice: an env JSON says ``CSRO`` because CSRO is its algo_type,
    so ``algo_type=CORRO`` must not write into ``output/ENV/CSRO/`` (nor be plotted as CSRO). Any
    other name in a JSON (``ablation-1``) is the user's and is kept, and so is any name given on the
    command line (``--exp_name``, ``util_params.exp_name=``), a method's name included: the caller
    does not call this then."""
    util = cfg["util_params"]
    if util["exp_name"] != cfg["algo_type"] and util["exp_name"] in algo_presets():
        util["exp_name"] = cfg["algo_type"]
    return cfg


def _leaves(tree: Mapping, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted key, value) of every non-section value of a JSON object (``_comment`` keys skipped)."""
    for key, value in tree.items():
        if str(key).startswith("_"):
            continue
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _refuse_preset_conflicts(path: Path, written: dict, algo_type: str, overridden: set) -> None:
    """An env JSON that sets a method key to another value than the ``algo_type`` preset is refused.

    The preset goes on top of the JSON, so before this check ``"use_club": false`` in an env JSON
    loaded as true under the CSRO preset, silently: a run labelled with one method would have been
    another, or the other way round. The command line still wins over both (a deliberate ablation).
    """
    preset_path = algo_presets()[algo_type]
    for key, value in _leaves(read_json_object(preset_path)):
        if key in overridden or key not in written:
            continue
        mine = written[key]
        if mine != value:
            raise ConfigError(
                f"{str(path)!r} sets {key}={json.dumps(mine)} but the {algo_type} preset ({preset_path.name}, "
                f"algo_type={algo_type}) sets {json.dumps(value)}: the preset defines the method, so remove the key "
                f"from the JSON, choose another algo_type, or give {key}={json.dumps(mine)} on the command line "
                "(overrides win over both)")


def algo_presets() -> dict[str, Path]:
    """Algorithm presets: ``configs/algos/NAME.json``, selected by ``algo_type``."""
    return {p.stem: p for p in sorted(ALGO_CONFIG_DIR.glob("*.json"))}


def preset_oracle(name: str) -> str | None:
    """Why a method preset is an oracle (its ``_oracle`` text), or None for one that uses only what an offline
    learner has. An oracle reads something the offline setting withholds (BOReL-RR: the env's reward of other
    tasks), so tables show it apart from the methods it would otherwise be ranked with."""
    path = algo_presets().get(name)
    if path is None:
        return None
    note = read_json_object(path).get("_oracle")
    return str(note) if note else None


def apply_algo_preset(cfg: Config, schema: _Schema | None = None) -> Config:
    """Merge the preset named by ``cfg["algo_type"]`` into ``cfg`` (in place).

    A preset sets only the keys that define the method (which representation
    losses, which encoder, whether Q trains it). It goes on top of the env JSON
    and under command-line overrides, so ``configs/point-robot.json
    algo_type=FOCAL`` is the FOCAL ablation on point-robot's settings.
    Keys starting with ``_`` (``_doc``) are comments.
    """
    schema = schema or _Schema(*load_defaults())
    presets = algo_presets()
    name = cfg["algo_type"]
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown algo_type {name!r}{hint}; presets: {', '.join(presets)} (configs/algos/)")
    where = f"in preset {str(presets[name])!r}"
    for key, value in read_json_object(presets[name]).items():
        if not key.startswith("_"):
            _set_value(cfg, schema, key, value, where)
    return cfg


def epoch_range(spec: int | float | list[int]) -> range:
    """The behaviour-checkpoint steps a ``train_epoch``/``eval_epoch`` value selects."""
    if isinstance(spec, (list, tuple)):
        return range(int(spec[0]), int(spec[1]), int(spec[2]))
    return range(int(spec), int(spec) + 1)


# numpy's legacy seeding (np.random.seed) takes 32-bit seeds; every run seeds it with its seed
SEED_RANGE = (0, 2**32 - 1)


def check_seed(seed: Any, what: str = "--seed") -> int:
    """A run's seed as an int in :data:`SEED_RANGE`, else a one-line :class:`ConfigError`."""
    lo, hi = SEED_RANGE
    if isinstance(seed, bool) or not isinstance(seed, int) or not lo <= seed <= hi:
        raise ConfigError(f"{what} must be an integer from {lo} to {hi} (2**32 - 1), got {seed!r}")
    return seed


def path_component_problem(name: str) -> str | None:
    """Why ``name`` cannot be one folder name inside the output folder, or None.

    Run names become path components: a separator or ``..`` would write outside
    the folder the user chose, and a newline or other control character makes
    a folder no shell command or log line shows faithfully.
    """
    if not name:
        return "must not be empty"
    if name in (".", ".."):
        return f"cannot be {name!r}"
    if "/" in name or "\\" in name or os.sep in name:
        return "must be a single folder name, without '/' or '\\'"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "must not contain control characters such as a newline or a tab"
    return None


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


_POSITIVE_INTS = (
    "n_train_tasks",
    "n_eval_tasks",
    "latent_size",
    "net_size",
    "env_params.n_tasks",
    "env_params.max_episode_steps",
    "algo_params.meta_batch",
    "algo_params.batch_size",
    "algo_params.embedding_batch_size",
    "algo_params.embedding_mini_batch_size",
    "algo_params.max_path_length",
    "algo_params.num_evals",
    "algo_params.n_trj",
    "algo_params.replay_buffer_size",
)
_NON_NEGATIVE = (
    "algo_params.num_iterations",
    "algo_params.num_train_steps_per_itr",
    "algo_params.num_steps_per_eval",
    "algo_params.num_exp_traj_eval",
    "algo_params.c_iter",
    "util_params.gpu_id",
)


_POSITIVE_RATES = ("policy_lr", "qf_lr", "vf_lr", "context_lr", "c_lr", "reward_scale", "corro_temperature",
                   "corro_batch_size", "corro_negatives", "corro_cvae_hidden_size", "corro_cvae_latent_size",
                   "corro_cvae_lr", "unicorn_decoder_hidden_size", "unicorn_classifier_hidden_size")
_NON_NEGATIVE_WEIGHTS = ("alpha_lr", "kl_lambda", "z_loss_weight", "club_model_loss_weight", "club_loss_weight",
                         "alpha_init", "alpha_max", "policy_mean_reg_weight", "policy_std_reg_weight",
                         "policy_pre_activation_weight", "corro_loss_weight", "corro_cvae_kl_weight",
                         "unicorn_recon_weight", "unicorn_classifier_weight")
CORRO_NEGATIVES = ("cvae", "relabel")  # where CORRO's negatives' outcomes come from (rlkit/torch/objectives/corro.py)


def _numbers(tree: Mapping, prefix: str = "") -> Iterable[tuple[str, float]]:
    """Every float in the config with its dotted path (ints are always finite)."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _numbers(value, f"{prefix}{key}.")
        elif isinstance(value, float):
            yield f"{prefix}{key}", value


def _get(cfg: Config, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = node[part]
    return node


def validate(cfg: Config) -> Config:
    """Checks across keys (the per-key types are checked while merging)."""
    for path in _POSITIVE_INTS:
        if _get(cfg, path) == "auto":  # n_trj: resolved from the dataset when the run starts
            continue
        _need(_get(cfg, path) >= 1, f"{path} must be at least 1, got {_get(cfg, path)}")
    for path in _NON_NEGATIVE:
        _need(_get(cfg, path) >= 0, f"{path} must not be negative, got {_get(cfg, path)}")
    n_train, n_eval, n_tasks = cfg["n_train_tasks"], cfg["n_eval_tasks"], cfg["env_params"]["n_tasks"]
    _need(
        n_train + n_eval == n_tasks,
        f"n_train_tasks + n_eval_tasks must equal env_params.n_tasks: {n_train} + {n_eval} != {n_tasks}",
    )
    algo = cfg["algo_params"]
    _need(
        algo["mb_replace"] or algo["meta_batch"] <= n_train,
        f"algo_params.meta_batch ({algo['meta_batch']}) exceeds n_train_tasks ({n_train}); "
        "lower it or set algo_params.mb_replace=true",
    )
    # a bound, not a taste: a context is drawn from one task's buffer, and a larger one only multiplies the
    # updates per step (embedding_batch_size // embedding_mini_batch_size) into hours without a line of output
    _need(
        algo["embedding_batch_size"] <= algo["replay_buffer_size"],
        f"algo_params.embedding_batch_size ({algo['embedding_batch_size']}) exceeds algo_params.replay_buffer_size "
        f"({algo['replay_buffer_size']}), the most transitions a task's context is drawn from; lower it (the "
        "paper's configs use 100 to 1024)",
    )
    _need(
        not (algo["normalize_transition_z"] and algo["use_information_bottleneck"]),
        "algo_params.normalize_transition_z applies to the deterministic encoder; it cannot be combined with "
        "use_information_bottleneck (a Gaussian per transition): turn one of them off",
    )
    _need(
        algo["corro_negatives_from"] in CORRO_NEGATIVES,
        f"algo_params.corro_negatives_from must be one of {', '.join(CORRO_NEGATIVES)}, got "
        f"{algo['corro_negatives_from']!r}",
    )
    _need(
        algo["divergence_name"] in DIVERGENCES,
        f"algo_params.divergence_name must be one of {', '.join(DIVERGENCES)}, got {algo['divergence_name']!r}",
    )
    for key in ("train_epoch", "eval_epoch"):
        spec = algo[key]
        if spec == "auto":  # resolved from the dataset when the run starts (rlkit.data.selection)
            continue
        if isinstance(spec, list):
            _need(spec[2] > 0, f"algo_params.{key} step must be positive, got {spec}")
        _need(min(epoch_range(spec), default=-1) >= 0, f"algo_params.{key} selects no checkpoint: {spec}")
    _need(not algo["recurrent"], "algo_params.recurrent: the recurrent context encoder is not implemented (the "
          "paper's results use the permutation-invariant MLP encoder); set it to false")
    for key in ("save_replay_buffer", "save_algorithm", "save_environment"):
        _need(not algo[key], f"algo_params.{key}: snapshots hold networks, optimizers and counters only "
                             "(replay buffers, algorithm objects and envs are rebuilt from the config); set it to false")
    _need(not cfg["util_params"]["docker"], "util_params.docker is not supported; set it to false")
    dtype = cfg["util_params"].get("dtype", "float32")  # a copied default.py may predate the key
    _need(dtype in COMPUTE_DTYPES,
          f"util_params.dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")
    _need(algo["discount"] >= 0 and algo["discount"] <= 1, f"algo_params.discount must be in [0, 1], got {algo['discount']}")
    for path, value in _numbers(cfg):
        _need(math.isfinite(value), f"{path} must be a finite number, got {value}")
    for key in _POSITIVE_RATES:
        _need(algo[key] > 0, f"algo_params.{key} must be positive, got {algo[key]}")
    for key in _NON_NEGATIVE_WEIGHTS:
        _need(algo[key] >= 0, f"algo_params.{key} must not be negative, got {algo[key]}")
    _need(0 < algo["soft_target_tau"] <= 1, f"algo_params.soft_target_tau must be in (0, 1], got {algo['soft_target_tau']}")
    _need(bool(cfg["env_name"]), "env_name must not be empty")
    problem = path_component_problem(cfg["util_params"]["exp_name"])
    _need(problem is None, f"util_params.exp_name {problem}, got {cfg['util_params']['exp_name']!r}")
    return cfg


def save_config(cfg: Mapping, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as JSON atomically, so a crash never leaves a half-written variant.json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(cfg, indent=2, default=json_default) + "\n"
    atomic_write_text(path, text)
    return path


def json_default(obj: Any) -> Any:
    """``json.dumps`` hook: paths as strings, numpy/torch scalars and arrays as lists/numbers."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, 0-d tensors
        return obj.tolist()
    raise TypeError(f"config value {obj!r} of type {type(obj).__name__} is not JSON serialisable")


def exit_on_config_error(exc: ConfigError) -> None:
    """The CLI convention: ``error: <message>`` on stderr, exit status 2."""
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(2)


@cli
def main(argv: list[str] | None = None) -> int:
    """``python -m rlkit.config CONFIG.json [KEY=VALUE ...]`` prints the resolved config."""
    import argparse

    parser = argparse.ArgumentParser(prog=usage_name("rlkit.config"), description=main.__doc__)
    parser.add_argument("config", help="configs/ENV.json")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        exit_on_config_error(exc)
    print(json.dumps(cfg, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
