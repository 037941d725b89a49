"""Speech from Debian tools: flite synthesis and G.722 decoding (used by the codec and TSE corpus builders).

Every writer goes through :func:`run_tool_to_wav`: the tool writes a WAV to a temporary file next to the output,
the file is checked (rate, non-empty) and renamed into place, so an interrupted build never leaves a partial file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import soundfile as sf

__all__ = ["CorpusError", "FLITE_RATE", "G722_RATE", "which_tool", "ffmpeg_exe", "run_tool_to_wav", "render_flite",
           "decode_g722"]

FLITE_RATE = 16000
G722_RATE = 16000


class CorpusError(RuntimeError):
    """A tool, package or input needed by a corpus builder is missing; the message says what to install."""


def which_tool(name: str, package: str) -> str:
    """Path of the executable ``name``; :class:`CorpusError` naming the Debian ``package`` when it is missing."""
    exe = shutil.which(name)
    if exe is None:
        raise CorpusError(f"{name} not found: apt-get install {package} (make data)")
    return exe


def ffmpeg_exe() -> str:
    """The ffmpeg binary of the ``imageio-ffmpeg`` wheel (``pip install -e '.[data]'``), else ``ffmpeg`` on PATH."""
    try:
        import imageio_ffmpeg
    except ImportError:
        exe = shutil.which("ffmpeg")
        if exe is None:
            raise CorpusError(
                "ffmpeg not found: pip install imageio-ffmpeg (pip install -e '.[data]', make data)"
            ) from None
        return exe
    return imageio_ffmpeg.get_ffmpeg_exe()


def _tmp_path(out: Path, suffix: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=suffix, dir=str(out.parent))
    os.close(fd)
    return Path(tmp)


def run_tool_to_wav(out: Path, cmd_for: Callable[[Path], list[str]], check_rate: int | None) -> None:
    """Run ``cmd_for(tmp)`` writing a WAV to a temporary file next to ``out``, check it, then rename to ``out``."""
    tmp = _tmp_path(out, ".wav")
    try:
        proc = subprocess.run(cmd_for(tmp), capture_output=True, text=True)
        if proc.returncode != 0:
            raise CorpusError(f"{out}: {cmd_for(tmp)[0]} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        info = sf.info(str(tmp))
        if check_rate is not None and info.samplerate != check_rate:
            raise CorpusError(f"{out}: expected {check_rate} Hz, the tool wrote {info.samplerate} Hz")
        if info.frames == 0:
            raise CorpusError(f"{out}: the tool wrote no samples")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


def render_flite(text: str, voice: str, out: str | os.PathLike) -> None:
    """Speak ``text`` with flite ``voice`` into the WAV ``out`` (16 kHz mono PCM_16; atomic write).

    Raises:
        CorpusError: flite is missing, the voice is unknown, or flite wrote no audio / another rate.
    """
    exe = which_tool("flite", "flite")
    run_tool_to_wav(Path(out), lambda tmp: [exe, "-voice", voice, "-t", text, "-o", str(tmp)], FLITE_RATE)


def decode_g722(src: str | os.PathLike, out: str | os.PathLike, ffmpeg: str | None = None) -> None:
    """Decode a raw G.722 file to a 16 kHz mono PCM_16 WAV at ``out`` with ffmpeg (atomic write)."""
    exe = ffmpeg or ffmpeg_exe()
    run_tool_to_wav(Path(out), lambda tmp: [exe, "-hide_banner", "-loglevel", "error", "-y", "-f", "g722",
                                            "-i", str(src), "-f", "wav", "-acodec", "pcm_s16le", str(tmp)], G722_RATE)
