"""``python -m audiolab.prepare tokenlm_music out_dir=data/tokenlm_music [codec=CKPT] [melodies=48] [grooves=36]
[seconds=12] [sample_rate=16000] [sonicpi=true] [seed=0]`` — a music set for the token LM, built offline.

Audio (no codec needed; deterministic, re-running keeps finished files)::

    audio/melodic/<instrument>/<tune>.wav     # fiddle tunes of music21's corpus (Ryan's Mammoth Collection, in
                                              # the music21 wheel), rendered with fluidsynth + FluidR3_GM
    audio/percussive/<kit>/groove_NN.wav      # seeded GM drum grooves composed here, rendered on GM drum kits
    audio/percussive/sonicpi/loop_<name>.wav  # sonic-pi drum loops (Debian sonic-pi-samples), tiled to length
    manifest.json, ATTRIBUTION.md

Tags are the folder names (``melodic`` + instrument, ``percussive`` + kit): the token data module reads them from
the sources' paths. With ``codec=CKPT`` the folder is then tokenized into ``tokens/`` (``tokens.npy`` +
``manifest.json``, via ``audiolab.models.codec.tokens.export_tokens``); without one only the audio is built, so a
fresh machine never fails for lack of a trained codec (``make tokenlm-data`` trains a small one first).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from audiolab.audio.io import load_audio, save_audio
from audiolab.data.cache import atomic_write_bytes, atomic_write_json

log = logging.getLogger("audiolab")

SET_VERSION = 1
#: GM programs of the melodic instruments (tag name -> program)
INSTRUMENTS: dict[str, int] = {"piano": 0, "violin": 40, "flute": 73, "guitar": 24, "clarinet": 71, "trumpet": 56}
#: GM drum kits (channel 10 program numbers of the GS/GM2 kits FluidR3 ships)
KITS: dict[str, int] = {"standard": 0, "room": 8, "power": 16, "electronic": 24, "tr808": 25, "jazz": 32, "brush": 40}
SONICPI_LOOPS = ("amen", "amen_full", "breakbeat", "compus", "industrial", "mehackit1", "mehackit2", "mika",
                 "perc1", "perc2", "safari", "tabla")
#: GM drum notes used by the groove composer
KICK, SNARE, CLAP, HAT, OPEN_HAT, CRASH, RIDE, TOM_LO, TOM_MID, TOM_HI = 36, 38, 39, 42, 46, 49, 51, 45, 47, 50
DRUM_CHANNEL = 9


class MusicSetError(RuntimeError):
    """A build step failed (names the file and the tool)."""


# ---------------------------------------------------------------------------------------------------- melodies
def tune_paths(n: int, seed: int) -> list[Path]:
    """``n`` tunes of music21's Ryan's Mammoth Collection, a seeded choice (sorted paths, then permuted)."""
    from music21 import corpus

    paths = sorted(corpus.getComposer("ryansMammoth"))
    if not paths:
        raise MusicSetError("music21's corpus has no 'ryansMammoth' tunes (pip install music21)")
    order = np.random.default_rng(seed).permutation(len(paths))
    return [paths[i] for i in order[: max(0, 3 * n)]]  # spares: some tunes fail to parse or are too short


def melody_events(abc_path: Path, seconds: float, tempo_scale: float) -> list[tuple[float, int, Any]]:
    """Note on/off events (seconds, order, mido message) of a tune, as music21 writes its MIDI (the timings of
    the written MIDI, ties merged), scaled in time by ``tempo_scale`` and cut at ``seconds``."""
    import mido
    from music21 import converter

    score = converter.parse(str(abc_path))
    with tempfile.TemporaryDirectory() as tmp:
        mid_path = Path(tmp) / "tune.mid"
        score.write("midi", fp=str(mid_path))
        mid = mido.MidiFile(str(mid_path))
        now, events, sounding = 0.0, [], set()
        for msg in mid:  # iterating a MidiFile yields messages with .time in seconds
            now += msg.time
            if msg.type not in ("note_on", "note_off"):
                continue
            t = now * tempo_scale
            if t >= seconds:
                break
            on = msg.type == "note_on" and msg.velocity > 0
            (sounding.add if on else sounding.discard)(msg.note)
            events.append((t, 1 if on else 0, mido.Message("note_on" if on else "note_off", note=msg.note,
                                                           velocity=msg.velocity if on else 0)))
    # close notes still sounding at the cut: fluidsynth renders until every voice has died (a held violin never does)
    end = min(seconds, now * tempo_scale)
    events += [(end, 0, mido.Message("note_off", note=n, velocity=0)) for n in sorted(sounding)]
    return events


# ---------------------------------------------------------------------------------------------------- grooves
def compose_groove(seconds: float, seed: int) -> tuple[float, list[tuple[float, int, Any]]]:
    """A seeded drum groove on a 16th grid: kick / snare (+ ghost notes) / hats or ride, a crash on the first bar
    and a tom fill every 4th bar. Returns ``(bpm, events)`` on the GM drum channel."""
    import mido

    rng = np.random.default_rng(seed)
    bpm = float(rng.choice([84, 92, 100, 108, 116, 124, 132]))
    step = 60.0 / bpm / 4
    kick_templates = [[0, 8], [0, 6, 8], [0, 7, 10], [0, 3, 8, 11], [0, 8, 10], [0, 6, 9, 12]]
    kick = kick_templates[int(rng.integers(len(kick_templates)))]
    snare = [4, 12] if rng.random() < 0.8 else [8]
    hat_every = int(rng.choice([2, 1, 4], p=[0.6, 0.3, 0.1]))
    cymbal = RIDE if rng.random() < 0.25 else HAT
    backbeat = CLAP if rng.random() < 0.2 else SNARE
    events: list[tuple[float, int, Any]] = []

    def hit(t: float, note: int, vel: int) -> None:
        vel = int(np.clip(vel + rng.integers(-8, 9), 20, 127))
        events.append((t, 2, mido.Message("note_on", channel=DRUM_CHANNEL, note=note, velocity=vel)))
        events.append((t + 0.08, 0, mido.Message("note_off", channel=DRUM_CHANNEL, note=note, velocity=0)))

    n_steps = int(seconds / step)
    for s in range(n_steps):
        bar, pos = divmod(s, 16)
        t = s * step
        fill = bar % 4 == 3 and pos >= 12
        if fill:
            hit(t, [TOM_HI, TOM_MID, TOM_LO, SNARE][pos - 12], 100)
            continue
        if pos in kick or (rng.random() < 0.05 and pos % 2 == 0):
            hit(t, KICK, 110)
        if pos in snare:
            hit(t, backbeat, 105)
        elif rng.random() < 0.06:
            hit(t, SNARE, 45)  # ghost note
        if pos % hat_every == 0:
            hit(t, OPEN_HAT if (pos == 14 and rng.random() < 0.3) else cymbal, 85 if pos % 4 == 0 else 65)
        if pos == 0 and bar == 0:
            hit(t, CRASH, 100)
    return bpm, events


# ---------------------------------------------------------------------------------------------------- rendering
def _render(events: list, program: int, out: Path, seconds: float, sample_rate: int, kit: int | None = None) -> float:
    """Write MIDI, render with fluidsynth, downmix, cut to ``seconds``, save ``out`` atomically. -> duration (s)."""
    import mido

    from audiolab.audio.midi import render_wav, save_midi_events, to_mono_trimmed

    if kit is not None:  # select the drum kit on the drum channel before any note
        events = [(0.0, -1, mido.Message("program_change", channel=DRUM_CHANNEL, program=kit))] + list(events)
    with tempfile.TemporaryDirectory() as tmp:
        midi, wav = Path(tmp) / "x.mid", Path(tmp) / "x.wav"
        save_midi_events(midi, events, program)
        render_wav(midi, wav, sample_rate=sample_rate)
        mono = to_mono_trimmed(wav, sample_rate=sample_rate)[: int(seconds * sample_rate)]
    if len(mono) == 0 or float(np.abs(mono).max()) < 1e-3:
        raise MusicSetError(f"{out}: fluidsynth rendered silence")
    save_audio(out, mono, sample_rate)
    return len(mono) / sample_rate


def _tile_loop(src: Path, out: Path, seconds: float, sample_rate: int) -> float:
    x = load_audio(src, sample_rate).reshape(-1).numpy()
    reps = int(np.ceil(seconds * sample_rate / max(len(x), 1)))
    y = np.tile(x, reps)[: int(seconds * sample_rate)]
    peak = float(np.abs(y).max()) if len(y) else 0.0
    save_audio(out, y * (0.95 / peak) if peak > 0.95 else y, sample_rate)
    return len(y) / sample_rate


def build_music_set(out_dir: str | Path, melodies: int = 48, grooves: int = 36, seconds: float = 12.0,
                    sample_rate: int = 16000, sonicpi: bool = True, seed: int = 0, progress: bool = True) -> Path:
    """Render (or keep) every file of the set; write ``manifest.json`` and ``ATTRIBUTION.md``. -> audio folder."""
    from tqdm import tqdm

    out = Path(out_dir)
    audio = out / "audio"
    entries: list[dict[str, Any]] = []
    rng = np.random.default_rng(seed)
    names = list(INSTRUMENTS)
    made = 0
    bar = tqdm(total=melodies + grooves, desc="tokenlm_music", unit="file", disable=not progress)
    for path in tune_paths(melodies, seed):
        if made >= melodies:
            break
        inst = names[made % len(names)]
        scale = float(rng.uniform(0.8, 1.25))  # same draw whether or not the file exists (reruns stay identical)
        target = audio / "melodic" / inst / f"{Path(path).stem}.wav"
        if not target.exists():
            try:
                events = melody_events(Path(path), seconds, scale)
            except Exception as err:  # noqa: BLE001 - a tune music21 cannot parse is skipped, not fatal
                log.warning("skipping %s: %s", Path(path).name, err)
                continue
            if len(events) < 16:
                continue
            dur = _render(events, INSTRUMENTS[inst], target, seconds, sample_rate)
            if dur < 0.8 * seconds:
                target.unlink()
                continue
        entries.append({"file": str(target.relative_to(audio)), "kind": "melody", "tune": Path(path).stem,
                        "instrument": inst, "program": INSTRUMENTS[inst], "tempo_scale": round(scale, 4)})
        made += 1
        bar.update(1)
    kits = list(KITS)
    for i in range(grooves):
        kit = kits[i % len(kits)]
        target = audio / "percussive" / kit / f"groove_{i:02d}.wav"
        bpm, events = compose_groove(seconds, seed * 1000 + i)
        if not target.exists():
            _render(events, 0, target, seconds, sample_rate, kit=KITS[kit])
        entries.append({"file": str(target.relative_to(audio)), "kind": "groove", "kit": kit, "bpm": bpm,
                        "seed": seed * 1000 + i})
        bar.update(1)
    bar.close()
    if sonicpi:
        from audiolab.data.sources import SourceMissing, source_files

        try:  # the registry's sonic-pi folder (Debian sonic-pi-samples), only the drum loops
            loops = source_files("sonicpi_samples", globs=tuple(f"loop_{n}.flac" for n in SONICPI_LOOPS))
        except SourceMissing as err:
            log.warning("no sonic-pi loops: %s", err)
            loops = []
        for src in loops:
            name = src.stem[len("loop_"):]
            target = audio / "percussive" / "sonicpi" / f"loop_{name}.wav"
            if not target.exists():
                _tile_loop(src, target, seconds, sample_rate)
            entries.append({"file": str(target.relative_to(audio)), "kind": "loop", "source": str(src)})
    for e in entries:
        e["seconds"] = round(float(_duration(audio / e["file"])), 3)
    atomic_write_json(out / "manifest.json", {"version": SET_VERSION, "sample_rate": sample_rate, "seed": seed,
                                             "seconds": seconds, "files": entries})
    atomic_write_bytes(out / "ATTRIBUTION.md", ATTRIBUTION.encode())
    log.info("tokenlm_music: %d files (%d melodic, %d percussive) in %s", len(entries),
             sum(e["kind"] == "melody" for e in entries), sum(e["kind"] != "melody" for e in entries), audio)
    return audio


def _duration(path: Path) -> float:
    import soundfile as sf

    return sf.info(str(path)).duration


ATTRIBUTION = """# tokenlm_music: sources and licences

| folder | source | licence |
|---|---|---|
| audio/melodic | tunes of Ryan's Mammoth Collection (1883, public domain) from the music21 corpus (music21 wheel, BSD), rendered with fluidsynth and the FluidR3_GM soundfont (Debian `fluid-soundfont-gm`) | tunes: public domain; FluidR3_GM: MIT (Frank Wen) |
| audio/percussive/<kit> | drum grooves composed by audiolab (seeded), rendered with fluidsynth on FluidR3_GM drum kits | compositions: MIT (audiolab); FluidR3_GM: MIT |
| audio/percussive/sonicpi | sonic-pi drum loops (Debian `sonic-pi-samples`), tiled to length | CC0 (per sonic-pi's samples README) |
"""


def main(argv: list[str]) -> None:
    from audiolab.data.cli import boolean, optional, parse_key_values

    opts = parse_key_values(argv, {"out_dir": str, "codec": optional(str), "melodies": int, "grooves": int,
                                   "seconds": float, "sample_rate": int, "sonicpi": boolean, "seed": int,
                                   "device": str}, recipe="tokenlm_music")
    out = Path(opts.get("out_dir", "data/tokenlm_music"))
    audio = build_music_set(out, opts.get("melodies", 48), opts.get("grooves", 36), opts.get("seconds", 12.0),
                            opts.get("sample_rate", 16000), opts.get("sonicpi", True), opts.get("seed", 0))
    codec = opts.get("codec")
    if codec:
        from audiolab.models.codec.tokens import export_tokens

        if not Path(codec).exists():
            raise SystemExit(f"prepare tokenlm_music: codec={codec!r} does not exist (train one: `make tokenlm-codec`)")
        export_tokens(codec, str(audio), str(out / "tokens"), chunk_seconds=0, device=opts.get("device", "cpu"))
    else:
        log.info("no codec= given: audio only. Tokenize with `python -m audiolab.prepare tokenlm_music codec=CKPT` "
                 "or `make tokenlm-data`.")


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    main(sys.argv[1:])
