"""The one ``key=value`` parser of ``python -m audiolab.prepare``: types, and one-line errors naming the key."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("recipe", sorted(prepare.RECIPES))
def test_every_recipe_rejects_an_unknown_key(recipe):
    with pytest.raises(SystemExit, match=rf"prepare {recipe}: unknown key 'bogus'"):
        prepare.main([recipe, "bogus=1"])


def test_every_recipe_rejects_a_bad_value():
    for recipe, arg in (("ddsp", "sample_rate=fast"), ("codec_corpus", "seed=x"), ("codec_tokens", "bandwidth=x")):
        with pytest.raises(SystemExit, match=rf"prepare {recipe}: bad value for {arg.split('=')[0]}"):
            prepare.main([recipe, arg])
