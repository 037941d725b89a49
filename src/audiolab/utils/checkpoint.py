"""THE way to load what ``audiolab.train`` wrote: :func:`load_trained` (inference CLIs, notebooks, ``evaluate``, a
family that freezes another family's model) and :func:`load_weights` (``init_from``).

Safety: every checkpoint is read with ``torch.load(weights_only=True)``, so a crafted ``.ckpt`` cannot run code
when it is opened. Anything a family keeps in its checkpoint is a tensor or a plain type (str, int, float, bool,
None, list, tuple, dict): what ``weights_only`` accepts without help. :data:`SAFE_GLOBALS` is the explicit,
documented allow-list of anything else (empty today) and is registered with ``torch.serialization.add_safe_globals``.
The stored config is not trusted either: the model and data ``_target_`` must live in ``audiolab.`` before anything
is instantiated from it (a config naming ``os.system`` is refused, not called).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from audiolab.callbacks.config_embed import CONFIG_KEY
from audiolab.utils.config import plain

log = logging.getLogger("audiolab")

__all__ = ["Trained", "load_trained", "load_weights", "read_checkpoint", "resolve_checkpoint", "stored_config",
           "build_module", "family_of", "convert_checkpoint", "CheckpointError", "SAFE_GLOBALS"]

#: Classes (besides tensors and plain Python types) that audiolab checkpoints may contain. Keep it empty: put plain
#: types into the checkpoint instead (``on_save_checkpoint``). An entry here is trusted code for every loaded file.
SAFE_GLOBALS: list[Any] = []
if SAFE_GLOBALS:
    torch.serialization.add_safe_globals(SAFE_GLOBALS)

#: Prefix every instantiable ``_target_`` of a stored config must have.
TRUSTED_TARGET_PREFIX = "audiolab."
#: Files a run folder is loaded from, in order of preference.
RUN_FOLDER_CHECKPOINTS = ("probe_best.ckpt", "last.ckpt")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, not audiolab's, another family, weights that do not fit."""


@dataclass
class Trained:
    """What :func:`load_trained` returns.

    Attributes:
        module: the LightningModule (or the requested submodule) in eval mode, on the requested device.
        config: the resolved training config stored in the checkpoint (with ``overrides`` applied).
        path: the checkpoint file that was read.
        family: ``<family>`` of ``audiolab.models.<family>.…`` (None for a model outside ``audiolab.models``).
        global_step: optimizer steps of the saved state (None when the file does not record it).
    """

    module: nn.Module
    config: DictConfig
    path: Path
    family: str | None
    global_step: int | None


# ------------------------------------------------------------------------------------------------ reading
def resolve_checkpoint(source: str | Path) -> Path:
    """A ``.ckpt`` file as given, or the checkpoint of a run folder: ``checkpoints/probe_best.ckpt``, else
    ``checkpoints/last.ckpt`` (also accepts the ``checkpoints`` folder itself)."""
    path = Path(source)
    if path.is_dir():
        for folder in (path / "checkpoints", path):
            for name in RUN_FOLDER_CHECKPOINTS:
                if (folder / name).is_file():
                    return folder / name
        raise FileNotFoundError(f"run folder {str(path)!r} has no checkpoints/{' or '.join(RUN_FOLDER_CHECKPOINTS)}")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return path


def read_checkpoint(path: str | Path, *, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file (never unpickles code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes): an interrupted write?")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types (UnpicklingError, EOFError, RuntimeError...)
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found or "Unsupported global" in text:
            what = f"it names {found.group(1)}" if found else "not tensors and plain types"
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds Python objects that a safe load refuses ({what}); audiolab checkpoints "
                "hold tensors and plain types only (see audiolab.utils.checkpoint.SAFE_GLOBALS). A file you wrote "
                "yourself with an older audiolab: `python -m audiolab.utils.checkpoint convert OLD.ckpt NEW.ckpt "
                "--trust` rewrites it with plain types"
            ) from err
        # anything else (a WAV, a text file, a truncated zip): the unpickler's own reason, not the weights_only advice
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
        first = detail.group(1).strip() if detail else (text.strip().splitlines()[0] if text.strip() else "")
        raise CheckpointError(f"checkpoint {str(path)!r} could not be read: not a PyTorch checkpoint, or a damaged "
                              f"one ({type(err).__name__}: {first})") from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds a {type(ckpt).__name__}, not a checkpoint dict")
    return ckpt


def stored_config(ckpt: dict[str, Any], overrides: list[str] | dict | None = None, *, path: str | Path = "") -> DictConfig:
    """The resolved training config stored in ``ckpt`` (by ``audiolab.train``), with dotlist/dict overrides."""
    if CONFIG_KEY not in ckpt:
        raise CheckpointError(f"checkpoint {str(path)!r} has no stored '{CONFIG_KEY}': was it written by audiolab.train?")
    cfg = OmegaConf.create(ckpt[CONFIG_KEY])
    if overrides:
        extra = OmegaConf.from_dotlist(list(overrides)) if isinstance(overrides, (list, tuple)) else OmegaConf.create(overrides)
        cfg = OmegaConf.merge(cfg, extra)
    return cfg


def family_of(target: str) -> str | None:
    """``audiolab.models.codec.module.CodecModule`` -> ``codec``; None outside ``audiolab.models``."""
    parts = str(target).split(".")
    if len(parts) >= 3 and parts[0] == "audiolab" and parts[1] == "models":
        return parts[2]
    return None


def check_target(cfg: DictConfig, key: str, path: str | Path) -> str:
    """The ``_target_`` of ``cfg.<key>``; refuses anything outside ``audiolab.`` before it is instantiated."""
    target = str(OmegaConf.select(cfg, f"{key}._target_", default="") or "")
    if not target.startswith(TRUSTED_TARGET_PREFIX):
        raise CheckpointError(
            f"checkpoint {str(path)!r}: {key}._target_={target or None!r} is not an audiolab class "
            f"({TRUSTED_TARGET_PREFIX}*); refusing to instantiate it"
        )
    return target


# ------------------------------------------------------------------------------------------------ weights
def _shape(t: Any) -> str:
    return str(list(t.shape)) if isinstance(t, torch.Tensor) else "-"


def load_weights(module: nn.Module, state_dict: dict[str, torch.Tensor], *, strict: bool = True,
                 source: str = "checkpoint", hint: str = "") -> dict[str, list]:
    """Load ``state_dict`` into ``module`` and say clearly what did not fit.

    ``strict=True``: any missing, unexpected or shape-mismatched key is one :class:`CheckpointError` naming the keys
    (nothing is loaded). ``strict=False``: the tensors whose name and shape match are loaded, the rest is listed in
    one table (printed and logged). Returns ``{"loaded", "missing", "unexpected", "shape"}`` (lists of keys; ``shape``
    holds ``(key, checkpoint shape, model shape)``).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shape = [(k, _shape(state_dict[k]), _shape(own[k])) for k in own
             if k in state_dict and isinstance(own[k], torch.Tensor) and isinstance(state_dict[k], torch.Tensor)
             and own[k].shape != state_dict[k].shape]
    bad_shape = {k for k, _, _ in shape}
    report = {"loaded": [k for k in own if k in state_dict and k not in bad_shape], "missing": missing,
              "unexpected": unexpected, "shape": shape}
    if strict and (missing or unexpected or shape):
        def _names(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing in the checkpoint: {_names(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_names(unexpected)}")
        if shape:
            parts.append(f"{len(shape)} with another shape: " + ", ".join(f"{k} {a} vs model {b}" for k, a, b in shape[:8]))
        raise CheckpointError(f"{source} does not fit {type(module).__name__} ({'; '.join(parts)})" + (f"; {hint}" if hint else ""))
    if strict:
        module.load_state_dict(state_dict, strict=True)
        return report
    matching = {k: state_dict[k] for k in report["loaded"]}
    module.load_state_dict(matching, strict=False)
    table = weights_table(report)
    summary = f"{source}: loaded {len(report['loaded'])}/{len(own)} tensors (non-strict)"
    print(summary + ("\n" + table if table else ""), flush=True)
    log.info("%s%s", summary, "\n" + table if table else "")
    return report


def weights_table(report: dict[str, list]) -> str:
    """The missing / unexpected / shape-mismatched keys of a :func:`load_weights` report as one text table."""
    rows = [("missing", k, "-", "in model") for k in report["missing"]]
    rows += [("unexpected", k, "in checkpoint", "-") for k in report["unexpected"]]
    rows += [("shape", k, a, b) for k, a, b in report["shape"]]
    if not rows:
        return ""
    header = ("problem", "key", "checkpoint", "model")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def build_module(cfg: DictConfig, ckpt: dict[str, Any] | None = None, *, path: str | Path = "") -> nn.Module:
    """Instantiate ``cfg.model`` (an audiolab class only) and load the checkpoint's weights (strict, named errors).

    The ``state_dict`` of an audiolab checkpoint holds the EMA-averaged weights when EMA was on.
    """
    from hydra.utils import instantiate

    check_target(cfg, "model", path)
    module = instantiate(cfg.model, _recursive_=False)
    if ckpt is not None:
        if not isinstance(ckpt.get("state_dict"), dict):
            raise CheckpointError(f"checkpoint {str(path)!r} has no state_dict")
        load_weights(module, ckpt["state_dict"], strict=True, source=f"checkpoint {str(path)!r}",
                     hint="the weights do not match the model config stored with them")
    return module


def _submodule(module: nn.Module, name: str, path: Path) -> nn.Module:
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            children = sorted(n for n, _ in module.named_children())
            raise CheckpointError(f"checkpoint {str(path)!r}: {type(module).__name__} has no submodule {name!r} "
                                  f"(children: {children})")
        obj = getattr(obj, part)
    if not isinstance(obj, nn.Module):
        raise CheckpointError(f"checkpoint {str(path)!r}: {name!r} of {type(module).__name__} is a "
                              f"{type(obj).__name__}, not a module")
    return obj


def load_trained(source: str | Path, *, family: str | None = None, submodule: str | None = None, freeze: bool = False,
                 device: str | torch.device = "cpu", overrides: list[str] | dict | None = None) -> Trained:
    """Load a trained model from a run folder (``probe_best.ckpt``, else ``last.ckpt``) or a ``.ckpt`` file.

    Reads with ``weights_only=True``; checks that the stored ``model._target_`` is an audiolab class and, when
    ``family`` is given, that it lives in ``audiolab.models.<family>``; rebuilds the LightningModule from the stored
    config; loads the (EMA-averaged when EMA was on) weights strictly; returns it (or the ``submodule`` attribute
    path, e.g. ``"codec"``, ``"net"``, ``"vae.decoder"``) in eval mode on ``device``; ``freeze=True`` also sets
    ``requires_grad=False``.

    Raises:
        FileNotFoundError: the file / run folder does not exist (message names it).
        CheckpointError: unreadable, not written by audiolab.train, another family, no such submodule, or weights
            that do not fit the stored config (names the keys).
    """
    path = resolve_checkpoint(source)
    ckpt = read_checkpoint(path)
    cfg = stored_config(ckpt, overrides, path=path)
    target = check_target(cfg, "model", path)
    actual = family_of(target)
    if family is not None and actual != family:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a {family} checkpoint: its model._target_ is {target!r} "
                              f"(family {actual!r}); expected audiolab.models.{family}.*")
    module = build_module(cfg, ckpt, path=path)
    if submodule:
        module = _submodule(module, submodule, path)
    module = module.to(device).eval()
    if freeze:
        module.requires_grad_(False)
    step = ckpt.get("global_step")
    return Trained(module=module, config=cfg, path=path, family=actual, global_step=int(step) if step is not None else None)


# ------------------------------------------------------------------------------------------------ conversion
def _to_plain(obj: Any, where: str) -> Any:
    """``obj`` with OmegaConf containers, dict / list subclasses, paths and numpy values turned into what
    ``weights_only=True`` reads (tensors, plain Python types); anything else is a :class:`CheckpointError` naming the
    key path (``where``)."""
    import numpy as np

    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.Tensor, torch.dtype, torch.device, torch.Size)):
        return obj
    if OmegaConf.is_config(obj):
        try:  # interpolations resolved where they can be (a pickled node keeps its parent), kept as text otherwise
            container = plain(obj)
        except Exception:  # noqa: BLE001 - omegaconf raises several types for missing / unresolvable keys
            container = OmegaConf.to_container(obj, resolve=False)
        return _to_plain(container, where)
    if isinstance(obj, dict):
        return {_to_plain(k, f"{where} key {k!r}"): _to_plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    raise CheckpointError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which has no plain-type "
                          "equivalent; remove it from the checkpoint (or add the class to SAFE_GLOBALS) by hand")


def convert_checkpoint(src: str | Path, dst: str | Path, *, trust: bool = False) -> dict[str, Any]:
    """Rewrite a checkpoint written by an older audiolab (OmegaConf objects in ``hyper_parameters``, paths, numpy
    values) with tensors and plain types only, so :func:`read_checkpoint` / ``ckpt_path=`` / :func:`load_trained`
    accept it. Same tensors, same keys; ``dst`` is written atomically and read back with the safe loader.

    Converting must unpickle ``src`` with ``weights_only=False``, which runs any code the file names: ``trust=True``
    says the file is one you (or your own training run) wrote. ``src`` is never modified.
    """
    from audiolab.data.cache import atomic_path

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"checkpoint {str(src)!r} does not exist")
    if not trust:
        raise CheckpointError(f"converting {str(src)!r} unpickles it with weights_only=False, which runs any code the "
                              "file names: pass trust=True (CLI: --trust) only for a checkpoint you wrote yourself")
    if src.resolve() == dst.resolve():
        raise CheckpointError(f"convert writes a new file: {str(dst)!r} is the source; pick another name")
    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - a WAV, a text file, a truncated zip: one line naming the file
        raise CheckpointError(f"checkpoint {str(src)!r} could not be read ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {str(src)!r} holds a {type(ckpt).__name__}, not a checkpoint dict")
    converted = _to_plain(ckpt, "checkpoint")
    with atomic_path(dst, suffix=".ckpt") as tmp:
        torch.save(converted, tmp)
    return read_checkpoint(dst)


def main(argv: list[str] | None = None) -> int:
    """``python -m audiolab.utils.checkpoint convert OLD.ckpt NEW.ckpt --trust`` (see :func:`convert_checkpoint`)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m audiolab.utils.checkpoint",
                                     description="Checkpoint tools. convert: rewrite an older audiolab checkpoint "
                                                 "with tensors and plain types only, for the safe loader.")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="rewrite OLD.ckpt as NEW.ckpt with plain types (OLD is not modified)")
    conv.add_argument("src", help="checkpoint written by an older audiolab")
    conv.add_argument("dst", help="new checkpoint (written atomically)")
    conv.add_argument("--trust", action="store_true",
                      help="required: SRC is unpickled with weights_only=False (runs any code it names); "
                           "use only for a file you wrote yourself")
    args = parser.parse_args(argv)
    try:
        ckpt = convert_checkpoint(args.src, args.dst, trust=args.trust)
    except (CheckpointError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    step = ckpt.get("global_step")
    print(f"wrote {args.dst} (step {step}); it loads with weights_only=True")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
