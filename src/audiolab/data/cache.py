"""Content-addressed feature caches shared by every data family.

A cache directory is ``<cache_dir>/<content_hash(files, params)>/``. Its key covers the *inputs* (relative path,
size and modification time of each source file) and the *preparation parameters*, so the same inputs with the same
parameters map to the same directory and are reused, while any change (a file edited, added or removed, a
parameter changed) gives a new directory. Every file is written atomically (:func:`atomic_path`: temporary file in
the same directory, fsync, ``os.replace``; mode from the user's umask like any ``open()``; the temporary file is
removed on failure); a family writes its ``manifest.json`` last, so a cache directory without a manifest is
incomplete by construction. Every atomic writer of audiolab (caches, JSON results, audio, ``.alc`` files, the
corpus builder) goes through :func:`atomic_path`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["content_hash", "atomic_path", "atomic_write_bytes", "atomic_save_npz", "atomic_write_json", "completed_manifest", "skip_bad_file",
           "split_too_short", "HASH_CHARS"]

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


def current_umask() -> int:
    """The process umask. Read from ``/proc/self/status`` where possible: ``os.umask`` can only be read by setting
    it, which races with other threads creating files."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: str | os.PathLike, directory: bool = False) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on directories (or read-only handles)
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write to; on success it replaces ``path`` atomically.

    The temporary file exists (empty) when the block starts, named ``.<name>.<random><suffix>`` in the destination
    folder (so the final ``os.replace`` is a rename within one filesystem, whatever ``$TMPDIR`` is), with mode
    ``0o666 & ~umask`` — what ``open()`` gives, not ``mkstemp``'s 0600, so a group sharing a cache or results
    folder can read it. Writers may reopen or truncate it (libsndfile, a subprocess; pick ``suffix`` when the
    writer infers the format from it). When the block ends normally the file is fsynced and renamed over
    ``path`` (then the folder is fsynced); when it raises, or is interrupted, the temporary file is removed and
    ``path`` is left as it was. Parent folders are created. Readers see the old file, no file, or the new file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=str(p.parent))
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, 0o666 & ~current_umask())
        finally:
            os.close(fd)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync(p.parent, directory=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`: same-folder temp file, umask mode, fsync, rename).

    Parent folders are created. Readers see either the old file, no file, or the complete new file.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


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


def split_too_short(sources: Sequence[dict[str, Any]], min_samples: int, sample_rate: int, on_bad_file: str,
                    why: str, skip_hint: str = "data.on_bad_file=skip") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Apply the too-short rule to cached sources (each with ``n_samples`` at ``sample_rate`` and ``path``).

    A source shorter than ``min_samples`` cannot give one training example: ``on_bad_file="error"`` raises an
    :class:`~audiolab.audio.io.AudioLoadError` naming the first such file, ``why`` (the config key that sets the
    limit) and ``skip_hint`` (how to skip them instead); ``"skip"`` warns once and returns them.

    Returns:
        ``(usable sources, too-short sources)``, both in the order given.
    """
    from audiolab.audio.io import AudioLoadError

    short = [s for s in sources if int(s["n_samples"]) < int(min_samples)]
    if short and on_bad_file == "error":
        s = short[0]
        raise AudioLoadError(
            f"audio file {s['path']!r} is too short: {int(s['n_samples']) / sample_rate:.3f} s, expected at least "
            f"{min_samples / sample_rate:.3f} s ({why}); {len(short)} file(s) too short. "
            f"set {skip_hint} to skip them (listed in the split manifest)"
        )
    if short:
        warnings.warn(f"skipping {len(short)} audio files shorter than {min_samples / sample_rate:.3f} s ({why}), "
                      f"e.g. {[s['file'] for s in short[:3]]} (listed in the split manifest)", stacklevel=3)
    return [s for s in sources if int(s["n_samples"]) >= int(min_samples)], short
