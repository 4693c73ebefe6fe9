"""`quadrant node`: a DICOM node for a hospital workstation. A PACS routes chest studies to it; it checks each
against the questions in --questions and sends a structured report and a secondary capture back.

Everything a user can get wrong (an AE title, the destination, the questions file, a taken port, the audit
log, the spool folder, a missing extra) fails before the model loads, in a second, with one line.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from ..errors import OptionError, QuestionError, require
from .options import add_model_options

#: a questions file larger than this is not a list of questions
_QUESTIONS_LIMIT = 64 * 1024


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = ("A DICOM node: check each study a PACS sends (C-STORE) against every question in "
                          "--questions, and send a structured report and a secondary capture to --store-to.")
    parser.add_argument("--port", type=int, required=True, help="DICOM port to listen on (e.g. 11112)")
    parser.add_argument("--ae-title", required=True, help="this node's AE title, as the PACS knows it")
    parser.add_argument("--questions", required=True, metavar="FILE",
                        help="yes/no questions, one a line ('#' starts a comment); every study is asked each")
    parser.add_argument("--store-to", required=True, metavar="AET@HOST:PORT",
                        help="where results are sent by C-STORE (usually the PACS that sent the study)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all, then use --allow-aet)")
    parser.add_argument("--audit", metavar="FILE", help="the SQLite audit log, the app's format (default: "
                        "audit.sqlite in your user data folder, e.g. ~/.local/share/quadrant on Linux)")
    parser.add_argument("--spool", metavar="DIR", help="where accepted studies and undelivered results wait, "
                        "surviving a restart (default: node-spool-AET in your user data folder)")
    parser.add_argument("--queue-size", type=int, default=64,
                        help="studies and results that may wait; more are refused with Out of Resources (0xA700) "
                             "(default 64)")
    parser.add_argument("--batch", type=int, default=8, help="most studies scored together (default 8)")
    parser.add_argument("--no-sc", action="store_true", help="send the structured report only, no secondary capture")
    parser.add_argument("--allow-aet", action="append", default=[], metavar="AET",
                        help="accept studies only from this calling AE title (repeat for several; default: any)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics on http://METRICS_HOST:PORT/metrics")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics server (default "
                        "127.0.0.1)")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require("pynetdicom", "hospital")
    require("highdicom", "hospital")
    require("prometheus_client", "hospital")
    from ..node import Destination, Node, NodeOptions
    from ..node.network import check_ae_title

    options = NodeOptions(
        ae_title=check_ae_title(args.ae_title, "--ae-title"), host=args.host, port=_port(args.port, "--port"),
        questions=read_questions(Path(args.questions)), store_to=Destination.parse(args.store_to),
        spool=Path(args.spool).expanduser() if args.spool else _data_folder() / f"node-spool-{args.ae_title}",
        queue_size=_at_least_one(args.queue_size, "--queue-size"), batch=_at_least_one(args.batch, "--batch"),
        send_sc=not args.no_sc, allowed=tuple(check_ae_title(t, "--allow-aet") for t in args.allow_aet))
    from quadrant.app.server import check_port_free

    check_port_free(args.host, options.port)
    if args.metrics_port is not None:
        check_port_free(args.metrics_host, _port(args.metrics_port, "--metrics-port"))
    from ..audit import AuditLog

    audit = AuditLog(Path(args.audit).expanduser() if args.audit else _data_folder() / "audit.sqlite").open()
    try:
        from .options import load_checker

        _configure_logging()
        node = Node(load_checker(args), options, audit)
        node.start()
        if args.metrics_port is not None:
            _serve_metrics(args.metrics_host, args.metrics_port)
        _announce(node, args)
        _wait_for_signal()
        print("Stopping  finishing the studies in hand ...", file=sys.stderr, flush=True)
        node.stop()
        waiting = node.spool.waiting()
        print(f"Stopped   {waiting} studies or results wait in {node.spool.root} for the next start",
              file=sys.stderr, flush=True)
    finally:
        audit.close()
    return 0


def read_questions(path: Path) -> tuple[str, ...]:
    """The questions file: one yes/no question a line; blank lines and '#' comments skipped; each checked by
    the question rule, refused with its line number."""
    from ..paraphrases import validate_question
    from ..textfile import read_text_file

    text = read_text_file(path, "questions file", _QUESTIONS_LIMIT, "a text file, one question a line",
                          QuestionError)
    questions: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            question = validate_question(line)
        except QuestionError as exc:
            raise QuestionError(f"questions file {path} line {number}: {exc}") from None
        if question in questions:
            raise QuestionError(f"questions file {path} line {number}: {question!r} is asked twice")
        questions.append(question)
    if not questions:
        raise QuestionError(f"questions file {path} has no question: write one yes/no question a line")
    return tuple(questions)


def _port(value: int, option: str) -> int:
    if not 1 <= value <= 65535:
        raise OptionError(f"{option} must be between 1 and 65535, got {value}")
    return value


def _at_least_one(value: int, option: str) -> int:
    if value < 1:
        raise OptionError(f"{option} must be at least 1, got {value}")
    return value


def _data_folder() -> Path:
    platformdirs = require("platformdirs", "hospital")
    return Path(platformdirs.user_data_dir("quadrant", appauthor=False))


def _configure_logging() -> None:
    """One line per event on stderr. pynetdicom's own logging stays at errors: its detail levels print
    datasets, identifiers included."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    node_log = logging.getLogger("quadrant.node")
    node_log.addHandler(handler)
    node_log.setLevel(logging.INFO)
    node_log.propagate = False
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)


def _serve_metrics(host: str, port: int) -> None:
    from prometheus_client import start_http_server

    from ..telemetry import telemetry

    try:
        start_http_server(port, addr=host, registry=telemetry().registry)
    except OSError as exc:
        raise OptionError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from exc


def _announce(node, args: argparse.Namespace) -> None:
    options, model = node.options, node.checker.loaded
    print(f"Model     {model.name} ({model.family.name}, {node.checker.backend}, {model.device}) {model.fingerprint}",
          file=sys.stderr)
    print(f"Questions {len(options.questions)}: " + "; ".join(options.questions), file=sys.stderr)
    print(f"Audit log {node.audit.path}", file=sys.stderr)
    print(f"Spool     {node.spool.root} ({node.spool.waiting()} waiting from before)", file=sys.stderr)
    print(f"Results   to {options.store_to}" + ("" if options.send_sc else " (structured report only)"),
          file=sys.stderr)
    if args.metrics_port is not None:
        print(f"Metrics   http://{args.metrics_host}:{args.metrics_port}/metrics", file=sys.stderr)
    print(f"Listening as {options.ae_title} on {options.host}:{options.port} (Ctrl-C or SIGTERM to stop)",
          file=sys.stderr, flush=True)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
