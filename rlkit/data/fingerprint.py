"""The fingerprint of the offline data a run reads: what --resume, the evaluation tools and the
reproduction runner compare before they use a dataset for a run.

The same folder can hold other data under the same tasks and checkpoint names: regenerated with
another generator seed, rebuilt by a newer revision, another copy given as ``--data_dir``. Nothing
but the content tells them apart, so a run records, per split (``train``, ``test``), 16 hex digits
of a SHA-256 over:

* each selected file in load order (task, then checkpoint): native and Minari data contribute
  their path and the SHA-256 that ``dataset.json`` records for it (the Minari namespace carries
  the same entries, so a dataset and its Minari copy have one fingerprint, and no data file is
  read to compute it); the authors' layout, which records no checksums, contributes each file's
  name, size and the SHA-256 of the bytes the loader read anyway (hashing costs about 1 s per
  GB on one core, next to unpickling those files);
* the generator's settings recorded in ``dataset.json`` (``generator_config``), none for the
  authors' layout;
* the normalizer (``abs_max``) the loader divided the observations by, if any.

Only the selection counts, not the whole folder: generating more tasks or checkpoints into it
keeps the fingerprint of a run that does not read them. A selected file that changed in any way
(regenerated, topped up with more sampled episodes) changes it. With checksum verification off
(``--no-verify``), a native file swapped without updating ``dataset.json`` keeps its recorded
checksum: verification is what catches that.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Sequence

#: The key of the fingerprints in variant.json, snapshots and reproduction records:
#: ``{"train": HEX, "test": HEX}``.
FINGERPRINT_KEY = "data_fingerprint"
FINGERPRINT_LENGTH = 16
SPLITS = ("train", "test")


def data_fingerprint(files: Sequence[Sequence[Any]], generator_config: Mapping[str, Any] | None,
                     abs_max: Sequence[float] | None) -> str:
    """16 hex digits over the files' identities (in order), the generator settings and the normalizer."""
    payload = {"files": [list(f) for f in files], "generator_config": generator_config or None,
               "abs_max": None if abs_max is None else [float(x) for x in abs_max]}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_LENGTH]


def fingerprint_mismatch(recorded: Mapping[str, str], now: Mapping[str, str],
                         splits: Sequence[str] = SPLITS) -> list[str]:
    """``split OLD then, NEW now`` for each of ``splits`` whose fingerprint differs (both sides known)."""
    return [f"{s} {recorded[s]} then, {now[s]} now" for s in splits
            if s in recorded and s in now and recorded[s] != now[s]]


def recorded_fingerprint(*sources: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The first well-formed fingerprint among ``sources`` (variant.json, a snapshot), or None: a run
    made before runs recorded one."""
    for source in sources:
        value = (source or {}).get(FINGERPRINT_KEY) if isinstance(source, Mapping) else None
        if isinstance(value, Mapping) and all(isinstance(value.get(s), str) for s in SPLITS):
            return {s: value[s] for s in SPLITS}
    return None


def describe(fingerprints: Mapping[str, str]) -> str:
    """``train HEX, test HEX``."""
    return ", ".join(f"{s} {fingerprints[s]}" for s in SPLITS if s in fingerprints)
