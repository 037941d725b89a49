"""Speech from Debian tools: flite synthesis and G.722 decoding (used by the codec and TSE corpus builders).

Tools are found through :mod:`audiolab.data.sources` (``flite``, ``ffmpeg``: a missing one is a
:class:`CorpusError` naming the package), and every writer goes through :func:`run_tool_to_wav`: the tool writes a
WAV to a temporary file next to the output (:func:`audiolab.data.cache.atomic_path`), which is checked (rate,
non-empty) and renamed into place, so an interrupted build never leaves a partial file.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import soundfile as sf

from audiolab.data import sources as data_sources
from audiolab.data.cache import atomic_path

__all__ = ["CorpusError", "FLITE_RATE", "G722_RATE", "locate_tool", "run_tool_to_wav", "render_flite", "decode_g722"]

FLITE_RATE = 16000
G722_RATE = 16000


class CorpusError(RuntimeError):
    """A tool, package or input needed by a corpus builder is missing; the message says what to install."""


def locate_tool(name: str) -> Path:
    """:func:`audiolab.data.sources.locate` with a missing source as a :class:`CorpusError` naming the package."""
    try:
        return data_sources.locate(name)
    except data_sources.SourceMissing as exc:
        raise CorpusError(str(exc)) from None


def run_tool_to_wav(out: Path, cmd_for: Callable[[Path], list[str]], check_rate: int | None) -> None:
    """Run ``cmd_for(tmp)`` writing a WAV to a temporary file next to ``out``, check it, then rename to ``out``
    (:func:`audiolab.data.cache.atomic_path`: the user's umask mode, no temporary file left on failure)."""
    with atomic_path(out, suffix=".wav") as tmp:
        cmd = cmd_for(tmp)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CorpusError(f"{out}: {cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        info = sf.info(str(tmp))
        if check_rate is not None and info.samplerate != check_rate:
            raise CorpusError(f"{out}: expected {check_rate} Hz, the tool wrote {info.samplerate} Hz")
        if info.frames == 0:
            raise CorpusError(f"{out}: the tool wrote no samples")


def render_flite(text: str, voice: str, out: str | os.PathLike) -> None:
    """Speak ``text`` with flite ``voice`` into the WAV ``out`` (16 kHz mono PCM_16; atomic write).

    Raises:
        CorpusError: flite is missing, the voice is unknown, or flite wrote no audio / another rate.
    """
    exe = str(locate_tool("flite"))
    run_tool_to_wav(Path(out), lambda tmp: [exe, "-voice", voice, "-t", text, "-o", str(tmp)], FLITE_RATE)


def decode_g722(src: str | os.PathLike, out: str | os.PathLike, ffmpeg: str | None = None) -> None:
    """Decode a raw G.722 file to a 16 kHz mono PCM_16 WAV at ``out`` with ffmpeg (atomic write)."""
    exe = ffmpeg or str(locate_tool("ffmpeg"))
    run_tool_to_wav(Path(out), lambda tmp: [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "g722",
                                            "-i", str(src), "-f", "wav", "-acodec", "pcm_s16le", str(tmp)], G722_RATE)
