"""CSRO: context shift reduction for offline meta-RL (and its baselines), on gymnasium + mujoco + PyTorch.

Importing the package sets three process defaults:

* without a display, MuJoCo's off-screen frames (``render_mode="rgb_array"``, videos) use EGL,
  because MuJoCo's own default (GLFW) needs a window system. MuJoCo reads ``MUJOCO_GL`` once, when
  it is first imported, so this must run before any ``import mujoco``; a ``MUJOCO_GL`` the user set
  (osmesa, glfw) is kept;
* OpenMP's waiting threads sleep (``OMP_WAIT_POLICY=PASSIVE``) instead of spinning. A spinning
  thread whose partner's core is held by another process stalls every parallel region: on a 2-core
  machine a 2-thread step beside one busy core took 1.75x as long as one thread, and 1.1-1.16x
  with this policy, for 4-8 % on a quiet machine (benchmarks/bench_thread_policy.py, docs/performance.md). OpenMP reads this once, when torch loads it, so it applies
  when ``rlkit`` is imported before ``torch`` (every command here does); one the user set is kept;
* when one of the commands listed in :mod:`rlkit.cli` starts (and only then), Ctrl-C or SIGTERM
  during its imports (torch takes seconds) ends it in one line rather than a traceback:
  :func:`rlkit.errors.guard_startup`.
"""

import os as _os

if "MUJOCO_GL" not in _os.environ and not _os.environ.get("DISPLAY"):
    _os.environ["MUJOCO_GL"] = "egl"
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from rlkit.errors import guard_startup as _guard_startup, started_as_cli as _started_as_cli  # noqa: E402

if _started_as_cli():
    _guard_startup()


def load(run_dir, itr=None, device="cpu", deterministic=True):
    """A trained run's agent on one env: ``rlkit.load(run_dir).act(obs)`` (see :mod:`rlkit.evaluation.api`).
    Imported on call, so ``import rlkit`` stays cheap and sets the defaults above before torch loads."""
    from rlkit.evaluation.api import load as _load

    return _load(run_dir, itr=itr, device=device, deterministic=deterministic)
