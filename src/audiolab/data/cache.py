"""Content-addressed feature caches shared by every data family.

A cache directory is ``<cache_dir>/<content_hash(files, params)>/``. Its key covers the *inputs* (relative path,
size and modification time of each source file) and the *preparation parameters*, so the same inputs with the same
parameters map to the same directory and are reused, while any change (a file edited, added or removed, a
parameter changed) gives a new directory. Every file is written atomically (temporary file in the same directory,
then ``os.replace``); a family writes its ``manifest.json`` last, so a cache directory without a manifest is
incomplete by construction.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["content_hash", "atomic_write_bytes", "atomic_save_npz", "atomic_write_json", "completed_manifest", "skip_bad_file",
           "HASH_CHARS"]

#: Number of hex characters of the SHA-1 digest used as the cache directory name.
HASH_CHARS = 16


def content_hash(files: Sequence[str | os.PathLike], params: dict[str, Any], root: str | os.PathLike | None = None) -> str:
    """Short hex key of a set of input files and preparation parameters.

    SHA-1 over, for each file in sorted order of its relative path, ``(relative path, size in bytes,
    mtime in ns)``, followed by ``json.dumps(params, sort_keys=True)``.

    Args:
        files: source files (they must exist).
        params: JSON-serialisable preparation parameters (anything that changes the output).
        root: paths are taken relative to this folder; defaults to the common parent folder of ``files``, so a
            moved dataset folder (with preserved mtimes) keeps its key.

    Returns:
        The first :data:`HASH_CHARS` hex characters of the digest.
    """
    paths = [Path(f).resolve() for f in files]
    if root is None:
        root = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path(".")
    root = Path(root).resolve()
    entries = []
    for p in paths:
        st = p.stat()
        try:
            rel = p.relative_to(root).as_posix()
        except ValueError:
            rel = p.as_posix()
        entries.append((rel, int(st.st_size), int(st.st_mtime_ns)))
    h = hashlib.sha1()
    for rel, size, mtime in sorted(entries):
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()[:HASH_CHARS]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, then ``os.replace``.

    Parent folders are created. Readers see either the old file, no file, or the complete new file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """Save ``arrays`` as an uncompressed ``.npz`` at ``path`` atomically (see :func:`atomic_write_bytes`).

    Values are converted with ``np.asarray`` (torch tensors: call ``.numpy()`` first).
    """
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (UTF-8, trailing newline) at ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8"))


def completed_manifest(cache: str | os.PathLike, on_bad_file: str) -> dict[str, Any] | None:
    """The ``manifest.json`` of a finished preparation in ``cache`` (None if there is none yet).

    A cache prepared with ``on_bad_file="skip"`` lists the files it skipped; reusing it with ``on_bad_file="error"``
    raises for the first of them, as a fresh preparation would.
    """
    from audiolab.audio.io import AudioLoadError

    path = Path(cache) / "manifest.json"
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    if on_bad_file == "error" and manifest.get("skipped"):
        bad = manifest["skipped"][0]
        raise AudioLoadError(f"{bad['path']}: {bad['reason']} (cached preparation skipped it; pass on_bad_file='skip' to accept)")
    print(f"using cache {cache} ({len(manifest['sources'])} sources)", flush=True)
    return manifest


def skip_bad_file(exc: Exception, path: str | os.PathLike, rel: str, on_bad_file: str,
                  skipped: list[dict[str, str]]) -> None:
    """What a preparation loop does with a file it cannot use: ``on_bad_file="error"`` re-raises ``exc``;
    ``"skip"`` warns and appends ``{"file": rel, "path", "reason"}`` to ``skipped`` (the manifest's list)."""
    if on_bad_file == "error":
        raise exc
    warnings.warn(f"skipping bad audio file {path}: {exc}", stacklevel=3)
    skipped.append({"file": rel, "path": str(path), "reason": str(exc)})
