"""Benchmarks: ``python -m audiolab.bench <family> [--quick] [--device cpu|cuda] [--out PATH] ...``.

Each family's benchmark lives in its room, ``audiolab.models.<family>.bench`` (a ``main(argv) -> int``), and
uses the shared timing / memory / environment helpers of :mod:`audiolab.bench.common`.
``python -m audiolab.bench <family> --help`` lists a family's options.
"""

from __future__ import annotations

import importlib
import sys

# family -> one-line description; the benchmark is ``audiolab.models.<family>.bench.main(argv) -> int``
FAMILIES: dict[str, str] = {
    "ddsp": "DDSP train step per backbone, bf16, synth real-time factor, loss vs auraloss",
    "codec": "codec params and encode/decode real-time factor vs the encodec package",
    "tokenlm": "token-LM generation frames/s (KV cache, CFG) vs transformers MusicGen",
}


def _usage() -> str:
    rows = "\n".join(f"  {name:<8} {desc}" for name, desc in FAMILIES.items())
    return (f"usage: python -m audiolab.bench <family> [--quick] [--device cpu|cuda] [--out PATH] ...\n"
            f"families:\n{rows}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    family, rest = argv[0], argv[1:]
    if family not in FAMILIES:
        print(f"unknown benchmark family {family!r}; available families: {', '.join(FAMILIES)}\n\n{_usage()}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"audiolab.models.{family}.bench")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
