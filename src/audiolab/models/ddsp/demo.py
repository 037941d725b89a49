"""Compose and render the embedded DDSP demo data (monophonic violin and flute).

The melodies are composed with :func:`audiolab.audio.midi.compose` (seeded, deterministic), written as standard
MIDI files with ``mido`` and rendered with the ``fluidsynth`` command-line synthesiser and the MIT-licensed
FluidR3_GM soundfont (Debian package ``fluid-soundfont-gm``). The rendered audio is stored as mono 16 kHz 16-bit
FLAC.

Layout written under ``--out`` (default: the embedded demo folder ``audiolab/assets/ddsp_demo``)::

    midi/violin_00.mid ...        # the composed melodies
    audio/violin/violin_00.flac   # default DDSP training data (violin only)
    audio/flute/flute_00.flac     # a second timbre (held-out / transfer demos)
    manifest.json                 # file, instrument, GM program, seconds, MIDI notes

Re-render (needs ``fluidsynth`` and FluidR3_GM.sf2: ``make data`` installs both; :mod:`audiolab.data.sources`)::

    python -m audiolab.models.ddsp.demo            # write everything
    python -m audiolab.models.ddsp.demo --verify   # + pitch check of rendered f0 against the MIDI notes

Instruments the model never trained on (``make data``; not embedded: ~80 s each)::

    python -m audiolab.models.ddsp.demo --instruments data/ddsp_instruments
    # -> data/ddsp_instruments/{cello,trumpet,flute}/<name>_NN.flac + manifest.json: :data:`INSTRUMENT_SETS`,
    #    each file a few phrases (split by file, so no phrase is in two splits); train with
    #    data.root=data/ddsp_instruments/cello

Rendering is deterministic: a rerun with the same fluidsynth/soundfont gives identical audio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from audiolab.audio.midi import (
    CELLO,
    FLUTE,
    TRUMPET,
    VIOLIN,
    InstrumentSpec,
    compose,
    render_wav,
    to_mono_trimmed,
    write_midi,
)

SAMPLE_RATE = 16000
HERE = Path(__file__).resolve().parents[2] / "assets" / "ddsp_demo"

# (instrument, target seconds of each file); seeds derive from the index, so the set is reproducible.
PLAN: list[tuple[InstrumentSpec, float]] = [
    (VIOLIN, s) for s in (9.0, 12.0, 8.5, 14.0, 10.0, 11.5, 8.0, 13.0, 9.5, 10.5)
] + [(FLUTE, s) for s in (10.0, 9.0, 11.0)]

#: Unseen-instrument sets (``--instruments``): 7 files of 8-12 s per instrument (>= 60 s each); instrument ``j``'s
#: file ``k`` uses seed ``5000 + 100 * j + k`` (the embedded demo uses 1000 on, so the flute melodies differ).
INSTRUMENT_SECONDS: tuple[float, ...] = (10.0, 8.5, 12.0, 9.0, 11.0, 8.0, 10.5)
INSTRUMENT_SETS: list[InstrumentSpec] = [CELLO, TRUMPET, FLUTE]


def render_all(out: Path = HERE, soundfont: Path | None = None,
               plan: list[tuple[InstrumentSpec, float]] | None = None, seed_base: int = 1000) -> dict:
    """Compose, write MIDI, render and encode every file of ``plan`` (default :data:`PLAN`); write
    ``manifest.json``. File ``i`` of the plan uses seed ``seed_base + i``.

    ``soundfont``: default FluidR3_GM (:func:`audiolab.audio.midi.default_soundfont`)."""
    import soundfile as sf

    entries = []
    counters: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (spec, seconds) in enumerate(PLAN if plan is None else plan):
            k = counters.get(spec.name, 0)
            counters[spec.name] = k + 1
            stem = f"{spec.name}_{k:02d}"
            seed = seed_base + i
            notes = compose(spec, seconds, seed)
            midi_path = out / "midi" / f"{stem}.mid"
            write_midi(notes, spec.program, midi_path, seed)
            wav = Path(tmp) / f"{stem}.wav"
            render_wav(midi_path, wav, soundfont, sample_rate=SAMPLE_RATE)
            mono = to_mono_trimmed(wav, SAMPLE_RATE)
            flac = out / "audio" / spec.name / f"{stem}.flac"
            flac.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(flac), mono, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            entries.append({
                "file": flac.relative_to(out).as_posix(),
                "midi": midi_path.relative_to(out).as_posix(),
                "instrument": spec.name,
                "gm_program": spec.program,
                "sample_rate": SAMPLE_RATE,
                "seconds": round(len(mono) / SAMPLE_RATE, 3),
                "seed": seed,
                "notes": [asdict(n) for n in notes],
            })
            print(f"{flac.relative_to(out)}: {len(mono) / SAMPLE_RATE:.2f} s, {len(notes)} notes")
    manifest = {
        "soundfont": "FluidR3_GM.sf2 (Frank Wen, MIT licence; Debian fluid-soundfont-gm)",
        "render": "fluidsynth -ni -q -g 0.8 -r 16000 -o synth.reverb.active=0 -o synth.chorus.active=0 -F out.wav FluidR3_GM.sf2 in.mid",
        "files": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def render_instruments(out: Path, soundfont: Path | None = None) -> dict:
    """Render :data:`INSTRUMENT_SETS` into ``out/<instrument>/`` (+ ``out/midi``, ``out/manifest.json``).

    Skipped when ``out/manifest.json`` already lists the same files and seeds (rendering is deterministic)."""
    seeds = [(spec.name, 5000 + 100 * j + k) for j, spec in enumerate(INSTRUMENT_SETS) for k in range(len(INSTRUMENT_SECONDS))]
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        if [(f["instrument"], f["seed"]) for f in old.get("files", [])] == seeds:
            print(f"{out}: already rendered ({len(old['files'])} files)")
            return old
    files = []
    for j, spec in enumerate(INSTRUMENT_SETS):
        manifest = render_all(out, soundfont, plan=[(spec, s) for s in INSTRUMENT_SECONDS], seed_base=5000 + 100 * j)
        for entry in manifest["files"]:  # out/<instrument>/x.flac: one training folder per instrument
            src = out / entry["file"]
            dst = out / entry["instrument"] / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dst)
            entry["file"] = dst.relative_to(out).as_posix()
        files += manifest["files"]
    shutil.rmtree(out / "audio", ignore_errors=True)
    manifest = {k: v for k, v in manifest.items() if k != "files"} | {"files": files}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def verify_pitch(out: Path = HERE, notes_per_file: int = 6, max_files: int | None = None) -> dict[str, float]:
    """Check that the rendered f0 follows the MIDI notes.

    For up to ``notes_per_file`` notes (>= 0.3 s) per file, runs ``librosa.pyin`` on the middle of the note
    and measures the median deviation from the MIDI pitch in cents. Returns summary statistics
    (``median_abs_cents``, ``max_abs_cents``, ``n_notes``) and prints them.
    """
    import librosa
    import soundfile as sf

    manifest = json.loads((out / "manifest.json").read_text())
    devs = []
    for entry in manifest["files"][:max_files]:
        audio, sr = sf.read(str(out / entry["file"]), dtype="float32")
        long_notes = [n for n in entry["notes"] if n["end"] - n["start"] >= 0.3][:notes_per_file]
        for n in long_notes:
            a, b = int((n["start"] + 0.08) * sr), int((n["end"] - 0.05) * sr)
            seg = audio[a:b]
            f_ref = librosa.midi_to_hz(n["pitch"])
            f0, voiced, _ = librosa.pyin(seg, fmin=f_ref / 1.5, fmax=f_ref * 1.5, sr=sr, frame_length=1024, hop_length=128)
            f0 = f0[voiced & np.isfinite(f0)]
            if len(f0) == 0:
                devs.append(float("inf"))
                continue
            devs.append(float(np.median(1200 * np.log2(f0 / f_ref))))
    d = np.abs(np.array(devs))
    stats = {"median_abs_cents": float(np.median(d)), "max_abs_cents": float(d.max()), "n_notes": int(len(d)),
             "within_50_cents": float(np.mean(d < 50))}
    print(json.dumps(stats))
    return stats


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m audiolab.models.ddsp.demo [--out DIR] [--soundfont SF2] [--verify]``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--soundfont", type=Path, default=None, help="default: FluidR3_GM.sf2 (fluid-soundfont-gm)")
    p.add_argument("--verify", action="store_true", help="pitch-check the renders against the MIDI notes")
    p.add_argument("--verify-only", action="store_true", help="only run the pitch check")
    p.add_argument("--instruments", type=Path, default=None, metavar="DIR",
                   help="render the unseen-instrument sets (cello, trumpet, flute) into DIR instead of the demo")
    args = p.parse_args(argv)
    if args.instruments is not None:
        render_instruments(args.instruments, args.soundfont)
        if args.verify:
            verify_pitch(args.instruments)
        return
    if not args.verify_only:
        render_all(args.out, args.soundfont)
    if args.verify or args.verify_only:
        verify_pitch(args.out)


if __name__ == "__main__":
    main()
