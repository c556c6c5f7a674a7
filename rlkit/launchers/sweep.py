"""Sweeps: one meta-training run per (config, seed), in this process or as Ray tasks.

``launch_experiment.py CONFIG [CONFIG ...] --seeds 0,1,2 [--ray [ADDRESS]]``.
Each run writes exactly the directory ``--seed N`` alone would
(``BASE/ENV/EXP_NAME/seedN``) and is decided on its own when it starts:

* finished: its newest snapshot that loads is of the last iteration
  (``num_iterations - 1`` of the config as given now): skipped;
* started: it holds a snapshot or a progress row: resumed, as ``--resume``;
* new: started from scratch.

So running the same sweep again continues what was interrupted and skips what
is done; raising ``algo_params.num_iterations`` extends every run. Any other
change of settings is refused before any run starts, naming the run and the
keys (:func:`refuse_changed_settings`): a finished run is never counted for
settings it did not run with, and no run mixes two configurations. The way
out is another ``--exp_name``, or ``--restart``, which moves every existing
run folder of the sweep aside (never deleting it) and starts them over. A run
that fails is reported in one line (config, seed, why) and the others go on;
the exit status is 1 when any failed.

**Grids.** An override with several comma-separated values,
``algo_params.club_loss_weight=10,25``, is an axis of a grid: the sweep runs
the product of all axes with the configs and seeds. Each grid point writes its
own experiment folder, ``EXP_NAME__club_loss_weight=10`` (the keys it varies,
``algo_params.`` left out, and their values), so ``rlkit.plot`` on the env
folder draws one curve per setting and a rerun checks each point against its
own runs. A string-valued key (a path, a name) keeps its commas; a list-valued
key is an axis only when its values are bracketed (``train_epoch=[..],[..]``).
An axis is refused when two of its values are one setting once the config
schema types them (``latent_size=5,5.0``: two folders of the same runs), and
when its key is given again (``latent_size=6,7 latent_size=9`` would drop the 9).

With ``--ray`` each run is a Ray task with ``--cpus-per-run`` CPUs and
``--gpus-per-run`` GPUs (a fraction shares one). Without ADDRESS a local Ray
instance is started; with one, the workers need this checkout and the same
paths (config, data and output folders) as the driver: a shared file system.
Workers run in the driver's working directory, so relative paths in the
config mean the same as in a local run.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from rlkit.config import Config, ConfigError, check_seed
from rlkit.core.logger import START_OVER, holds_a_run, newest_loadable_snapshot
from rlkit.errors import UserError, describe, interrupt_behind
from rlkit.launchers.meta_train import (TrainingDiverged, load_run_config, run_directory, run_experiment,
                                        run_settings_drift)

MISSING_RAY = "--ray needs Ray: pip install 'ray[default]' (or pip install 'csro[ray]')"


class SweepError(UserError, ValueError):
    """A sweep that cannot start as asked (bad --seeds, clashing run directories, resources)."""


@dataclass
class SweepRun:
    """One (config, grid point, seed) of a sweep with its resolved config."""

    config: str
    seed: int
    cfg: Config = field(repr=False)
    point: str = ""  # the grid point's settings, e.g. "club_loss_weight=10" ("" without a grid)

    @property
    def label(self) -> str:
        return f"{self.config}{' ' + self.point if self.point else ''} seed {self.seed}"

    @property
    def run_dir(self) -> Path:
        return run_directory(self.cfg, self.seed)


@dataclass
class Outcome:
    """What became of one run: ``done``, ``skipped`` (finished before) or ``failed`` (with a one-line reason)."""

    label: str
    status: str
    message: str = ""
    seconds: float = 0.0
    run_dir: str = ""


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: distinct integers in rlkit.config.SEED_RANGE."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise SweepError(f"--seeds must be comma-separated integers like 0,1,2, got {text!r}") from None
    try:
        for s in seeds:
            check_seed(s, "each of --seeds")
    except ConfigError as exc:
        raise SweepError(str(exc)) from None
    if len(set(seeds)) != len(seeds):
        raise SweepError(f"--seeds lists a seed twice: {text!r}")
    return seeds


def split_values(raw: str) -> list[str]:
    """``"10,25"`` -> ``["10", "25"]``: commas outside brackets and quotes separate values."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(raw):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(raw[start:i].strip())
            start = i + 1
    parts.append(raw[start:].strip())
    return parts


def _default_of(key: str):
    from rlkit.config import load_defaults

    node: object = load_defaults()[0]
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _same_values(key: str, values: list[str]) -> tuple[str, str, str] | None:
    """Two of an axis's values that are one setting once typed by the config schema (``5`` and ``5.0``
    of an integer key, ``true`` and ``1`` of a boolean): (first, second, the value as JSON), or None.

    A value the schema refuses is compared as written: :func:`load_config` reports it in its own words.
    """
    import json

    from rlkit.config import typed_value

    seen: dict[str, str] = {}
    for raw in values:
        try:
            typed = json.dumps(typed_value(key, raw), sort_keys=True)
        except ConfigError:
            typed = f"raw:{raw}"
        if typed in seen:
            return seen[typed], raw, typed.removeprefix("raw:")
        seen[typed] = raw
    return None


def grid_axes(overrides: list[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(fixed overrides, grid axes ``(key, values)``) of a command's ``KEY=VALUE`` overrides.

    Refused in one line, because the sweep would not run what was typed: an axis listing one setting
    twice (two folders of the same runs), and an axis's key given again (the later value was dropped).
    """
    from rlkit.config import parse_override

    fixed, axes, given = [], [], {}
    for text in overrides:
        key, raw = parse_override(text)
        given.setdefault(key, []).append(text)
        values = split_values(raw)
        default = _default_of(key)
        is_axis = len(values) > 1 and not isinstance(default, str) and not (
            isinstance(default, list) and not all(v.startswith("[") for v in values))
        if not is_axis:
            fixed.append(text)
            continue
        if any(not v for v in values):
            raise SweepError(f"{text!r}: a grid needs a value between every two commas, e.g. {key}=10,25")
        same = _same_values(key, values)
        if same is not None:
            a, b, value = same
            what = f"{a}" if a == b else f"{a} and {b} are both {key}={value}"
            raise SweepError(f"{text!r} lists a value twice: {what}; give each setting once")
        if key in [k for k, _ in axes]:
            raise SweepError(f"{key} is given twice as a grid; give its values once, comma-separated")
        axes.append((key, values))
    for key, _ in axes:
        if len(given[key]) > 1:
            raise SweepError(f"{key} is given twice ({', '.join(given[key])}): a grid's key takes all its values "
                             f"in one override, e.g. {key}=" + ",".join(v for t in given[key]
                                                                         for v in split_values(t.partition('=')[2])))
    return fixed, axes


_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]")


def grid_points(axes: list[tuple[str, list[str]]]) -> list[tuple[list[str], str]]:
    """Every combination: (its overrides, its folder suffix ``key=value__key=value``)."""
    points = []
    for combo in itertools.product(*[[(k, v) for v in vs] for k, vs in axes]):
        overrides = [f"{k}={v}" for k, v in combo]
        name = "__".join(f"{k.removeprefix('algo_params.')}={_UNSAFE.sub('_', v)}" for k, v in combo)
        points.append((overrides, name))
    return points or [([], "")]


def plan_sweep(configs: list[str], seeds: list[int], overrides: list[str] = ()) -> list[SweepRun]:
    """Every (config, grid point, seed) run, configs loaded and checked first: a bad one stops the sweep
    before any run."""
    fixed, axes = grid_axes(list(overrides))
    runs = []
    for c in configs:
        base = load_run_config(c, fixed)
        for point, name in grid_points(axes):
            extra = [f"util_params.exp_name={base['util_params']['exp_name']}__{name}"] if name else []
            cfg = load_run_config(c, fixed + point + extra)
            runs += [SweepRun(str(c), int(s), cfg, name.replace("__", " ")) for s in seeds]
    owner: dict[Path, SweepRun] = {}
    for run in runs:
        key = run.run_dir.resolve()
        if key in owner:
            raise SweepError(f"{owner[key].label} and {run.label} would both write {run.run_dir}; "
                             "give the configs different util_params.exp_name")
        owner[key] = run
    return runs


def inspect_run(cfg: Config, seed: int) -> tuple[str, list[str]]:
    """(``finished`` / ``started`` / ``new``, how ``cfg`` differs from the settings the run was made with)."""
    run_dir = run_directory(cfg, seed)
    if not run_dir.is_dir() or not holds_a_run(run_dir):
        return "new", []
    _, state, _ = newest_loadable_snapshot(run_dir)
    drift = run_settings_drift(run_dir, cfg, state)
    if state is not None and int(state.get("iteration", -1)) >= cfg["algo_params"]["num_iterations"] - 1:
        return "finished", drift
    return "started", drift


def run_state(cfg: Config, seed: int) -> str:
    """``finished``, ``started`` or ``new`` (see the module docstring)."""
    return inspect_run(cfg, seed)[0]


def _changed_message(run: SweepRun, drift: list[str]) -> str:
    return f"{run.label}: {run.run_dir} was made with other settings ({'; '.join(drift)})"


def refuse_changed_settings(runs: list[SweepRun]) -> dict[str, str]:
    """Check every run against its folder before any starts; returns each run's state by label.

    One run refused means the sweep is: starting the others would leave one
    experiment folder holding seeds of two configurations.
    """
    states, refused = {}, []
    for run in runs:
        states[run.label], drift = inspect_run(run.cfg, run.seed)
        if drift:
            refused.append(_changed_message(run, drift))
    if refused:
        more = f" (and {len(refused) - 1} more run(s) likewise)" if len(refused) > 1 else ""
        raise SweepError(f"{refused[0]}{more}; only algo_params.num_iterations may grow. Restore those settings, "
                         f"or {START_OVER}")
    return states


def execute(cfg: Config, seed: int, label: str, gpu: int | None = None, restart: bool = False) -> Outcome:
    """Run, resume or skip one run; never raises for a failed run (a KeyboardInterrupt still stops).

    ``restart``: an existing run is moved aside and started over (never skipped or resumed).
    """
    t0 = time.perf_counter()
    try:
        run_dir = run_directory(cfg, seed)
        if restart:
            out = run_experiment(cfg, seed, gpu=gpu, restart=True)
            return Outcome(label, "done", "", time.perf_counter() - t0, str(out))
        state, drift = inspect_run(cfg, seed)
        if state == "finished":
            if drift:  # refused up front by the launcher; checked again for callers of this function
                return Outcome(label, "failed", f"{run_dir} was made with other settings ({'; '.join(drift)}); "
                               f"{START_OVER}", run_dir=str(run_dir))
            return Outcome(label, "skipped", "finished before", run_dir=str(run_dir))
        resume = str(run_dir) if state == "started" else None
        out = run_experiment(cfg, seed, gpu=gpu, resume=resume)  # a resume checks the settings itself
        return Outcome(label, "done", "resumed" if resume else "", time.perf_counter() - t0, str(out))
    except (UserError, OSError, TrainingDiverged) as exc:
        why = describe(exc)
    except SystemExit as exc:  # rlkit.errors.fail printed its message already
        why = exc.code if isinstance(exc.code, str) else "stopped (see the error above)"
    except Exception as exc:  # a bug: keep its traceback for the report, and go on with the other runs
        if interrupt_behind(exc) is not None:  # Ctrl-C cut a write short (torch.save): stop, as Ctrl-C does
            raise interrupt_behind(exc) from None
        traceback.print_exc()
        why = f"{type(exc).__name__}: {describe(exc)}"
    return Outcome(label, "failed", why, time.perf_counter() - t0)


def _say_outcome(outcome: Outcome, index: int, n: int) -> None:
    head = f"sweep [{index}/{n}] {outcome.label}"
    if outcome.status == "failed":
        print(f"{head} failed: {outcome.message}", file=sys.stderr, flush=True)
    elif outcome.status == "skipped":
        print(f"{head}: finished before, skipped ({outcome.run_dir})", flush=True)
    else:
        how = " (resumed)" if outcome.message == "resumed" else ""
        print(f"{head}: done{how} in {outcome.seconds:.1f} s ({outcome.run_dir})", flush=True)


def run_sequential(runs: list[SweepRun], gpu: int | None = None, restart: bool = False) -> list[Outcome]:
    """The runs one after another in this process."""
    outcomes = []
    for i, run in enumerate(runs):
        print(f"sweep [{i + 1}/{len(runs)}] {run.label} -> {run.run_dir}", flush=True)
        outcomes.append(execute(run.cfg, run.seed, run.label, gpu, restart))
        _say_outcome(outcomes[-1], i + 1, len(runs))
    return outcomes


def _ray_execute(cfg: Config, seed: int, label: str, cwd: str, use_gpu: bool, threads: int,
                 restart: bool = False) -> Outcome:
    """One run on a Ray worker, in the driver's working directory, on the GPU Ray assigned (if any)."""
    import torch

    old = os.getcwd()
    try:
        os.chdir(cwd)
    except OSError as exc:
        import socket

        return Outcome(label, "failed", f"the Ray worker on {socket.gethostname()} cannot enter {cwd} "
                       f"({exc.strerror or exc}); a Ray cluster needs the driver's folders on every node")
    try:
        torch.set_num_threads(max(1, threads))
        return execute(cfg, seed, label, gpu=0 if use_gpu else None, restart=restart)  # Ray sets CUDA_VISIBLE_DEVICES
    finally:
        os.chdir(old)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SweepError(MISSING_RAY) from None
    return ray


def run_on_ray(runs: list[SweepRun], address: str | None = None, cpus_per_run: float = 1,
               gpus_per_run: float = 0, restart: bool = False,
               states: dict[str, str] | None = None) -> list[Outcome]:
    """The runs as Ray tasks, ``cpus_per_run`` / ``gpus_per_run`` each; results in the order of ``runs``.

    ``address`` None starts a local instance with this machine's CPUs (and
    GPUs); an already initialized Ray is used as it is, and left running.
    Runs ``states`` (from :func:`refuse_changed_settings`) marks finished are
    skipped in the driver: a sweep with nothing left to do never starts Ray.
    """
    if not cpus_per_run > 0:
        raise SweepError(f"--cpus-per-run must be positive, got {cpus_per_run}")
    if not gpus_per_run >= 0:
        raise SweepError(f"--gpus-per-run must not be negative, got {gpus_per_run}")
    done = set() if restart or states is None else {r.label for r in runs if states.get(r.label) == "finished"}
    outcomes: list[Outcome | None] = [Outcome(r.label, "skipped", "finished before", run_dir=str(r.run_dir))
                                      if r.label in done else None for r in runs]
    for i, outcome in enumerate(o for o in outcomes if o is not None):
        _say_outcome(outcome, i + 1, len(runs))
    todo = [i for i, o in enumerate(outcomes) if o is None]
    if not todo:
        return [o for o in outcomes if o is not None]
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        if address is None:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=True)
        else:
            ray.init(address=address, log_to_driver=True)
        started = True
    try:
        resources = ray.cluster_resources()
        for what, need, key in (("CPU", cpus_per_run, "CPU"), ("GPU", gpus_per_run, "GPU")):
            have = float(resources.get(key, 0))
            if need > have:
                raise SweepError(f"each run asks for {need:g} {what}(s) (--{what.lower()}s-per-run) but the Ray "
                                 f"cluster has {have:g}; ask for at most {have:g}")
        remote = ray.remote(_ray_execute).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run)
        cwd = os.getcwd()
        print(f"sweep: {len(todo)} run(s) on Ray ({int(resources.get('CPU', 0))} CPU(s), "
              f"{resources.get('GPU', 0):g} GPU(s)); {cpus_per_run:g} CPU(s) and {gpus_per_run:g} GPU(s) per run",
              flush=True)
        pending = {remote.remote(runs[i].cfg, runs[i].seed, runs[i].label, cwd, gpus_per_run > 0,
                                 max(1, int(cpus_per_run)), restart): i for i in todo}
        finished = len(runs) - len(todo)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # the worker died (after Ray's retries) or the task could not start
                    outcome = Outcome(runs[i].label, "failed", f"{type(exc).__name__}: {describe(exc)}")
                outcomes[i] = outcome
                finished += 1
                _say_outcome(outcome, finished, len(runs))
        return [o for o in outcomes if o is not None]
    finally:
        if started:
            ray.shutdown()


def summarize(outcomes: list[Outcome]) -> int:
    """Print one summary line (and the failed runs); the exit status: 1 if any run failed, else 0."""
    count = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    print(f"sweep: {len(outcomes)} run(s): {count['done']} done, {count['skipped']} finished before, "
          f"{count['failed']} failed", flush=True)
    for o in outcomes:
        if o.status == "failed":
            print(f"sweep: failed: {o.label}: {o.message}", file=sys.stderr, flush=True)
    return 1 if count["failed"] else 0
