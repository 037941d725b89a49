"""External data sources: which package provides each file, folder or program a data builder reads.

One table, :data:`SOURCES`, for every family. Data builders never spell a system path: they call :func:`locate`
(the file, folder or program of a source) or :func:`source_files` (the files a folder source's globs select), and
a missing input is a one-line :class:`SourceMissing` naming the package to install and ``make data``.

The tests (``tests/data/test_sources.py``) hold the table to the machine, so a builder cannot depend on a path
that ``make data`` does not install (a file of another package, or a link that some package's maintainer script
creates, like ``/usr/share/asterisk/sounds/en`` or ``/usr/share/sounds/sf2/default-GM.sf2``):

- every path resolves, and ``dpkg -S`` attributes it (and the files its globs select) to the entry's package;
- every Debian package named here is in the Makefile's ``make data`` apt-get line, and that line installs
  nothing else; PyPI entries are in pyproject's ``data`` extra (or the core dependencies) and own the located file;
- no module under ``src/audiolab`` other than this one contains a system path (``/usr/...``, ``/opt/...``).

Adding a source (e.g. a drum-kit folder for a new family) is one :class:`DataSource` line in :data:`SOURCES` plus
its package on the ``make data`` apt-get line; find the path with ``dpkg -L <package>``.
``python -m audiolab.data.sources`` prints the table and what is missing on this machine.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DataSource", "SOURCES", "SourceMissing", "get", "locate", "source_files", "install_hint",
           "apt_packages", "pip_packages"]

_KINDS = ("file", "dir", "program")
_INSTALLERS = ("apt", "pip")


class SourceMissing(FileNotFoundError):
    """A data source is not on this machine; the message names the package that provides it."""


@dataclass(frozen=True)
class DataSource:
    """One file, folder or program a data builder reads, and the package that provides it.

    Attributes:
        name: key the builders use (``locate("fluidr3_gm")``); a ``program`` source is named after its program.
        package: the Debian package (``installer="apt"``) or PyPI distribution (``"pip"``) that installs ``path``.
        path: ``apt``: the absolute path, as ``dpkg -L <package>`` lists it; ``pip``: a glob relative to the
            distribution's install folder, as ``importlib.metadata.files(<package>)`` lists it.
        kind: ``"file"``, ``"dir"`` or ``"program"`` (an executable; found on ``PATH`` as a fallback when
            ``path`` is absent, e.g. on a machine without apt where the user installed it).
        globs: for ``dir`` sources, the files the builders read, relative to ``path`` (``**`` recurses).
        used_by: the builders that read it (recipes / modules), for the table and the docs.
        installer: ``"apt"`` (installed by ``make data``'s apt-get line) or ``"pip"`` (pyproject's ``data`` extra).
        note: anything a maintainer must know (e.g. which tempting path is *not* provided).
    """

    name: str
    package: str
    path: str
    kind: str
    globs: tuple[str, ...] = ()
    used_by: tuple[str, ...] = ()
    installer: str = "apt"
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"DataSource {self.name}: kind must be one of {_KINDS}, got {self.kind!r}")
        if self.installer not in _INSTALLERS:
            raise ValueError(f"DataSource {self.name}: installer must be one of {_INSTALLERS}, got {self.installer!r}")
        if self.installer == "apt" and not self.path.startswith("/"):
            raise ValueError(f"DataSource {self.name}: an apt path must be absolute, got {self.path!r}")
        if self.globs and self.kind != "dir":
            raise ValueError(f"DataSource {self.name}: globs need kind='dir'")


#: Every external input of every data builder. Add a source here (one line) and its package to ``make data``.
SOURCES: tuple[DataSource, ...] = (
    DataSource("flite", "flite", "/usr/bin/flite", "program", used_by=("codec_corpus", "tse_corpus"),
               note="the voices kal16, awb, rms, slt are built into flite (libflite1, a dependency)"),
    DataSource("fluidsynth", "fluidsynth", "/usr/bin/fluidsynth", "program",
               used_by=("codec_corpus", "ddsp_demo", "tokenlm_music", "kick_data")),
    DataSource("fluidr3_gm", "fluid-soundfont-gm", "/usr/share/sounds/sf2/FluidR3_GM.sf2", "file",
               used_by=("codec_corpus", "ddsp_demo", "tokenlm_music", "kick_data"),
               note="not default-GM.sf2: that is an update-alternatives link, whichever soundfont package set it"),
    DataSource("asterisk_en_g722", "asterisk-core-sounds-en-g722", "/usr/share/asterisk/sounds/en_US_f_Allison",
               "dir", globs=("**/*.g722",), used_by=("codec_corpus", "tse_corpus"),
               note="not sounds/en: that link is made by the postinst of asterisk-core-sounds-en (not installed)"),
    DataSource("sonicpi_samples", "sonic-pi-samples", "/usr/share/sonic-pi/samples", "dir",
               globs=("loop_*.flac", "ambi_*.flac", "guit_*.flac"), used_by=("codec_corpus", "tokenlm_music")),
    DataSource("sonicpi_kicks", "sonic-pi-samples", "/usr/share/sonic-pi/samples", "dir",
               globs=("bd_*.flac", "drum_bass_*.flac", "drum_heavy_kick.flac", "elec_*kick*.flac"), used_by=("kick_data",)),
    DataSource("lmms_drums", "lmms-common", "/usr/share/lmms/samples", "dir",
               globs=("drums/*.ogg", "beats/*kick*.ogg"), used_by=("kick_data",),
               note="a few .ogg files are WAV with an unreadable codec: kick_preprocess lists and skips them"),
    DataSource("hydrogen_drumkits", "hydrogen-data", "/usr/share/hydrogen/data/drumkits", "dir",
               globs=("*/*.wav", "*/*.flac"), used_by=("kick_data",)),
    DataSource("avldrums_black_pearl", "avldrums.lv2-soundfont", "/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2", "file",
               used_by=("kick_data",), note="not /usr/lib/lv2/avldrums.lv2/...: those are links to these files"),
    DataSource("avldrums_red_zeppelin", "avldrums.lv2-soundfont", "/usr/share/sounds/sf2/Red_Zeppelin_4_LV2.sf2",
               "file", used_by=("kick_data",)),
    DataSource("chromium", "chromium", "/usr/bin/chromium", "program", used_by=("tests/models/kick/test_kick_serve.py",),
               note="headless browser of the kick web page test (not data, but a system program a check reads)"),
    DataSource("chromedriver", "chromium-driver", "/usr/bin/chromedriver", "program",
               used_by=("tests/models/kick/test_kick_serve.py",)),
    DataSource("lmms_instruments", "lmms-common", "/usr/share/lmms/samples/instruments", "dir",
               globs=("flute01.ogg", "violin_fingered01.ogg"), used_by=("ddsp_transfer",),
               note="real flute and violin recordings: the DDSP timbre-transfer report (experiments/ddsp_transfer)"),
    DataSource("ffmpeg", "imageio-ffmpeg", "imageio_ffmpeg/binaries/ffmpeg-*", "program", installer="pip",
               used_by=("codec_corpus", "tse_corpus"), note="decodes the asterisk G.722 prompts"),
    # TSE speakers (tse_corpus): festival voices (the folder name is the voice), word recordings, a word list
    DataSource("text2wave", "festival", "/usr/bin/text2wave", "program", used_by=("tse_corpus",)),
    *(DataSource(f"festvox_{pkg.removeprefix('festvox-').replace('-', '_')}", pkg,
                 f"/usr/share/festival/voices/{voice}", "dir", used_by=("tse_corpus",))
      for pkg, voice in (("festvox-kallpc16k", "english/kal_diphone"), ("festvox-kdlpc16k", "english/ked_diphone"),
                         ("festvox-us-slt-hts", "us/cmu_us_slt_arctic_hts"), ("festvox-italp16k", "italian/lp_diphone"),
                         ("festvox-itapc16k", "italian/pc_diphone"), ("festvox-czech-dita", "czech/czech_dita"),
                         ("festvox-czech-krb", "czech/czech_krb"), ("festvox-czech-machac", "czech/czech_machac"),
                         ("festvox-czech-ph", "czech/czech_ph"), ("festvox-suopuhe-lj", "finnish/suo_fi_lj_diphone"),
                         ("festvox-suopuhe-mv", "finnish/hy_fi_mv_diphone"), ("festvox-ca-ona-hts", "catalan/upc_ca_ona_hts"))),
    DataSource("ktuberling_sounds", "ktuberling-data", "/usr/share/ktuberling/sounds", "dir",
               globs=("*/*.ogg", "*/*.wav", "*/*.opus"), used_by=("tse_corpus",),
               note="one folder of isolated words per language (one voice each); the sr* variants are identical"),
    DataSource("wordlist", "wamerican", "/usr/share/dict/american-english", "file", used_by=("tse_corpus",),
               note="not /usr/share/dict/words: that is an update-alternatives link"),
)


def get(name: str) -> DataSource:
    """The registry entry ``name`` (ValueError listing the known names otherwise)."""
    for s in SOURCES:
        if s.name == name:
            return s
    raise ValueError(f"unknown data source {name!r}: known sources {', '.join(s.name for s in SOURCES)} "
                     "(audiolab/data/sources.py)")


def install_hint(source: DataSource | str) -> str:
    """How to install a source: ``apt-get install <pkg> (make data)`` or ``pip install <dist> (...)``."""
    s = get(source) if isinstance(source, str) else source
    if s.installer == "apt":
        return f"apt-get install {s.package} (make data)"
    return f"pip install {s.package} (pip install -e '.[data]', make data)"


def _pip_path(s: DataSource) -> Path | None:
    import importlib.metadata as metadata

    try:
        files = metadata.files(s.package) or []
    except metadata.PackageNotFoundError:
        return None
    hits = sorted(f for f in files if fnmatch.fnmatch(f.as_posix(), s.path))
    return Path(hits[0].locate()) if hits else None


def _usable(p: Path, kind: str) -> bool:
    if kind == "dir":
        return p.is_dir()
    if kind == "program":
        return p.is_file() and os.access(p, os.X_OK)
    return p.is_file()


def locate(name: str) -> Path:
    """The path of source ``name`` on this machine (checked to exist; programs must be executable).

    ``apt`` sources: the registered absolute path. ``pip`` sources: the distribution's file matching the glob.
    ``program`` sources fall back to ``shutil.which(name)`` (a machine without apt, a user-installed tool).

    Raises:
        SourceMissing: not found; the message names the path and the package that provides it.
    """
    s = get(name)
    p = Path(s.path) if s.installer == "apt" else _pip_path(s)
    if p is not None and _usable(p, s.kind):
        return p
    if s.kind == "program":
        exe = shutil.which(s.name)
        if exe is not None:
            return Path(exe)
    where = s.path if s.installer == "apt" else f"{s.path} of the {s.package} wheel"
    raise SourceMissing(f"{s.name}: {where} not found: {install_hint(s)}")


def source_files(name: str, globs: tuple[str, ...] | None = None) -> list[Path]:
    """Sorted files of the folder source ``name`` selected by its globs (or ``globs``), without duplicates.

    Raises:
        SourceMissing: the folder is missing or no file matches (names the package).
    """
    s = get(name)
    root = locate(name)
    pats = s.globs if globs is None else globs
    files = sorted({p for pat in pats for p in root.glob(pat) if p.is_file()})
    if not files:
        raise SourceMissing(f"{s.name}: no {', '.join(pats)} under {root}: {install_hint(s)}")
    return files


def apt_packages() -> list[str]:
    """The Debian packages of the registry (what ``make data``'s apt-get line installs), sorted."""
    return sorted({s.package for s in SOURCES if s.installer == "apt"})


def pip_packages() -> list[str]:
    """The PyPI distributions of the registry (pyproject's ``data`` extra), sorted."""
    return sorted({s.package for s in SOURCES if s.installer == "pip"})


def main(argv: list[str] | None = None) -> int:
    """``python -m audiolab.data.sources``: the table, with what is missing here; exit 1 if anything is."""
    missing = 0
    for s in SOURCES:
        try:
            where = str(locate(s.name))
        except SourceMissing:
            where, missing = f"MISSING ({install_hint(s)})", missing + 1
        print(f"{s.name:18s} {s.installer}:{s.package:30s} {where}  [{', '.join(s.used_by)}]")
    print(f"apt: {' '.join(apt_packages())}\npip: {' '.join(pip_packages())}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
