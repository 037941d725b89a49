"""Run folders that never lose results: refuse to reuse a folder by accident, resume from the newest readable
checkpoint, write checkpoints atomically on the destination filesystem, keep every metric row across resumes,
and a thread count that suits small machines.

Run folder rules (``logs/<task_name>/runs/<run_name>``):

* a new run into a folder that already holds a run is refused *before anything is written*; the message offers
  ``ckpt_path=last`` (continue it), a new ``run_name``, or ``overwrite=true`` (delete it and start again);
* ``ckpt_path=last`` resumes from ``checkpoints/last.ckpt``; if that file is unreadable (a kill during a write on an
  old version, a full disk) it warns, naming it, and resumes from the newest readable checkpoint of the folder;
  with nothing to resume it is an error (a typo in ``run_name`` must not silently start from step 0);
  ``ckpt_path=last_or_new`` asks explicitly for "resume if there is something, else start fresh";
* checkpoints are written to a temporary file in the destination folder, fsynced, then renamed over the old one
  (:class:`AtomicCheckpointIO`): a kill leaves the previous good file, never a truncated one; temporary files of
  a killed writer are removed when the next run starts in that folder;
* the CSV metrics file is appended to; every row carries the ``global_step`` it belongs to, and on resume the rows
  of steps after the resumed checkpoint are dropped (they are logged again), so the file holds each step once
  (:class:`CSVLogger`, :class:`RunState`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from audiolab.data.cache import atomic_path
from audiolab.utils.checkpoint import CheckpointError, read_checkpoint

log = logging.getLogger("audiolab")

__all__ = ["RESUME", "RESUME_IF_POSSIBLE", "RunFolderError", "ResumePoint", "check_run_folder", "resolve_resume",
           "AtomicCheckpointIO", "atomic_torch_save", "clean_temp_files", "CSVLogger", "RunState", "apply_threads",
           "default_threads", "Preflight", "list_experiments"]

RESUME = "last"
RESUME_IF_POSSIBLE = "last_or_new"
RUN_KEY = "audiolab_run"
TEMP_SUFFIX = ".ckpt-tmp"  # temporary checkpoint files: .<name>.<random>.ckpt-tmp in the destination folder
# written by Hydra for the current job before the task starts: not a previous run's results
_HYDRA_FILES = {".hydra"}


class RunFolderError(RuntimeError):
    """A run folder that cannot be used as asked (already holds a run; nothing to resume)."""


# ------------------------------------------------------------------------------------------------ folder checks
def run_artifacts(output_dir: str | Path) -> list[str]:
    """Names in ``output_dir`` left by an earlier run (Hydra's ``.hydra`` and ``*.log`` of this job excluded)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in _HYDRA_FILES and p.suffix != ".log")


def checkpoint_files(output_dir: str | Path) -> list[Path]:
    folder = Path(output_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return [p for p in folder.glob("*.ckpt") if p.is_file()]


def has_checkpoints(output_dir: str | Path) -> bool:
    """Anything to resume: a checkpoint of the run, or of one of its stages (``stages/<k>_<name>/checkpoints``)."""
    return bool(checkpoint_files(output_dir)) or any(checkpoint_files(p) for p in Path(output_dir).glob("stages/*"))


def _is_resume(ckpt_path: Any) -> bool:
    return ckpt_path in (RESUME, RESUME_IF_POSSIBLE)


def check_run_folder(output_dir: str | Path, ckpt_path: Any = None, overwrite: bool = False) -> None:
    """Refuse to start a new run in a folder that holds one (see the module docstring); ``overwrite=True`` deletes
    it. Checks only the presence of files, so it can run before Hydra creates anything."""
    folder = Path(output_dir)
    found = run_artifacts(folder)
    if ckpt_path == RESUME and not has_checkpoints(folder):
        where = f"{folder}/checkpoints" if found else f"{folder} (no such run folder)"
        raise RunFolderError(
            f"ckpt_path=last: nothing to resume in {where}. Check run_name (and task_name/experiment); "
            f"ckpt_path={RESUME_IF_POSSIBLE} resumes when there is a checkpoint and starts fresh otherwise"
        )
    if not found or _is_resume(ckpt_path):
        return
    if overwrite:
        log.warning("overwrite=true: deleting the earlier run in %s", folder)
        for name in found:
            path = folder / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        return
    if ckpt_path and Path(str(ckpt_path)).resolve().is_relative_to(folder.resolve()):
        return  # resuming this run from one of its own checkpoints
    shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
    raise RunFolderError(
        f"run folder {folder} already holds a run ({shown}). To continue it: ckpt_path=last. For a new run: "
        "run_name=<new name>. To delete it and start again: overwrite=true"
    )


# ------------------------------------------------------------------------------------------------ resume
@dataclass
class ResumePoint:
    path: Path
    global_step: int


def _resume_point(path: Path, ckpt: dict[str, Any]) -> ResumePoint:
    return ResumePoint(path=path, global_step=int(ckpt.get("global_step", 0)))


def resolve_resume(output_dir: str | Path, ckpt_path: Any) -> ResumePoint | None:
    """The checkpoint to resume from (read once to check it), or None for a fresh start.

    ``last`` / ``last_or_new``: ``checkpoints/last.ckpt``, else (missing or unreadable, with a warning naming it) the
    newest readable ``*.ckpt`` of the folder. A path: that file, which must be readable.
    """
    if not ckpt_path:
        return None
    if not _is_resume(ckpt_path):
        path = Path(str(ckpt_path))
        if not path.exists():
            raise FileNotFoundError(f"ckpt_path={str(ckpt_path)!r} does not exist")
        return _resume_point(path, read_checkpoint(path))
    files = checkpoint_files(output_dir)
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    ordered = ([last] if last in files else []) + sorted((p for p in files if p != last),
                                                         key=lambda p: p.stat().st_mtime, reverse=True)
    unreadable = []
    for path in ordered:
        try:
            ckpt = read_checkpoint(path)
        except (CheckpointError, OSError) as err:
            unreadable.append(path)
            msg = f"cannot resume from {path}: {err}"
            log.warning(msg)
            warnings.warn(msg, stacklevel=2)
            continue
        if path != last:
            msg = (f"resuming from {path.name} (step {ckpt.get('global_step')}), the newest readable checkpoint: "
                   + (f"{', '.join(p.name for p in unreadable)} unreadable" if unreadable else "no last.ckpt"))
            log.warning(msg)
            warnings.warn(msg, stacklevel=2)
        else:
            log.info("resuming from %s (step %s)", path, ckpt.get("global_step"))
        return _resume_point(path, ckpt)
    if ckpt_path == RESUME:
        bad = f" ({', '.join(p.name for p in unreadable)} unreadable)" if unreadable else ""
        raise RunFolderError(f"ckpt_path=last: no readable checkpoint in {Path(output_dir) / 'checkpoints'}{bad}")
    if unreadable or files:
        log.warning("ckpt_path=%s: no readable checkpoint in %s; starting fresh", RESUME_IF_POSSIBLE, output_dir)
    return None


# ------------------------------------------------------------------------------------------------ atomic writes
def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`audiolab.data.cache.atomic_path`: a temporary file in ``path``'s folder (on the
    destination filesystem, whatever ``$TMPDIR`` is; mode from the umask), fsync, rename over ``path``, fsync the
    folder. Readers see the old file or the complete new one; the temporary file is removed on any error."""
    with atomic_path(path, suffix=TEMP_SUFFIX) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()


def clean_temp_files(folder: str | Path) -> list[Path]:
    """Remove temporary checkpoint files left in ``folder`` by a killed writer; returns them."""
    folder = Path(folder)
    removed = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()] if folder.is_dir() else []
    for p in removed:
        p.unlink(missing_ok=True)
        log.info("removed temporary file of an interrupted checkpoint write: %s", p)
    return removed


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO: atomic writes on the destination filesystem; every read is ``weights_only=True``.

    Lightning's default writes the whole file through fsspec's transaction, whose temporary file lives in
    ``$TMPDIR``: on another filesystem the final move is a copy, and a kill during it leaves a truncated file.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        # weights_only is forced: a resumed or tested file is user-given
        return read_checkpoint(path, map_location=map_location if map_location is not None else "cpu")


# ------------------------------------------------------------------------------------------------ CSV logger
GLOBAL_STEP = "global_step"


class CSVLogger(Logger):
    """Metrics as ``<save_dir>/<name>/metrics.csv`` (one row per logging call), appended to across resumes.

    Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts (a resumed run lost its history) and
    rewrites the header from the keys of the current session only. This one keeps the file, extends the header when
    new metrics appear (atomic rewrite), and tags every row with the trainer's ``global_step`` of the state it
    belongs to (:class:`RunState` does the tagging), so a resume can drop exactly the rows of the steps it will run
    again (:meth:`truncate`). ``step`` is Lightning's logging step, as in Lightning's CSV files.
    """

    FILE = "metrics.csv"

    def __init__(self, save_dir: str, name: str = "csv", flush_logs_every_n_steps: int = 100):
        super().__init__()
        self._save_dir, self._name = str(save_dir), name or "csv"
        self.flush_logs_every_n_steps = int(flush_logs_every_n_steps)
        self._pending: list[dict[str, Any]] = []
        self._keys: list[str] = []
        self._last_tag: int | None = None
        self.rows_on_disk = 0
        self._read_existing()

    # Logger interface
    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def log_dir(self) -> str:
        return str(Path(self._save_dir) / self._name)

    @property
    def metrics_file(self) -> Path:
        return Path(self.log_dir) / self.FILE

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the resolved config is resolved_config.yaml in the run folder

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        row = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}
        row["step"] = int(step) if step is not None else self.rows_on_disk + len(self._pending)
        self._pending.append(row)
        if step is not None and (int(step) + 1) % max(1, self.flush_logs_every_n_steps) == 0:
            self.save()

    def tag(self, global_step: int) -> None:
        """Rows logged since the last call belong to the state at ``global_step``."""
        for row in self._pending:
            row.setdefault(GLOBAL_STEP, int(global_step))
        self._last_tag = int(global_step)

    @rank_zero_only
    def save(self) -> None:
        """Write the pending rows; once tagging is in use, rows not tagged yet wait for their tag."""
        ready = [r for r in self._pending if self._last_tag is None or GLOBAL_STEP in r]
        if not ready:
            return
        self._pending = [r for r in self._pending if not (self._last_tag is None or GLOBAL_STEP in r)]
        new = sorted({k for row in ready for k in row} - set(self._keys))
        path = self.metrics_file
        path.parent.mkdir(parents=True, exist_ok=True)
        if new or not path.exists():
            self._keys = sorted(set(self._keys) | set(new))
            self._rewrite(self._read_rows() + ready)
        else:
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self._keys).writerows(ready)
                f.flush()
            self.rows_on_disk += len(ready)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._last_tag is not None:
            self.tag(self._last_tag)  # e.g. test metrics after the fit: the final state
        self.save()

    # resume support
    def _read_existing(self) -> None:
        if self.metrics_file.is_file():
            with open(self.metrics_file, newline="") as f:
                reader = csv.reader(f)
                self._keys = next(reader, [])
                self.rows_on_disk = sum(1 for _ in reader)

    def _read_rows(self) -> list[dict[str, Any]]:
        if not self.metrics_file.is_file():
            return []
        with open(self.metrics_file, newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        from audiolab.data.cache import atomic_write_bytes

        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=self._keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.metrics_file, buf.getvalue().encode())
        self.rows_on_disk = len(rows)

    def truncate(self, max_global_step: int | None) -> int:
        """Keep the rows of states up to ``max_global_step`` (None: drop all); returns how many were dropped.

        Rows without a ``global_step`` tag (files of older versions) are cut by Lightning's ``step`` instead."""
        self._pending = []
        rows = self._read_rows()

        def keep(row: dict[str, Any]) -> bool:
            if max_global_step is None:
                return False
            tag = row.get(GLOBAL_STEP) or row.get("step")
            return tag in (None, "") or int(float(tag)) <= max_global_step

        kept = [r for r in rows if keep(r)]
        if len(kept) != len(rows):
            self._rewrite(kept)
        return len(rows) - len(kept)


class RunState(Callback):
    """Keeps the CSV consistent with the checkpoints: tags each row with the ``global_step`` of the state it belongs
    to and flushes the loggers whenever a checkpoint is written, so a resume from any checkpoint drops exactly the
    rows of the steps it runs again (and keeps those logged after the save for that same step).

    Put it first in the callback list: at the end of a batch it tags the rows logged for that batch so far (the LR
    monitor's, at batch start) with the new step before other callbacks log; rows logged after (probe, the batch's
    training metrics, validation) get that step at the next checkpoint or when the next batch starts.
    """

    def __init__(self) -> None:
        self._step = 0
        self._flush_next = False

    @staticmethod
    def _csv(trainer: L.Trainer) -> list[CSVLogger]:
        return [lg for lg in trainer.loggers if isinstance(lg, CSVLogger)]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._step = trainer.global_step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        for lg in self._csv(trainer):
            lg.tag(self._step)  # everything since the last batch end belongs to that step
            if self._flush_next:
                lg.save()  # a checkpointed step's rows reach the disk before the next step starts
        self._flush_next = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._step = trainer.global_step
        for lg in self._csv(trainer):
            lg.tag(self._step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for lg in self._csv(trainer):
            lg.tag(trainer.global_step)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        for lg in self._csv(trainer):
            lg.tag(trainer.global_step)
        for lg in trainer.loggers:
            lg.save()
        self._flush_next = True
        checkpoint[RUN_KEY] = {"global_step": int(trainer.global_step)}


def restore_logs(loggers: list[Logger], resume: ResumePoint | None) -> None:
    """Drop CSV rows of the steps a resume runs again (all rows for a fresh start in a used folder)."""
    for lg in loggers:
        if not isinstance(lg, CSVLogger) or not lg.metrics_file.exists():
            continue
        dropped = lg.truncate(resume.global_step if resume is not None else None)
        if dropped:
            log.info("%s: dropped %d rows logged after the resumed checkpoint", lg.metrics_file, dropped)


# ------------------------------------------------------------------------------------------------ threads
def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Half the CPUs this process may use, at least 1: on a 2-core machine 1 thread, which keeps a run fast when
    another process takes the other core (torch's default of one thread per core then oversubscribes)."""
    return max(1, available_cpus() // 2)


def apply_threads(threads: Any) -> int:
    """``threads: auto | <int>`` -> ``torch.set_num_threads``; returns the count."""
    n = default_threads() if threads in (None, "auto") else int(threads)
    if n < 1:
        raise ValueError(f"threads must be a positive integer or 'auto', got {threads!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


# ------------------------------------------------------------------------------------------------ before Hydra writes
def list_experiments(conf_dir: Path | None = None) -> list[tuple[str, str]]:
    """``(name, first comment line)`` of every ``conf/experiment/*.yaml``."""
    from audiolab.utils.config import CONF_DIR

    out = []
    for path in sorted(Path(conf_dir or CONF_DIR, "experiment").glob("*.yaml")):
        desc = ""
        for line in path.read_text().splitlines():
            text = line.strip()
            if text.startswith("#") and "@package" not in text:
                desc = text.lstrip("# ").strip()
                break
        out.append((path.stem, desc))
    return out


def experiments_message() -> str:
    rows = list_experiments()
    width = max((len(n) for n, _ in rows), default=0)
    lines = ["No experiment chosen. Run one of:", ""]
    short = [d if len(d) <= 72 else d[:71] + "…" for _, d in rows]
    lines += [f"  python -m audiolab.train experiment={n:<{width}}  {d}" for (n, _), d in zip(rows, short)]
    lines += ["", "Add debug=fast for a tiny CPU run; --cfg job --resolve prints the composed config."]
    return "\n".join(lines)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def is_child_rank() -> bool:
    """A DDP child process (Lightning relaunches the command per rank): rank 0 has checked the folder."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "RANK"))


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra always present
    _HydraCallback = object  # type: ignore[assignment,misc]


class Preflight(_HydraCallback):
    """Hydra callback (``conf/hydra/default.yaml``): checks a ``train`` config *before* Hydra creates the run folder.

    No experiment -> prints the list of experiments; wrong types -> names the key; a run folder already in use or
    ``ckpt_path=last`` with nothing to resume -> says what to do. Each is one line on stderr and exit code 2.
    """

    def _check(self, config: DictConfig, config_name: str | None, run_dir: str | None) -> None:
        if config_name != "train":
            return
        from audiolab.utils.config import validate_types

        if config.get("model") is None:
            print(experiments_message(), file=sys.stderr, flush=True)
            raise SystemExit(2)
        try:
            validate_types(config)
            if run_dir is not None and not is_child_rank():
                check_run_folder(run_dir, config.get("ckpt_path"), bool(config.get("overwrite", False)))
        except (ValueError, RunFolderError) as err:
            _fail(str(err))

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, kwargs.get("config_name"), str(OmegaConf.select(config, "hydra.run.dir")))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, kwargs.get("config_name"), None)  # sweep folders are new (timestamped)
