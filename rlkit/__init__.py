"""CSRO: context shift reduction for offline meta-RL (and its baselines), on gymnasium + mujoco + PyTorch.

Importing the package sets one process default: without a display, MuJoCo's
off-screen frames (``render_mode="rgb_array"``, videos) use EGL, because
MuJoCo's own default (GLFW) needs a window system. MuJoCo reads ``MUJOCO_GL``
once, when it is first imported, so this must run before any ``import mujoco``;
a ``MUJOCO_GL`` the user set (osmesa, glfw) is kept.
"""

import os as _os

if "MUJOCO_GL" not in _os.environ and not _os.environ.get("DISPLAY"):
    _os.environ["MUJOCO_GL"] = "egl"
