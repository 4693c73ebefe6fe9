"""The `quadrant` command: parse, call the library, and map errors to exit codes in one place.

Exit codes: 0 success; 1 a --fail-if rule held (evaluate, monitor); 2 bad input, with one line on stderr naming the
problem. Unexpected failures print one line too; set QUADRANT_DEBUG=1 for the traceback.

Start-up stays light: only the chosen subcommand's module is imported (it registers its own options), the
others are listed by name and one line of help. So `quadrant --version`, `--help`, `manifest`, `compare`,
`phantoms` and `monitor` never import torch or transformers (tests/test_cli_startup.py holds this).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from ..errors import QuadrantError, unexpected

EXIT_OK, EXIT_RULE, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
#: subcommand -> its one-line help in `quadrant --help` (the only copy); its options live in quadrant.cli.<name>
_SUBCOMMANDS = {
    "check": "check one study and one yes/no question",
    "evaluate": "check every row of a manifest; resumable",
    "compare": "compare evaluations: one row per configuration",
    "manifest": "build a manifest from MIMIC-CXR-JPG or PadChest as distributed",
    "bench": "time a full check against the naive way and one forward",
    "phantoms": "write synthetic chest phantoms and a manifest",
    "export": "merge a LoRA adapter; export to ONNX; build TensorRT engines",
    "app": "the clinician app: upload a study, see its verdict (and the API endpoint `check`)",
    "node": "a DICOM node: check the studies a PACS sends, send results back as DICOM SR and SC",
    "monitor": "the verdict mix over time from an audit log, per model; exit 1 when a stop rule holds",
    "doctor": "what this machine can run: devices, ONNX Runtime providers, TensorRT, each preset's backend",
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, like every other error of the command."""

    def error(self, message: str):
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with `command`'s own options registered (all commands' when None); the other commands
    are listed without importing their modules."""
    import importlib

    parser = _Parser(prog="quadrant", description="Is a medical VLM's answer consistent, and does it look at the image?")
    from quadrant import __version__

    parser.add_argument("--version", action="version", version=f"quadrant {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, help_line in _SUBCOMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_line)
        if command is None or name == command:
            importlib.import_module(f"quadrant.cli.{name}").register(subparser)
    return parser


def _command(argv: list[str]) -> str:
    """The subcommand named on the line: the first word that is not an option (the top level takes none
    with a value). An empty string when there is none, so that no command's module is imported."""
    return next((word for word in argv if not word.startswith("-")), "")


def _quiet_libraries() -> None:
    """Library chatter (progress bars, deprecation notes) would bury the one line that matters. Through the
    environment, which transformers reads when it is first imported (importing it here would cost every
    command half a second); directly where it is already loaded."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(_command(argv)).parse_args(argv)
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
        if isinstance(exc, OSError) and exc.strerror:  # a full disk, a folder not writable, a refused connection:
            # the system's reason, never the file name, which can carry a patient's name
            print(f"quadrant {args.command}: error: {exc.strerror} ({unexpected(exc)})", file=sys.stderr)
        else:
            print(f"quadrant {args.command}: unexpected error: {unexpected(exc)} "
                  "(set QUADRANT_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
