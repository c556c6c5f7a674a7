"""Behaviour-policy SAC for offline dataset generation: all tasks of a split in one process.

One SAC per task (docs/method.md §3), trained together with batched networks whose
weights carry a task dimension (GitHub issue #4).
"""

from rlkit.behavior.ensemble import EnsembleLinear, EnsembleMLP, mlp
from rlkit.behavior.replay import EnsembleReplayBuffer
from rlkit.behavior.sac import EnsembleSAC

__all__ = ["EnsembleLinear", "EnsembleMLP", "EnsembleReplayBuffer", "EnsembleSAC", "mlp"]
