"""``python -m audiolab.prepare <recipe> key=value …`` — data preparation entry point.

Recipes: ``ddsp`` (resample to 16 kHz, CREPE f0 + confidence, A-weighted loudness at 250 Hz, cached);
``codec_corpus`` (build the mixed speech + music corpus ``data/codec_corpus`` from Debian packages);
``codec_tokens`` (tokenize an audio folder with a codec checkpoint for the token LM).

Like the other CLIs, a mistake (bad argument, bad or missing file, missing package) prints one line,
``prepare <recipe>: <what is wrong>``, on stderr and exits with status 2; a bug still shows its traceback.
"""

from __future__ import annotations

import logging
import sys

RECIPES = {
    "ddsp": "audiolab.models.ddsp.data:prepare_main",
    "codec_corpus": "audiolab.models.codec.corpus:main",
    "codec_tokens": "audiolab.models.codec.tokens:prepare_main",
    "tokenlm_music": "audiolab.models.tokenlm.music_set:main",
}
#: Exit status of a user error (as argparse and the codec CLI).
EXIT_USAGE = 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """What bad input raises: ValueError (AudioLoadError, ContainerError, config checks), OSError
    (FileNotFoundError, SourceMissing, permissions, disk full) and the corpus builder's CorpusError."""
    from audiolab.models.codec.corpus import CorpusError

    return (ValueError, OSError, CorpusError)


def _fail(message: str) -> None:
    print(" | ".join(line.strip() for line in message.strip().splitlines() if line.strip()), file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    known = ", ".join(sorted(RECIPES))
    usage = f"usage: python -m audiolab.prepare <recipe> key=value ...  (recipes: {known})"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return
    recipe = argv[0]
    if recipe not in RECIPES:
        _fail(f"prepare: unknown recipe {recipe!r}. {usage}")
    module_name, func = RECIPES[recipe].split(":")
    import importlib

    try:
        getattr(importlib.import_module(module_name), func)(argv[1:])
    except SystemExit as exc:  # the key=value parser and the recipes exit with a message
        if isinstance(exc.code, str):
            _fail(exc.code)
        raise
    except _user_errors() as exc:
        _fail(f"prepare {recipe}: {exc}")


if __name__ == "__main__":
    main()
