"""The `quadrant` command: parse, call the library, and map errors to exit codes in one place.

Exit codes: 0 success; 1 a --fail-if rule held (evaluate); 2 bad input, with one line on stderr naming the
problem. Unexpected failures print one line too; set QUADRANT_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..errors import QuadrantError, one_line

EXIT_OK, EXIT_RULE, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
_SUBCOMMANDS = ("check", "evaluate", "compare", "bench", "phantoms", "export", "app")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command."""

    def error(self, message: str):
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="quadrant", description="Is a medical VLM's answer consistent, and does it look at the image?")
    from quadrant import __version__

    parser.add_argument("--version", action="version", version=f"quadrant {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in _SUBCOMMANDS:
        importlib.import_module(f"quadrant.cli.{name}").register(subparsers)
    return parser


def _quiet_libraries() -> None:
    """Library chatter (progress bars, deprecation notes) would bury the one line that matters."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    _quiet_libraries()
    try:
        return args.run(args)
    except QuadrantError as exc:
        print(f"quadrant {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print(f"quadrant {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: no traceback for a user, unless asked
        if os.environ.get("QUADRANT_DEBUG"):
            raise
        print(f"quadrant {args.command}: unexpected error: {type(exc).__name__}: {one_line(exc)} "
              "(set QUADRANT_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
