"""Kick data: preparation recipes and the datamodule.

Recipes (``python -m audiolab.prepare <recipe> key=value ...``):

* ``kick_aggregate source_dir=DIR[,NAME=DIR...] out_dir=data/kick_raw``: every audio file under the sources whose
  name is a kick name (:func:`~audiolab.models.kick.keywords.kick_name_reason`: ``kick``/``bd``/``bassdrum``, no
  loops or BPM tags, 5 KB - 1 MB), copied flat as ``<content hash>_<name>`` (identical files once), and
  ``metadata.csv`` (filename, original_path, keywords, source, group).
* ``kick_preprocess in_dir=data/kick_raw out_dir=data/kick``: mono, 44.1 kHz, pad/trim 2 s, -1 dBFS peak, 0.2 s
  linear fade-out (:func:`~audiolab.models.kick.audio.prepare_clip`), log-mel through the shared front end
  (:class:`~audiolab.models.kick.audio.MelConfig`); writes ``audio.npy`` (int16 ``[N, 88200]``), ``mel.npy``
  (float32 ``[N, 128, 173]``), ``metadata.csv`` and ``manifest.json`` (last; reused when inputs and settings
  are unchanged). Unreadable files are listed (``on_bad_file=skip``) or raise, all of them named (``error``).
* ``kick_synth out_dir=... n=2000 seed=0``: the parametric labelled set (:mod:`audiolab.models.kick.synth`).
* ``kick_data out_dir=data/kick``: the kicks rendered with fluidsynth from the FluidR3 GM drum kits and the AVL drum
  soundfonts at several velocities, plus all of the above for the kicks this machine's Debian packages provide
  (``make data``); package files come from the data-source registry (a missing one names its package).

The datamodule splits by source (first-level category) and drum group (velocity layers of one drum are one
group), with the shared :func:`split_by_category`, so no layer of a test drum is trained on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from audiolab.audio.io import AUDIO_EXTENSIONS, AudioLoadError, load_audio
from audiolab.data.cache import atomic_write_bytes, atomic_write_json, content_hash
from audiolab.data.cli import boolean, comma_list, parse_key_values
from audiolab.data.module import CachedSplitDataModule, check_hparams, split_fraction_checks
from audiolab.data.splits import split_by_category
from audiolab.models.kick.audio import CLIP_SAMPLES, SAMPLE_RATE, MelConfig, SilentClipError, prepare_clip
from audiolab.models.kick.keywords import (
    DEFAULT_EXCLUDE,
    MAX_BYTES,
    MIN_BYTES,
    KeywordVocabulary,
    drum_group,
    keywords_from_name,
    kick_name_reason,
)

log = logging.getLogger("audiolab")

PREPROCESS_VERSION = 2
METADATA_FIELDS = ("filename", "original_path", "keywords", "source", "group")
ROOT_HINT = "run `make data` (python -m audiolab.prepare kick_data out_dir=data/kick) or set data.root=<a kick_preprocess folder>"
MODES = ("mel", "crop")


# ------------------------------------------------------------------------------------------------- helpers
def _write_csv(path: Path, rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; a missing file is a clear error."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist")
    with p.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _parse_sources(spec: str) -> dict[str, Path]:
    """``"a=/x,/y/z"`` -> ``{"a": /x, "z": /y/z}`` (a source without a name is named after its folder)."""
    out: dict[str, Path] = {}
    for item in [s for s in spec.split(",") if s.strip()]:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).name, item
        name = name.strip()
        if name in out:
            raise ValueError(f"source name {name!r} given twice in source_dir={spec!r}; name them: NAME=DIR")
        out[name] = Path(path.strip()).expanduser()
    if not out:
        raise ValueError("source_dir is empty; expected DIR or NAME=DIR[,NAME=DIR...]")
    return out


# ------------------------------------------------------------------------------------------------- aggregate
def aggregate(sources: dict[str, Path | tuple[Path, Sequence[Path]]] | Sequence[str | Path], out_dir: str | Path,
              min_bytes: int = MIN_BYTES, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Copy the kick-named files of ``sources`` flat into ``out_dir`` and write ``metadata.csv``.

    Args:
        sources: ``{name: folder}`` (searched recursively) or ``{name: (folder, files)}`` (those files, paths
            inside ``folder``); a plain list of folders is named after their basenames.
        out_dir: destination; files are named ``<first 10 hex of sha1(content)>_<original name>``; a file whose
            content was already copied is recorded as a duplicate and not copied again.

    Returns:
        A report ``{"kept": n, "skipped": {reason: count}, "duplicates": [...], "sources": {name: kept}}``,
        also written to ``out_dir/aggregate_report.json``.
    """
    if not isinstance(sources, dict):
        sources = {Path(s).name: Path(s) for s in sources}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exts = {e.lower() for e in AUDIO_EXTENSIONS}
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    skipped: dict[str, int] = {}
    duplicates: list[dict[str, str]] = []
    per_source: dict[str, int] = {}
    for name, spec in sources.items():
        folder, listed = (Path(spec[0]), [Path(f) for f in spec[1]]) if isinstance(spec, tuple) else (Path(spec), None)
        if not folder.is_dir():
            raise FileNotFoundError(f"kick_aggregate: source {name!r} folder {str(folder)!r} does not exist")
        found = listed if listed is not None else [p for p in folder.rglob("*") if p.is_file()]
        for path in sorted(p for p in found if p.suffix.lower() in exts):
            size = path.stat().st_size
            reason = kick_name_reason(path.name, size if (min_bytes, max_bytes) == (MIN_BYTES, MAX_BYTES) else None)
            if reason is None and not (min_bytes <= size <= max_bytes):
                reason = f"size {size} B outside [{min_bytes}, {max_bytes}]"
            if reason is not None:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            data = path.read_bytes()
            digest = hashlib.sha1(data).hexdigest()[:10]
            if digest in seen:
                duplicates.append({"original_path": str(path), "same_as": seen[digest]})
                continue
            target = f"{digest}_{path.name}"
            seen[digest] = target
            if not (out / target).is_file() or (out / target).stat().st_size != size:
                atomic_write_bytes(out / target, data)
            rel_parent = path.parent.relative_to(folder).as_posix()
            rows.append({
                "filename": target, "original_path": str(path), "keywords": " ".join(keywords_from_name(path.stem)),
                "source": name, "group": drum_group(f"{name}/{rel_parent}" if rel_parent != "." else name, path.stem),
            })
            per_source[name] = per_source.get(name, 0) + 1
    if not rows:
        raise ValueError(f"kick_aggregate: no kick-named file found in the sources {sorted(sources)}")
    _write_csv(out / "metadata.csv", rows, METADATA_FIELDS)
    report = {"kept": len(rows), "sources": per_source, "skipped": skipped, "duplicates": duplicates}
    atomic_write_json(out / "aggregate_report.json", report)
    return report


# ------------------------------------------------------------------------------------------------- preprocess
def preprocess(in_dir: str | Path, out_dir: str | Path, mel: MelConfig | None = None, peak_db: float = -1.0,
               fade_seconds: float = 0.2, on_bad_file: str = "skip", progress: bool = True) -> dict[str, Any]:
    """Turn an aggregated folder (``metadata.csv`` + files) into training arrays (see the module docstring).

    Returns the manifest. Reuses ``out_dir`` when its manifest has the same input/settings key.

    Raises:
        AudioLoadError: ``on_bad_file="error"`` and some files are unreadable or silent (all of them named).
    """
    if on_bad_file not in ("skip", "error"):
        raise ValueError(f"on_bad_file must be 'skip' or 'error', got {on_bad_file!r}")
    mel = mel or MelConfig()
    src = Path(in_dir)
    meta_path = src / "metadata.csv"
    if not meta_path.is_file():
        raise FileNotFoundError(f"kick_preprocess: {meta_path} does not exist (run kick_aggregate first)")
    rows = read_csv(meta_path)
    missing_cols = [c for c in METADATA_FIELDS if rows and c not in rows[0]]
    if missing_cols:
        raise ValueError(f"{meta_path}: missing columns {missing_cols} (expected {list(METADATA_FIELDS)})")
    files = [src / r["filename"] for r in rows]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise FileNotFoundError(f"{meta_path} lists {len(absent)} missing files, e.g. {absent[:3]}")
    params = {"version": PREPROCESS_VERSION, "mel": mel.to_dict(), "clip_samples": CLIP_SAMPLES,
              "peak_db": peak_db, "fade_seconds": fade_seconds, "on_bad_file": on_bad_file}
    key = content_hash([*files, meta_path], params, root=src)
    out = Path(out_dir)
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if old.get("key") == key:
            log.info("kick_preprocess: %s is up to date (%d clips)", out, old["n_clips"])
            return old
    out.mkdir(parents=True, exist_ok=True)
    clips: list[np.ndarray] = []
    kept: list[dict[str, Any]] = []
    bad: list[dict[str, str]] = []
    fade = int(round(fade_seconds * mel.sample_rate))
    it = list(zip(rows, files))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="kick_preprocess", unit="file")
    for row, path in it:
        try:
            audio = load_audio(path, mel.sample_rate).numpy()
            clip = prepare_clip(audio, CLIP_SAMPLES, peak_db, fade, name=str(path))
        except (AudioLoadError, SilentClipError) as exc:
            bad.append({"file": row["filename"], "original_path": row["original_path"], "reason": str(exc)})
            continue
        clips.append(clip)
        kept.append({**{k: row[k] for k in METADATA_FIELDS}, "index": len(kept), "input_samples": len(audio)})
    if bad and on_bad_file == "error":
        listing = "\n".join(f"  {b['original_path']}: {b['reason']}" for b in bad[:20])
        raise AudioLoadError(f"kick_preprocess: {len(bad)} unreadable/silent files (on_bad_file=skip to drop them):\n"
                             f"{listing}{' ...' if len(bad) > 20 else ''}")
    for b in bad:
        warnings.warn(f"kick_preprocess: skipped {b['original_path']}: {b['reason']}", stacklevel=2)
    if not clips:
        raise ValueError(f"kick_preprocess: no usable clip in {src}")
    pcm = np.round(np.stack(clips) * 32767.0).astype(np.int16)
    audio_arr = pcm.astype(np.float32) / 32767.0  # the mel of exactly the stored samples (vocoder target = input)
    mels = np.concatenate([mel(torch.from_numpy(audio_arr[i:i + 64])).numpy()
                           for i in range(0, len(audio_arr), 64)]).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, pcm)
    atomic_write_bytes(out / "audio.npy", buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, mels)
    atomic_write_bytes(out / "mel.npy", buf.getvalue())
    _write_csv(out / "metadata.csv", kept, ["index", *METADATA_FIELDS, "input_samples"])
    manifest = {"key": key, "n_clips": len(kept), "skipped": bad, "params": params, "in_dir": str(src),
                "audio_shape": list(audio_arr.shape), "mel_shape": list(mels.shape),
                "sources": {s: sum(1 for r in kept if r["source"] == s) for s in sorted({r["source"] for r in kept})}}
    atomic_write_json(manifest_path, manifest)  # last: a folder without it is incomplete
    return manifest


# ------------------------------------------------------------------------------------------------- soundfonts
#: FluidR3 GM drum kits (bank 128 programs) and the two GM kick notes.
FLUID_KITS = {0: "standard", 8: "room", 16: "power", 24: "electronic", 25: "tr808", 32: "jazz", 40: "brush",
              48: "orchestra"}
GM_KICK_NOTES = (35, 36)
VELOCITIES = (40, 70, 100, 127)


def _drum_midi(path: Path, note: int, velocity: int, channel: int, program: int, seconds: float = 2.0) -> None:
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    tr.append(mido.Message("program_change", channel=channel, program=program, time=0))
    tr.append(mido.Message("note_on", channel=channel, note=note, velocity=velocity, time=0))
    tr.append(mido.Message("note_off", channel=channel, note=note, velocity=0,
                           time=int(mido.second2tick(seconds, 480, 500000))))
    tr.append(mido.MetaMessage("end_of_track", time=0))
    mid.save(str(path))


def render_soundfont_kicks(out_dir: str | Path, soundfonts: dict[str, tuple[Path, int, dict[int, str]]],
                           velocities: Sequence[int] = VELOCITIES, notes: Sequence[int] = GM_KICK_NOTES,
                           progress: bool = True) -> list[Path]:
    """Render every (soundfont, kit, note, velocity) kick with fluidsynth at 44.1 kHz.

    Args:
        soundfonts: ``{name: (sf2 path, MIDI channel, {program: kit name})}`` (channel 9 = GM drum bank).
    Files: ``kick_<name>_<kit>_n<note>_vel<velocity>.wav`` (velocity is not part of the drum group).
    """
    from audiolab.audio.midi import render_wav

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(n, sf, ch, prog, kit, note, vel) for n, (sf, ch, kits) in soundfonts.items()
            for prog, kit in kits.items() for note in notes for vel in velocities]
    written = []
    it = jobs
    if progress:
        from tqdm import tqdm

        it = tqdm(jobs, desc="soundfont kicks", unit="file")
    for name, sf, channel, program, kit, note, vel in it:
        target = out / f"kick_{name}_{kit}_n{note}_vel{vel:03d}.wav"
        if not target.is_file():
            mid = out / f".{target.stem}.mid"
            tmp = out / f".{target.stem}.tmp.wav"
            _drum_midi(mid, note, vel, channel, program)
            render_wav(mid, tmp, soundfont=sf, sample_rate=SAMPLE_RATE)
            mid.unlink()
            audio, _sr = _read_mono(tmp)
            tmp.unlink()
            if np.abs(audio).max() < 1e-4:  # this kit has no sample on that note
                continue
            from audiolab.audio.io import save_audio

            save_audio(target, audio[: int(2.5 * SAMPLE_RATE)], SAMPLE_RATE)
        written.append(target)
    return written


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return x.mean(axis=1), int(sr)


def build_kick_data(out_dir: str | Path = "data/kick", work_dir: str | Path | None = None, synth_n: int = 2000,
                    seed: int = 0, include: Sequence[str] = ("sonicpi", "lmms", "hydrogen", "fluidr3", "avldrums",
                                                               "synthetic"),
                    progress: bool = True) -> dict[str, Any]:
    """``make data``: gather the real kicks the Debian packages provide, render the soundfont kicks, write the
    synthetic labelled set, aggregate everything into ``<work_dir>/raw`` and preprocess it into ``out_dir``.

    Package files come from the data-source registry (:mod:`audiolab.data.sources`: sonic-pi-samples, lmms-common,
    hydrogen-data, avldrums.lv2-soundfont, fluid-soundfont-gm); ``work_dir`` defaults to ``<out_dir>_work``.
    """
    from audiolab.data.sources import locate, source_files
    from audiolab.models.kick.synth import write_synthetic_set

    out = Path(out_dir)
    work = Path(work_dir) if work_dir else out.parent / f"{out.name}_work"
    sources: dict[str, Path | tuple[Path, list[Path]]] = {}
    inc = set(include)
    for name, source in (("sonicpi", "sonicpi_kicks"), ("lmms", "lmms_drums"), ("hydrogen", "hydrogen_drumkits")):
        if name in inc:  # the registry (audiolab.data.sources) names the package of a missing folder
            sources[name] = (locate(source), source_files(source))
    fonts: dict[str, tuple[Path, int, dict[int, str]]] = {}
    if "fluidr3" in inc:
        fonts["fluidr3"] = (locate("fluidr3_gm"), 9, FLUID_KITS)
    if "avldrums" in inc:
        for source, nick in (("avldrums_black_pearl", "blackpearl"), ("avldrums_red_zeppelin", "redzeppelin")):
            fonts[f"avl{nick}"] = (locate(source), 0, {0: "kit"})
    if fonts:
        render_soundfont_kicks(work / "soundfonts", fonts, progress=progress)
        sources["soundfonts"] = work / "soundfonts"
    if "synthetic" in inc and synth_n > 0:
        sources["synthetic"] = write_synthetic_set(work / "synthetic", n=synth_n, seed=seed, progress=progress)
    report = aggregate(sources, work / "raw")
    log.info("kick_aggregate: %s", json.dumps({k: report[k] for k in ("kept", "sources", "skipped")}))
    return preprocess(work / "raw", out, progress=progress)


# ------------------------------------------------------------------------------------------------- CLI
def aggregate_main(argv: list[str]) -> None:
    """``python -m audiolab.prepare kick_aggregate source_dir=DIR[,NAME=DIR...] out_dir=DIR``."""
    kw = parse_key_values(argv, {"source_dir": str, "out_dir": str, "min_bytes": int, "max_bytes": int},
                          recipe="kick_aggregate", required=("source_dir", "out_dir"))
    report = aggregate(_parse_sources(kw.pop("source_dir")), kw.pop("out_dir"), **kw)
    print(json.dumps({k: report[k] for k in ("kept", "sources", "skipped")}, indent=1))


def preprocess_main(argv: list[str]) -> None:
    """``python -m audiolab.prepare kick_preprocess in_dir=DIR out_dir=DIR [on_bad_file=skip|error]``."""
    kw = parse_key_values(argv, {"in_dir": str, "out_dir": str, "on_bad_file": str, "peak_db": float,
                                 "fade_seconds": float, "progress": boolean},
                          recipe="kick_preprocess", required=("in_dir", "out_dir"))
    m = preprocess(kw.pop("in_dir"), kw.pop("out_dir"), **kw)
    print(json.dumps({k: m[k] for k in ("n_clips", "sources", "mel_shape")}), f"skipped={len(m['skipped'])}")


def synth_main(argv: list[str]) -> None:
    """``python -m audiolab.prepare kick_synth out_dir=DIR [n=2000] [seed=0]``."""
    from audiolab.models.kick.synth import write_synthetic_set

    kw = parse_key_values(argv, {"out_dir": str, "n": int, "seed": int, "progress": boolean}, recipe="kick_synth",
                          required=("out_dir",))
    print(write_synthetic_set(kw.pop("out_dir"), **kw))


def data_main(argv: list[str]) -> None:
    """``python -m audiolab.prepare kick_data [out_dir=data/kick] [synth_n=2000] [seed=0] [include=a,b]``."""
    kw = parse_key_values(argv, {"out_dir": str, "work_dir": str, "synth_n": int, "seed": int,
                                 "include": comma_list, "progress": boolean}, recipe="kick_data")
    m = build_kick_data(**kw)
    print(json.dumps({k: m[k] for k in ("n_clips", "sources", "mel_shape")}), f"skipped={len(m['skipped'])}")


# ------------------------------------------------------------------------------------------------- datasets
class KickStore:
    """The arrays of a ``kick_preprocess`` folder: ``audio`` int16 ``[N, 88200]`` (memory-mapped), ``mel``
    float32 ``[N, 128, 173]`` and ``rows`` (metadata dicts, ``keywords`` split into a list)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest = self.root / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"kick data root {str(self.root)!r} has no manifest.json; {ROOT_HINT}")
        self.manifest = json.loads(manifest.read_text())
        self.rows = read_csv(self.root / "metadata.csv")
        for r in self.rows:
            r["keywords"] = [k for k in r["keywords"].split(" ") if k]
        self.mel = np.load(self.root / "mel.npy")
        self._audio: np.ndarray | None = None
        if len(self.rows) != len(self.mel):
            raise ValueError(f"{self.root}: metadata.csv has {len(self.rows)} rows but mel.npy {len(self.mel)} clips")

    @property
    def audio(self) -> np.ndarray:
        if self._audio is None:
            self._audio = np.load(self.root / "audio.npy", mmap_mode="r")
        return self._audio

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_audio": None}

    def waveform(self, i: int) -> np.ndarray:
        """float32 ``[88200]`` of clip ``i``."""
        return np.asarray(self.audio[i], dtype=np.float32) / 32767.0


class MelDataset(Dataset):
    """Whole clips: ``{"mel": [1, n_mels, frames], "keywords": [V] multi-hot, "index": int}``."""

    def __init__(self, store: KickStore, indices: Sequence[int], keywords: np.ndarray) -> None:
        self.store, self.indices, self.keywords = store, list(indices), keywords

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i) % len(self.indices)  # the training sampler folds the epoch into the index
        k = self.indices[i]
        return {"mel": torch.from_numpy(self.store.mel[k][None].copy()), "keywords": torch.from_numpy(self.keywords[i]),
                "index": k}


class CropDataset(Dataset):
    """Vocoder items ``{"audio": [crop], "mel": [n_mels, crop // hop], "index": int, "start_frame": int}``
    aligned to the hop.

    ``crop_frames=None``: the whole clip (all frames; audio zero-padded to ``frames * hop``). Otherwise a crop
    starting at frame ``k`` takes mel frames ``k .. k + crop_frames`` and samples ``k * hop .. (k + crop_frames)
    * hop`` (the generator maps frame ``j`` to samples ``j * hop .. (j + 1) * hop``), with ``k`` drawn per
    ``(seed, epoch, item)`` when ``random`` (index ``epoch * len + i``, see :class:`_ShuffledEpochSampler`) or frame 0
    (the attack, the part that is hardest to get right) otherwise.
    """

    def __init__(self, store: KickStore, indices: Sequence[int], hop: int, crop_frames: int | None,
                 random: bool, seed: int = 0) -> None:
        self.store, self.indices, self.hop = store, list(indices), int(hop)
        self.frames = store.mel.shape[-1]
        self.crop_frames = None if crop_frames is None else int(crop_frames)
        n_samples = store.audio.shape[1]
        if self.crop_frames is not None:
            self.max_start = (n_samples // self.hop) - self.crop_frames  # audio crop must lie inside the clip
            if self.max_start < 0:
                raise ValueError(f"crop of {self.crop_frames} frames is longer than the clip ({n_samples} samples)")
        self.random, self.seed = bool(random), int(seed)

    def __len__(self) -> int:
        return len(self.indices)

    def start_frame(self, index: int) -> int:
        if self.crop_frames is None:
            return 0
        epoch, i = divmod(int(index), len(self.indices))
        if self.random:
            return int(np.random.default_rng([self.seed, epoch, i]).integers(0, self.max_start + 1))
        return 0

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = int(index) % len(self.indices)
        k = self.indices[i]
        wave = self.store.waveform(k)
        if self.crop_frames is None:
            n = self.frames * self.hop
            audio = np.zeros(n, dtype=np.float32)
            audio[: len(wave)] = wave[:n]
            mel = self.store.mel[k]
        else:
            s = self.start_frame(index)
            audio = wave[s * self.hop:(s + self.crop_frames) * self.hop].copy()
            mel = self.store.mel[k][:, s:s + self.crop_frames]
        return {"audio": torch.from_numpy(audio), "mel": torch.from_numpy(np.ascontiguousarray(mel)), "index": k,
                "start_frame": self.start_frame(index)}


class KickDataModule(CachedSplitDataModule):
    """Kick clips of a ``kick_preprocess`` folder, split by source and drum group.

    ``mode="mel"`` (VAE, U-Net): batches ``{"mel": [B, 1, 128, 173], "keywords": [B, V], "index": [B]}``.
    ``mode="crop"`` (vocoder): training batches ``{"audio": [B, crop], "mel": [B, 128, crop / 512]}`` with
    ``crop_samples`` (a multiple of the hop; ``null`` = whole 2-s clips), val/test always whole clips.

    ``build_synthetic=n``: if ``root`` holds no prepared data, write ``n`` synthetic kicks there first (the
    ``debug=fast`` configs use it so every experiment runs on a fresh machine). ``overfit_batches > 0``: train,
    val and test are the first ``batch_size * overfit_batches`` training clips (whole, in order).
    The keyword vocabulary (:attr:`vocabulary`) counts the training split only.
    """

    def __init__(self, root: str, mode: str = "mel", batch_size: int = 32, num_workers: int = 0,
                 crop_samples: int | None = 8192, val_fraction: float = 0.1, test_fraction: float = 0.1,
                 split_seed: int = 0, min_count: int = 5, exclude_keywords: Sequence[str] = DEFAULT_EXCLUDE,
                 sources: Sequence[str] | None = None, build_synthetic: int | None = None,
                 mel: dict | None = None, overfit_batches: int = 0) -> None:
        super().__init__()
        self.mel_cfg = MelConfig.from_dict(mel)
        hop = self.mel_cfg.hop_length
        check_hparams(
            [("data.batch_size", batch_size, int(batch_size) >= 1, ">= 1"),
             ("data.num_workers", num_workers, int(num_workers) >= 0, ">= 0"),
             ("data.min_count", min_count, int(min_count) >= 1, ">= 1"),
             ("data.overfit_batches", overfit_batches, int(overfit_batches) >= 0, ">= 0"),
             ("data.crop_samples", crop_samples, crop_samples is None or (crop_samples > 0 and crop_samples % hop == 0),
              f"a positive multiple of the hop ({hop}) or null (whole clips)"),
             *[(f"data.{k}", v, ok, w) for k, v, ok, w in split_fraction_checks(val_fraction, test_fraction)]],
            [("data.mode", mode, MODES)])
        self.root = str(root)
        self.mode = mode
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.crop_samples = crop_samples
        self.val_fraction, self.test_fraction, self.split_seed = float(val_fraction), float(test_fraction), int(split_seed)
        self.min_count = int(min_count)
        self.exclude_keywords = [str(e) for e in exclude_keywords]
        self.sources = list(sources) if sources else None
        self.build_synthetic = build_synthetic
        self.overfit_batches = int(overfit_batches)
        self.store: KickStore | None = None
        self.indices: dict[str, list[int]] = {}
        self.vocabulary: KeywordVocabulary | None = None

    # -------------------------------------------------------------------------------------------- setup
    def _prepare(self, progress: bool) -> Path:
        root = Path(self.root)
        if (root / "manifest.json").is_file():
            return root
        if not self.build_synthetic:
            raise FileNotFoundError(f"kick data root {str(root)!r} has no manifest.json; {ROOT_HINT}")
        from audiolab.models.kick.synth import write_synthetic_set

        work = root.parent / f"{root.name}_work"
        write_synthetic_set(work / "synthetic", n=int(self.build_synthetic), seed=self.split_seed, progress=progress)
        aggregate({"synthetic": work / "synthetic"}, work / "raw")
        preprocess(work / "raw", root, mel=self.mel_cfg, progress=progress)
        return root

    def prepare_data(self) -> None:
        """Build (``build_synthetic``) or find the prepared folder. Every clip is 2 s (padded by kick_preprocess),
        so the shared too-short rule has nothing to drop; bad files were listed by kick_preprocess."""
        self.cache_path = self._prepare(progress=True)

    def setup(self, stage: str | None = None) -> None:
        if self.store is not None:
            return
        self._cache_manifest()
        self.store = store = KickStore(self.cache_path)
        want = (self.mel_cfg.n_mels, self.mel_cfg.frames(store.audio.shape[1]))
        if tuple(store.mel.shape[1:]) != want:
            raise ValueError(f"{self.root}: mel.npy has shape {tuple(store.mel.shape[1:])}, the mel settings give "
                             f"{want}; re-run kick_preprocess with these settings")
        rows = store.rows
        usable = [i for i, r in enumerate(rows) if self.sources is None or r["source"] in self.sources]
        if not usable:
            raise ValueError(f"{self.root}: no clip from data.sources={self.sources} "
                             f"(available: {sorted({r['source'] for r in rows})})")
        # split paths "<source>/<drum group>/<index>": category = source, split group = drum
        paths = {f"{rows[i]['source']}/{rows[i]['group'].replace('/', '__')}/{i}": i for i in usable}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # single-group sources (train only) are expected for tiny sources
            parts = split_by_category(sorted(paths), self.val_fraction, self.test_fraction, self.split_seed,
                                      "folder_subfolder")
        self.indices = {k: sorted(paths[p] for p in v) for k, v in parts.items()}
        if not self.indices["train"]:
            raise ValueError(f"{self.root}: the train split is empty")
        if self.overfit_batches > 0:
            n = self.batch_size * self.overfit_batches
            self.indices = {k: self.indices["train"][:n] for k in ("train", "val", "test")}
        self.splits = {k: [rows[i]["filename"] for i in v] for k, v in self.indices.items()}
        self.vocabulary = KeywordVocabulary.build((rows[i]["keywords"] for i in self.indices["train"]),
                                                  self.min_count, self.exclude_keywords,
                                                  source=f"the training split of {self.root}")
        self._write_split_manifest()
        hop = self.mel_cfg.hop_length
        for split, idx in self.indices.items():
            if self.mode == "mel":
                ds: Dataset = MelDataset(store, idx, self.vocabulary.encode([rows[i]["keywords"] for i in idx]))
            else:
                train = split == "train" and self.overfit_batches == 0
                crop = (self.crop_samples // hop) if (train and self.crop_samples) else None
                ds = CropDataset(store, idx, hop, crop, random=train, seed=self.split_seed)
            setattr(self, f"{split}_set", ds)
        self.check_splits(f"{len(usable)} clips of {self.root} split by source and drum group")
        self.train_sampler = _ShuffledEpochSampler(len(self.train_set), self.split_seed)

    def _write_split_manifest(self) -> None:
        params = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction, "seed": self.split_seed,
                  "sources": self.sources, "overfit_batches": self.overfit_batches}
        body = {"params": params, "splits": self.splits,
                "vocabulary": self.vocabulary.to_dict() if self.vocabulary else None}
        path = Path(self.root) / "splits" / f"{content_hash([], params)}.json"
        data = (json.dumps(body, indent=1) + "\n").encode()
        try:
            if not path.is_file() or path.read_bytes() != data:
                atomic_write_bytes(path, data)
        except OSError as exc:  # a read-only data folder is fine: the split is deterministic anyway
            log.warning("could not write the split manifest %s (%s)", path, exc)

    # -------------------------------------------------------------------------------------------- access
    def _require(self) -> KickStore:
        if self.store is None:
            self.setup()
        assert self.store is not None
        return self.store

    def split_indices(self, split: str) -> list[int]:
        """Store indices (rows of ``mel.npy`` / ``metadata.csv``) of a split."""
        self._require()
        return list(self.indices[split])

    def mels(self, split: str) -> torch.Tensor:
        """All log-mels of a split, float32 ``[N, 1, n_mels, frames]``."""
        store = self._require()
        return torch.from_numpy(store.mel[self.indices[split]][:, None].copy())

    def rows(self, split: str) -> list[dict[str, Any]]:
        """Metadata rows of a split (``keywords`` as lists)."""
        store = self._require()
        return [store.rows[i] for i in self.indices[split]]

    def waveforms(self, split: str) -> torch.Tensor:
        """All clips of a split, float32 ``[N, 88200]``."""
        store = self._require()
        return torch.from_numpy(np.stack([store.waveform(i) for i in self.indices[split]]))


class _ShuffledEpochSampler(Sampler[int]):
    """A seeded permutation per epoch, yielding ``epoch * n + i`` so random crops also depend on the epoch
    (:class:`CropDataset` folds the epoch out of the index; :class:`MelDataset` indices are taken mod ``n``).

    ``set_epoch`` is called by Lightning; plain loops advance the epoch on every iteration.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return iter((epoch * self.n + int(i)) for i in order)
