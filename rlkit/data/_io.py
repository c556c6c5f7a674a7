"""Low-level file helpers: atomic writes, checksums and their stamp, a writer lock, fast ``.npy`` headers.

Every file the dataset layer writes goes through :func:`atomic_write_bytes`: the
bytes land in a hidden temporary file in the destination folder
(``.NAME.tmp-PID-RANDOM``) that is renamed over ``NAME`` only once complete.
``os.replace`` is atomic on POSIX file systems, so a writer killed at any point
leaves either the old file, the new file, or a stray temporary file whose name
no reader ever looks up.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from rlkit.data.errors import DatasetError
from rlkit.fileio import TMP_MARK, atomic_write_bytes, file_lock, is_temp_name, temp_name_for  # noqa: F401 (re-exported)


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- checksums already checked ----


class VerifiedStamp:
    """Files whose SHA-256 already matched: ``DATASET/.verified.json``, keyed by (size, mtime, ctime,
    inode, checksum).

    Hashing a whole selection costs 20-50 % of loading it, every run. A file
    that passed once and has not been changed since is not hashed again. The
    inode's change time (ctime) is what makes "not changed" hold: any write,
    even one that keeps the size and sets the modification time back (``touch
    -d``, an editor or a copy tool that preserves it), moves the ctime, which no
    user call can set; a file replaced by another one has another inode. Size
    and mtime alone let a file edited in place with both kept be trained on.
    The stat call was made anyway, so the stronger key costs nothing
    (``benchmarks/bench_verified_stamp.py``). The stamp is a cache: when the
    dataset folder is read-only it is simply not written. Corruption below the
    file system (bit rot on the disk) changes no inode field; ``python -m
    rlkit.data verify`` always hashes.
    """

    NAME = ".verified.json"

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / self.NAME
        self.entries: dict[str, list] = {}
        self.changed = False
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self.entries = {k: v for k, v in loaded.items() if isinstance(v, list) and len(v) == 5}
        except (OSError, ValueError):
            pass  # no stamp yet, or an unreadable one: everything is hashed

    def _key(self, rel: str, entry) -> list | None:
        try:
            st = (self.root / rel).stat()
        except OSError:
            return None
        return [int(st.st_size), int(st.st_mtime_ns), int(st.st_ctime_ns), int(st.st_ino), str(entry["sha256"])]

    def covers(self, rel: str, entry) -> bool:
        key = self._key(rel, entry)
        return key is not None and self.entries.get(rel) == key

    def add(self, rel: str, entry) -> None:
        key = self._key(rel, entry)
        if key is not None:
            self.entries[rel] = key
            self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        try:
            atomic_write_bytes(self.path, json.dumps(self.entries).encode(), fsync=False)
        except OSError:
            pass  # read-only dataset: verify again next time


# ---- JSON ---------------------------------------------------------------------------


def jsonable(x: Any) -> Any:
    """``x`` with numpy arrays/scalars, tuples, Paths and config objects turned into plain JSON values."""
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if isinstance(x, Mapping) or hasattr(x, "items"):  # dicts, OmegaConf DictConfig, ...
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (Sequence, set, frozenset)) and not isinstance(x, (bytes, bytearray)):
        return [jsonable(v) for v in x]
    return repr(x)


def canonical(x: Any) -> Any:
    """``x`` as it reads back from JSON (for equality checks between runs)."""
    return json.loads(json.dumps(jsonable(x)))


# ---- .npy headers -------------------------------------------------------------------

_MAGIC = b"\x93NUMPY"
_SHAPE_RE = re.compile(r"'shape':\s*\(([^)]*)\)")
_DESCR_RE = re.compile(r"'descr':\s*(.*?),\s*'fortran_order'")


def parse_npy_header(buf: bytes | memoryview, where: str) -> tuple[str, bool, tuple[int, ...], int]:
    """(descr text, fortran_order, shape, data offset) of an in-memory ``.npy`` file.

    Faster than ``np.lib.format`` for the many small files of a dataset: the
    header dict is parsed with a regular expression, and only ``descr`` (a
    Python literal) is kept as text for the caller to compare or evaluate.
    """
    head = bytes(buf[:12])
    if len(head) < 10 or head[:6] != _MAGIC:
        raise DatasetError(f"{where} is not a .npy file (bad magic bytes): delete it and regenerate it")
    major = head[6]
    if major == 1:
        hlen, start = int.from_bytes(head[8:10], "little"), 10
    elif major in (2, 3):
        if len(head) < 12:
            raise DatasetError(f"{where} is truncated (header cut short): delete it and regenerate it")
        hlen, start = int.from_bytes(head[8:12], "little"), 12
    else:
        raise DatasetError(f"{where} has unsupported .npy version {major}: delete it and regenerate it")
    end = start + hlen
    if len(buf) < end:
        raise DatasetError(f"{where} is truncated (header cut short): delete it and regenerate it")
    text = bytes(buf[start:end]).decode("latin1")
    m_shape, m_descr = _SHAPE_RE.search(text), _DESCR_RE.search(text)
    if m_shape is None or m_descr is None:
        raise DatasetError(f"{where} has an unreadable .npy header: delete it and regenerate it")
    try:
        shape = tuple(int(s) for s in m_shape.group(1).split(",") if s.strip())
    except ValueError:
        raise DatasetError(f"{where} has an unreadable .npy header: delete it and regenerate it") from None
    fortran = "'fortran_order': True" in text
    return m_descr.group(1).strip(), fortran, shape, end


_DESCR_CACHE: dict[str, np.dtype] = {}


def dtype_from_descr(descr: str, where: str) -> np.dtype:
    dt = _DESCR_CACHE.get(descr)
    if dt is None:
        try:
            dt = np.lib.format.descr_to_dtype(ast.literal_eval(descr))
        except Exception:
            raise DatasetError(f"{where} has an unreadable dtype {descr!r}: delete it and regenerate it") from None
        if len(_DESCR_CACHE) < 64:
            _DESCR_CACHE[descr] = dt
    return dt


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` serialised as a ``.npy`` file (no pickles)."""
    f = io.BytesIO()
    np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
    return f.getvalue()
