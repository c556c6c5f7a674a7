"""Physics randomization for MuJoCo models (the reference's ``rand_param_envs``).

Rewritten on the official ``mujoco`` bindings: parameters are sampled once per
task from a seeded stream and written into the compiled ``mujoco.MjModel``.
"""

from rand_param_envs.randomize import (  # noqa: F401
    RAND_PARAMS,
    PhysicsRandomizer,
    sample_param_sets,
)
