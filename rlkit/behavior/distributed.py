"""``policy_train.py --ray [ADDRESS]``: task groups of a generation job as Ray tasks.

The job's tasks are cut into ``groups`` contiguous groups; each group is one
:class:`~rlkit.behavior.generate.GenerationJob` (same env, SAC config, seed and
dataset folder, its own tasks) trained by one Ray task on one worker: one GPU
per group when the job runs on CUDA and the cluster has GPUs, else one CPU.
Without an address a local Ray instance is started (all CPUs of this machine).

Getting the data to the driver's ``data_dir``:

* ``shared_fs=True`` (default for a local Ray instance): the workers see the
  driver's folder (same machine, or a cluster that mounts the same path) and
  write into it directly. Several writers sharing a dataset folder is what the
  native format's lock file is for; each group keeps its own resume state
  (``_generator/state_{tag}.pt``), so a killed run restarted with the same
  command resumes every group.
* ``shared_fs=False`` (default with an ADDRESS unless ``--ray-shared-fs``): each
  worker generates into a folder of its own node (``worker_root``, default the
  system temp dir) and streams the results back when its group is done:
  episodes of every (task, checkpoint), which the driver re-writes with
  :meth:`rlkit.data.DatasetWriter.write_checkpoint` (so ``dataset.json`` is
  the driver's own), the policy weights, the legacy-layout files and the
  return log. A group whose worker dies is retried by Ray; on the same node it
  resumes from its local resume state, elsewhere it starts over (generation is
  seeded by (seed, step), so it writes the same data). ``--eval`` ships the
  weights and stored episodes a group needs to its worker and gathers the
  regenerated checkpoints back.

A group that finished is recorded in ``_generator/ray_done_{tag}.json``; running
the same command again skips it (as long as its files are all present).

Ray is optional: ``pip install 'ray[default]'``. The workers import this
package, so a remote cluster needs the same ``csro`` checkout installed on
every node (or pass ``runtime_env={"py_modules": [...]}``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from rlkit.behavior.generate import STATE_DIR, GenerationJob, task_ids_text, weights_path
from rlkit.errors import fail
from rlkit.fileio import atomic_write_text

MISSING_RAY = "error: --ray needs Ray: pip install 'ray[default]'"


class GroupError(RuntimeError):
    """A task group failed on its worker for a reason retrying will not fix (one-line message)."""


# ---------------------------------------------------------------------------- planning


def split_groups(tasks: list[int], groups: int) -> list[list[int]]:
    """``tasks`` cut into ``groups`` contiguous groups, sizes differing by at most one (larger first)."""
    tasks = list(tasks)
    groups = int(groups)
    if groups < 1:
        fail(f"--groups must be >= 1, got {groups}")
    if groups > len(tasks):
        fail(f"--groups {groups} but the job has only {len(tasks)} task(s); "
                         f"use at most {len(tasks)} groups")
    per, extra = divmod(len(tasks), groups)
    out, start = [], 0
    for g in range(groups):
        n = per + (g < extra)
        out.append(tasks[start:start + n])
        start += n
    return out


def group_resources(resources: dict, n_groups: int, use_gpu: bool) -> dict:
    """Ray resources of one task group: the cluster's CPUs shared out (env stepping is CPU work),
    and with GPUs a fraction of one, so that several groups share a GPU that one group cannot fill."""
    n = max(1, n_groups)
    options = {"num_cpus": max(1, int(resources.get("CPU", 1)) // n)}
    if use_gpu:
        gpus = float(resources.get("GPU", 0))
        options["num_gpus"] = min(1.0, gpus / n) if gpus >= 1 else 1.0
    return options


def default_groups(n_tasks: int, resources: dict, use_gpu: bool) -> int:
    """One group per GPU of the cluster (CUDA jobs), else per two CPUs; at most one per task."""
    if use_gpu and resources.get("GPU", 0) >= 1:
        n = int(resources["GPU"])
    else:
        n = int(resources.get("CPU", 1)) // 2
    return max(1, min(n, n_tasks))


def group_jobs(job: GenerationJob, groups: int) -> list[GenerationJob]:
    """One job per task group: a copy of ``job`` with the group's tasks and no progress bar."""
    return [dataclasses.replace(job, tasks=list(ts), progress=False, env_params=dict(job.env_params),
                                extra_config=dict(job.extra_config))
            for ts in split_groups(job.tasks, groups)]


def _marker_path(job: GenerationJob) -> Path:
    return Path(job.data_dir) / STATE_DIR / f"ray_done_{job.tag}.json"


def _marker(job: GenerationJob) -> dict:
    return {"tasks": list(job.tasks), "seed": job.seed, "env_name": job.env_name,
            "generator_config": json.loads(json.dumps(job.generator_config()))}


def _group_complete(job: GenerationJob, writer) -> bool:
    """True if an earlier ``--ray`` run finished this group with this config and its files are all there."""
    path = _marker_path(job)
    try:
        if json.loads(path.read_text()) != _marker(job):
            return False
    except (OSError, ValueError):
        return False
    cfg = job.sac
    steps = job.checkpoint_steps()
    n_det, n_sto = int(cfg.num_eval_episodes), int(cfg.num_eval_sample_episodes)
    for task in job.tasks:
        for step in steps:
            if not weights_path(Path(job.data_dir), task, step).exists():
                return False
            if writer is not None:
                if not writer.has_checkpoint(task, step, n_deterministic=n_det, n_sampled=n_sto):
                    return False
            else:
                from rlkit.data.legacy import legacy_filename, legacy_task_dirname

                d = Path(job.data_dir) / legacy_task_dirname(task)
                names = [legacy_filename(k, step, False) for k in range(n_det)]
                names += [legacy_filename(k, step, True) for k in range(n_sto)]
                if not all((d / n).exists() for n in names):
                    return False
    return True


def open_driver_writer(job: GenerationJob):
    """The driver's :class:`DatasetWriter` for ``job`` (None for the legacy layout).

    Opened with the same arguments the generator uses, so a folder that holds a
    dataset of another configuration is refused before any worker starts.
    """
    if job.legacy_layout:
        Path(job.data_dir).mkdir(parents=True, exist_ok=True)
        return None
    from rlkit.behavior.generate import _jsonable
    from rlkit.data import DatasetWriter
    from rlkit.envs import make_env

    probe = make_env(job.env_name, **job.env_params)
    task_params = [_jsonable(probe.task_params(i)) for i in range(probe.n_tasks)]
    return DatasetWriter(job.data_dir, job.env_name, job.env_params, task_params,
                         probe.observation_space.shape[0], probe.action_space.shape[0], job.generator_config())


# ---------------------------------------------------------------------------- worker side


def _worker_dir(job: GenerationJob, driver_key: str, regenerate: bool, worker_root: str | None) -> Path:
    key = hashlib.sha1(json.dumps([driver_key, job.tag, regenerate]).encode()).hexdigest()[:12]
    return Path(worker_root or tempfile.gettempdir()) / "csro-ray" / f"{job.env_name}-{key}"


def _files_under(root: Path, rel_dir: str) -> Iterator[str]:
    base = root / rel_dir
    if not base.is_dir():
        return
    for p in sorted(base.rglob("*")):
        if p.is_file() and not p.name.startswith("."):  # dot files: atomic writes' temp files
            yield p.relative_to(root).as_posix()


def _weight_dirs(tasks: list[int]) -> list[str]:
    return [weights_path(Path("."), t, 0).parent.as_posix() for t in tasks]


def _unpack(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _gather_items(job: GenerationJob, root: Path, regenerate: bool, sent_sha: dict[str, str]) -> Iterator[tuple]:
    """What a gathering worker sends back from its local folder ``root``."""
    from rlkit.data import read_checkpoint_episodes, read_metadata
    from rlkit.data.legacy import legacy_task_dirname, parse_legacy_filename

    if not regenerate:  # --eval leaves the weights as they are
        for d in _weight_dirs(job.tasks):
            for rel in _files_under(root, d):
                yield ("file", rel, (root / rel).read_bytes())
    if job.legacy_layout:
        for t in job.tasks:
            for rel in _files_under(root, legacy_task_dirname(t)):
                parsed = parse_legacy_filename(Path(rel).name)
                if parsed is not None and (parsed[0] or not regenerate):
                    yield ("file", rel, (root / rel).read_bytes())
    else:
        meta = read_metadata(root)
        wanted = set(job.tasks)
        for rel, entry in sorted(meta["files"].items(), key=lambda kv: (kv[1]["task"], kv[1]["step"])):
            if int(entry["task"]) in wanted and sent_sha.get(rel) != entry["sha256"]:
                eps = read_checkpoint_episodes(root, int(entry["task"]), int(entry["step"]))
                yield ("checkpoint", int(entry["task"]), int(entry["step"]), entry["sha256"], eps)
    log = root / STATE_DIR / "returns.csv"
    if log.exists() and not regenerate:
        rows = log.read_text().splitlines()[1:]
        if rows:
            yield ("returns", rows)


def run_group(job: GenerationJob, label: str, *, regenerate: bool = False, gather: bool = False,
              use_gpu: bool = False, inputs: dict[str, bytes] | None = None, driver_key: str = "",
              worker_root: str | None = None, keep_worker_dir: bool = False) -> Iterator[tuple]:
    """The body of one Ray task (a generator: Ray streams its items to the driver).

    Trains (or with ``regenerate`` re-samples) ``job``'s tasks, into ``job.data_dir``
    or, with ``gather``, into a folder of this node whose results it then yields:
    ``("file", relpath, bytes)``, ``("checkpoint", task, step, sha256, episodes)``,
    ``("returns", csv_rows)``; last ``("done", summary)``.
    """
    from rlkit.behavior.generate import BehaviourPolicyGenerator, regenerate_sampled

    t0 = time.perf_counter()
    host = socket.gethostname()
    if use_gpu:
        import torch

        if not torch.cuda.is_available():
            raise GroupError(f"Ray gave this task a GPU but torch sees none on {host}")
        job = dataclasses.replace(job, device="cuda:0")  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPU
    root = _worker_dir(job, driver_key, regenerate, worker_root) if gather else Path(job.data_dir)
    if gather:
        if regenerate:
            shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        _unpack(root, inputs or {})
        job = dataclasses.replace(job, data_dir=root)
    print(f"{label}: {'regenerating' if regenerate else 'training'} tasks {task_ids_text(job.tasks)} "
          f"on {host} ({job.device}){' into ' + str(root) if gather else ''}", flush=True)
    sent_sha = {}
    if gather and regenerate and not job.legacy_layout and (root / "dataset.json").exists():
        from rlkit.data import read_metadata

        sent_sha = {rel: e["sha256"] for rel, e in read_metadata(root)["files"].items()}
    try:
        if regenerate:
            n = regenerate_sampled(job)
        else:
            BehaviourPolicyGenerator(job).run()
            n = len(job.checkpoint_steps())
    except BaseException as exc:
        if gather and regenerate:  # nothing to resume: --eval starts over
            shutil.rmtree(root, ignore_errors=True)
        if isinstance(exc, SystemExit):  # a SystemExit would kill the worker and make Ray retry the group
            raise GroupError(str(exc)) from None
        raise
    if gather:
        # a failure from here on keeps the folder: a retry on this node resumes from it
        yield from _gather_items(job, root, regenerate, sent_sha)
        if regenerate or not keep_worker_dir:
            shutil.rmtree(root, ignore_errors=True)
    seconds = time.perf_counter() - t0
    print(f"{label}: done in {seconds:.1f} s", flush=True)
    yield ("done", {"tasks": list(job.tasks), "checkpoints": n, "seconds": seconds, "host": host,
                    "device": job.device})


def run_group_list(job: GenerationJob, label: str, **kwargs) -> list[tuple]:
    """:func:`run_group`'s items as one list (Ray Client cannot stream a generator task's items)."""
    return list(run_group(job, label, **kwargs))


# ---------------------------------------------------------------------------- driver side


def _eval_inputs(job: GenerationJob) -> dict[str, bytes]:
    """What a gathering ``--eval`` worker needs from the driver's folder: weights and stored episodes."""
    root = Path(job.data_dir)
    files = {rel: (root / rel).read_bytes() for d in _weight_dirs(job.tasks) for rel in _files_under(root, d)}
    if not job.legacy_layout and (root / "dataset.json").exists():
        from rlkit.data import read_metadata

        meta = read_metadata(root)
        wanted = set(job.tasks)
        kept = {rel: e for rel, e in meta["files"].items() if int(e["task"]) in wanted}
        for rel in kept:
            files[rel] = (root / rel).read_bytes()
        meta["files"] = kept
        files["dataset.json"] = json.dumps(meta).encode()
    return files


class _Gatherer:
    """Writes what gathering workers send into the driver's dataset folder."""

    def __init__(self, job: GenerationJob, writer):
        self.root = Path(job.data_dir)
        self.writer = writer
        self.written = self.unchanged = 0

    def handle(self, item: tuple) -> None:
        from rlkit.data._io import atomic_write_bytes

        kind = item[0]
        if kind == "file":
            _, rel, data = item
            path = self.root / rel
            if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
                self.unchanged += 1
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
            self.written += 1
        elif kind == "checkpoint":
            _, task, step, sha, episodes = item
            entry = self.writer.metadata()["files"].get(_relpath(task, step)) if self.writer else None
            if entry is not None and entry["sha256"] == sha and self.writer.has_checkpoint(task, step):
                self.unchanged += 1
                return
            self.writer.write_checkpoint(task, step, episodes)
            self.written += 1
        elif kind == "returns":
            log = self.root / STATE_DIR / "returns.csv"
            log.parent.mkdir(parents=True, exist_ok=True)
            new = not log.exists()
            with open(log, "a") as f:
                if new:
                    f.write("step,task,deterministic_return,sampled_return\n")
                f.write("\n".join(item[1]) + "\n")


def _relpath(task: int, step: int) -> str:
    from rlkit.data import checkpoint_relpath

    return checkpoint_relpath(task, step)


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, GroupError) else f"{type(exc).__name__}: {text}"


def _client_mode() -> bool:
    """Connected through Ray Client (``ray://``)?"""
    try:
        from ray.util.client import ray as client_ray

        return bool(client_ray.is_connected())
    except Exception:
        return False


def _import_ray():
    try:
        import ray
    except ImportError:
        raise SystemExit(MISSING_RAY) from None
    return ray


def _claim_at_driver(job: GenerationJob) -> None:
    """Gathering mode: refuse (or with ``--restart`` move aside) a group's tasks that already have
    checkpoints in the driver's folder (:func:`~rlkit.behavior.generate.claim_tasks`, as a generator does
    on a shared folder); the gathered files would otherwise replace them."""
    from rlkit.behavior.generate import claim_tasks

    claim = Path(job.data_dir) / STATE_DIR / f"ray_claim_{job.tag}.json"
    if not job.restart:
        try:
            if json.loads(claim.read_text()) == _marker(job):
                return  # this group's own files, from a gather that was interrupted: it goes on
        except (OSError, ValueError):
            pass
    claim_tasks(job)
    claim.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(claim, json.dumps(_marker(job)))


def run_with_ray(job: GenerationJob, address: str | None = None, groups: int | None = None, *,
                 regenerate: bool = False, shared_fs: bool | None = None, worker_root: str | None = None,
                 keep_worker_dirs: bool = False, runtime_env: dict | None = None,
                 verbose: bool = True) -> list[dict]:
    """Run ``job`` as ``groups`` Ray tasks and leave the dataset in ``job.data_dir``.

    Args:
        job: the whole job (all its tasks); ``job.data_dir`` is the driver's folder.
        address: a Ray cluster (``ray://host:10001``, ``host:6379``, ``auto``), or
            None for a local instance with this machine's CPUs (and GPUs). An
            already initialized Ray (``ray.is_initialized()``) is used as it is.
        groups: number of task groups (contiguous); default one per GPU of the
            cluster for CUDA jobs, else one per two CPUs, at most one per task.
        regenerate: ``--eval``: re-sample the stochastic episodes of saved checkpoints.
        shared_fs: workers write straight into ``job.data_dir``. Default: True
            without an address, False with one (results are gathered instead).
        worker_root: where gathering workers keep their local folder
            (default: the node's temp dir); kept after a failure so a retry on
            the same node resumes, removed after success unless ``keep_worker_dirs``.
        runtime_env: passed to ``ray.init`` (e.g. ``{"py_modules": [...]}``).

    Returns one summary dict per group (tasks, checkpoints, seconds, host, device,
    skipped). Raises SystemExit naming the failed groups after the others finish.
    """
    ray = _import_ray()
    if not job.tasks:
        raise SystemExit("error: the job has no tasks")
    if groups is not None:
        split_groups(job.tasks, groups)  # a bad --groups is an error before Ray starts
    if shared_fs is None:
        shared_fs = address is None
    job = dataclasses.replace(job, data_dir=Path(job.data_dir).expanduser().resolve())
    writer = open_driver_writer(job)  # refuses a folder of another configuration before any work

    started = False
    if not ray.is_initialized():
        if address is None:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=True,
                     runtime_env=runtime_env)
        else:
            ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
        started = True
    try:
        return _dispatch(ray, job, writer, groups, regenerate, shared_fs, worker_root, keep_worker_dirs, verbose)
    finally:
        if started:
            ray.shutdown()


def _dispatch(ray, job, writer, groups, regenerate, shared_fs, worker_root, keep_worker_dirs, verbose) -> list[dict]:
    say = print if verbose else (lambda *a, **k: None)
    resources = ray.cluster_resources()
    wants_gpu = str(job.device).startswith("cuda")
    use_gpu = wants_gpu and resources.get("GPU", 0) >= 1
    if wants_gpu and not use_gpu:
        say(f"note: the job asks for {job.device} but the Ray cluster has no GPU; the groups run on CPUs")
    n_groups = groups if groups is not None else default_groups(len(job.tasks), resources, use_gpu)
    jobs = group_jobs(job, n_groups)
    if not use_gpu:
        jobs = [dataclasses.replace(j, device="cpu") for j in jobs]
    gather = not shared_fs
    say(f"ray: {len(jobs)} task group(s) of tasks {task_ids_text(job.tasks)} on {int(resources.get('CPU', 0))} "
        f"CPU(s), {int(resources.get('GPU', 0))} GPU(s); "
        + ("gathering results into " if gather else "workers write into ") + str(job.data_dir))

    results: list[dict | None] = [None] * len(jobs)
    if not regenerate:
        for i, j in enumerate(jobs):
            if not j.restart and _group_complete(j, writer):
                results[i] = {"tasks": j.tasks, "checkpoints": 0, "seconds": 0.0, "host": None,
                              "device": None, "skipped": True}
                say(f"ray: group {i + 1}/{len(jobs)} (tasks {task_ids_text(j.tasks)}) is complete; skipped")

    if gather and not regenerate:
        # the driver writes what the workers send back: the check a worker makes on a shared folder is
        # made here, before any work
        for i, j in enumerate(jobs):
            if results[i] is None:
                _claim_at_driver(j)
        jobs = [dataclasses.replace(j, restart=False) for j in jobs]  # the workers' folders are their own

    # Ray Client (ray://) cannot stream a generator's items: each group then returns them as one list
    stream = not _client_mode()
    options = group_resources(resources, len(jobs) - sum(r is not None for r in results), use_gpu)
    remote = (ray.remote(run_group).options(num_returns="streaming", **options) if stream
              else ray.remote(run_group_list).options(**options))
    driver_key = json.dumps([socket.gethostname(), str(job.data_dir)])
    running = {}
    for i, j in enumerate(jobs):
        if results[i] is not None:
            continue
        label = f"group {i + 1}/{len(jobs)}"
        inputs = _eval_inputs(j) if gather and regenerate else None
        gen = remote.remote(j, label, regenerate=regenerate, gather=gather, use_gpu=use_gpu, inputs=inputs,
                            driver_key=driver_key, worker_root=worker_root, keep_worker_dir=keep_worker_dirs)
        running[gen] = i

    gatherer = _Gatherer(job, writer)
    failures: dict[int, str] = {}

    def handle(i: int, item: tuple) -> None:
        if item[0] != "done":
            gatherer.handle(item)
            return
        results[i] = {**item[1], "skipped": False}
        if not regenerate:
            from rlkit.data._io import atomic_write_bytes

            path = _marker_path(jobs[i])
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, json.dumps(_marker(jobs[i]), indent=1).encode())
        say(f"ray: group {i + 1}/{len(jobs)} (tasks {task_ids_text(jobs[i].tasks)}) done on "
            f"{item[1]['host']} ({item[1]['device']}) in {item[1]['seconds']:.1f} s")

    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for gen in ready:
                i = running[gen]
                try:
                    ref = next(gen) if stream else gen
                except StopIteration:
                    del running[gen]
                    if results[i] is None and i not in failures:
                        failures[i] = "the worker stopped without finishing"
                    continue
                try:
                    items = [ray.get(ref)] if stream else ray.get(ref)
                except Exception as exc:  # the group failed on its worker (after Ray's retries)
                    del running[gen]
                    failures[i] = _one_line(exc)
                    print(f"ray: group {i + 1}/{len(jobs)} failed:\n{exc}", file=sys.stderr)
                    continue
                if not stream:
                    del running[gen]
                for item in items:
                    handle(i, item)
    except KeyboardInterrupt:
        for gen in running:
            try:
                ray.cancel(gen)
            except Exception:
                pass
        raise
    if gather:
        say(f"ray: gathered {gatherer.written} file(s) into {job.data_dir}"
            + (f" ({gatherer.unchanged} already there)" if gatherer.unchanged else ""))
    if failures:
        lines = [f"task group {i + 1}/{len(jobs)} (tasks {task_ids_text(jobs[i].tasks)}): {msg}"
                 for i, msg in sorted(failures.items())]
        raise SystemExit("error: " + "\n       ".join(lines) + "\n(finished groups are kept; "
                         "run the same command again to redo the failed ones)")
    return [r for r in results if r is not None]
