"""The one ``key=value`` parser of ``python -m audiolab.prepare``: types, and one-line errors naming the key."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from audiolab import prepare
from audiolab.data.cli import NULLS, boolean, comma_list, optional, parse_key_values

KEYS = {"root": str, "n": int, "gain": float, "on": boolean, "limit": optional(int, nulls=(*NULLS, "all")),
        "sources": comma_list}


def test_types_and_spellings():
    got = parse_key_values(["root=/a=b", "n=3", "--gain=-1.5", "on=Yes", "limit=all", "sources=x, y,,z", "n=4"],
                           KEYS, recipe="demo")
    assert got == {"root": "/a=b", "n": 4, "gain": -1.5, "on": True, "limit": None, "sources": ("x", "y", "z")}
    assert parse_key_values(["limit=7", "on=off"], KEYS, recipe="demo") == {"limit": 7, "on": False}
    assert parse_key_values([], KEYS, recipe="demo") == {}


@pytest.mark.parametrize(("argv", "pattern"), [
    (["bogus=1"], r"^prepare demo: unknown key 'bogus' \(keys: root, n, gain, on, limit, sources\)$"),
    (["n=three"], r"^prepare demo: bad value for n: invalid literal for int"),
    (["on=maybe"], r"^prepare demo: bad value for on: expected a boolean, got 'maybe'$"),
    (["/some/dir"], r"^prepare demo: expected key=value, got '/some/dir'"),
    (["n=1"], r"^prepare demo: root=\.\.\. required"),
])
def test_errors_are_one_line_and_name_the_key(argv, pattern):
    with pytest.raises(SystemExit, match=pattern) as exc:
        parse_key_values(argv, KEYS, recipe="demo", required=("root",))
    assert "\n" not in str(exc.value)


def _prepare_fails(capsys, argv: list[str]) -> str:
    """Run ``python -m audiolab.prepare`` in-process: it must exit 2 with one line on stderr; returns that line."""
    with pytest.raises(SystemExit) as exc:
        prepare.main(argv)
    assert exc.value.code == 2, exc.value.code
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize("recipe", sorted(prepare.RECIPES))
def test_every_recipe_rejects_an_unknown_key(recipe, capsys):
    assert _prepare_fails(capsys, [recipe, "bogus=1"]).startswith(f"prepare {recipe}: unknown key 'bogus'")


def test_every_recipe_rejects_a_bad_value(capsys):
    for recipe, arg in (("ddsp", "sample_rate=fast"), ("codec_corpus", "seed=x"), ("codec_tokens", "bandwidth=x")):
        assert _prepare_fails(capsys, [recipe, arg]).startswith(f"prepare {recipe}: bad value for {arg.split('=')[0]}")


def test_unknown_recipe_and_help(capsys):
    assert _prepare_fails(capsys, ["bogus"]).startswith("prepare: unknown recipe 'bogus'")
    prepare.main(["--help"])
    assert "recipes: codec_corpus, codec_tokens, ddsp" in capsys.readouterr().out


def _tone(seconds: float, sr: int = 16000) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


@pytest.fixture
def fake_f0(monkeypatch):
    def estimate_f0(audio, sample_rate, hop_length, **kwargs):
        n = audio.shape[-1] // hop_length
        return torch.full((n,), 440.0), torch.ones(n)

    monkeypatch.setattr("audiolab.models.ddsp.data.estimate_f0", estimate_f0)


def test_bad_data_is_one_line_exit_2(tmp_path, capsys, fake_f0):
    """Was: raw tracebacks for bad data; the silent-file hint named a Python argument the CLI could not take."""
    cache = f"cache_dir={tmp_path / 'cache'}"
    assert "does not exist" in _prepare_fails(capsys, ["ddsp", f"input_dir={tmp_path / 'nope'}", cache])
    root = tmp_path / "audio"
    root.mkdir()
    sf.write(root / "ok.wav", _tone(1.5), 16000)
    sf.write(root / "quiet.wav", np.zeros(16000, dtype=np.float32), 16000)
    line = _prepare_fails(capsys, ["ddsp", f"input_dir={root}", cache, "progress=false"])
    assert line.startswith("prepare ddsp: audio file ") and "quiet.wav' is silent" in line
    assert "data.allow_silent=true" in line and "allow_silent=true for python -m audiolab.prepare" in line
    prepare.main(["ddsp", f"input_dir={root}", cache, "progress=false", "allow_silent=true"])  # the hint works
    assert capsys.readouterr().out.strip().endswith(tuple("0123456789abcdef"))  # prints the cache folder
    sf.write(root / "short.wav", _tone(0.2), 16000)
    line = _prepare_fails(capsys, ["ddsp", f"input_dir={root}", cache, "progress=false", "allow_silent=true"])
    assert "short.wav' is too short: 0.200 s, expected at least 1.000 s (min_seconds=1.0)" in line
    prepare.main(["ddsp", f"input_dir={root}", cache, "progress=false", "allow_silent=true", "min_seconds=0.1"])
    line = _prepare_fails(capsys, ["codec_tokens", f"ckpt_path={tmp_path / 'none.ckpt'}", f"input_dir={root}"])
    assert line.startswith("prepare codec_tokens: ") and "none.ckpt" in line
