"""``import mujoco`` that survives an OpenGL backend which cannot load.

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when it is first imported,
and the import itself fails when the value is unknown (``MUJOCO_GL=foo``) or
the backend's library is missing (``MUJOCO_GL=osmesa`` without libOSMesa).
Stepping physics needs no OpenGL at all, so a bad ``MUJOCO_GL`` must not stop
point-robot training or any MuJoCo rollout: the bindings are imported again
with rendering disabled, and only drawing a frame fails, in one line that
names the variable and what to do (:func:`gl_problem`).
"""

from __future__ import annotations

import os
import sys

_PROBLEM: str | None = None


def _import():
    global _PROBLEM
    try:
        import mujoco
        return mujoco
    except (ImportError, RuntimeError, AttributeError, OSError) as exc:
        wanted = os.environ.get("MUJOCO_GL")
        if wanted is None:
            raise
        for name in [m for m in sys.modules if m == "mujoco" or m.startswith("mujoco.")]:
            del sys.modules[name]
        os.environ["MUJOCO_GL"] = "disable"
        try:
            import mujoco
        finally:
            os.environ["MUJOCO_GL"] = wanted  # child processes see what the user set (and fall back alike)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _PROBLEM = (f"MUJOCO_GL={wanted!r} cannot be used by MuJoCo ({reason}); unset it (EGL is the default "
                    "without a display, apt-get install libegl1 libgl1), or install OSMesa (libosmesa6) "
                    "for MUJOCO_GL=osmesa")
        return mujoco


mujoco = _import()


def gl_problem() -> str | None:
    """Why frames cannot be drawn in this process (a bad ``MUJOCO_GL``), or None."""
    return _PROBLEM
