"""`quadrant app`: the clinician app (Gradio) and its API endpoint `check`, on one loaded model.

Everything a user can get wrong (a taken port, an unreadable auth file, an audit file that cannot be
written, a missing `app` extra) is checked before the model loads, so it fails in a second with one line.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import OptionError, require
from .options import add_model_options, evidence_options, single_study, spec_and_options


def register(parser: argparse.ArgumentParser) -> None:
    parser.description = "Serve the Quadrant clinician app. The model loads once and serves every request."
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all, "
                             "then use --auth)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--audit", metavar="FILE",
                        help="the SQLite audit log (default: audit.sqlite in your user data folder, "
                             "e.g. ~/.local/share/quadrant on Linux)")
    parser.add_argument("--auth", metavar="FILE",
                        help="require a login: a file of user:role:hash lines (roles clinician or auditor; scrypt; "
                             "make a line with --hash-password)")
    parser.add_argument("--idle-timeout", type=float, default=30.0, metavar="MINUTES",
                        help="with --auth, end a login after this many minutes without use (default 30; 0: never)")
    parser.add_argument("--hash-password", metavar="USER",
                        help="print an --auth file line for USER (password read from the terminal, or from stdin "
                             "when piped) and exit")
    parser.add_argument("--role", default="clinician", choices=("clinician", "auditor"),
                        help="with --hash-password: the user's role (default clinician: checks studies, sees their "
                             "own checks; auditor: also sees and exports everyone's)")
    parser.add_argument("--also-model", action="append", default=[], metavar="MODEL",
                        help="another model (preset, directory or hub id) offered in a model switch, loaded with "
                             "the same options; e.g. --also-model demo-shortcut beside the default demo")
    parser.add_argument("--max-upload-mb", type=int, default=100, help="largest upload accepted (default 100)")
    parser.add_argument("--queue-size", type=int, default=64,
                        help="checks that may wait; more are refused with 'queue full' (default 64)")
    parser.add_argument("--batch", type=int, default=8,
                        help="most concurrent checks scored together in one model call (default 8)")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.hash_password is not None:
        return _print_hash(args.hash_password, args.role)
    _check_numbers(args)
    single_study(args)
    from quadrant.app.server import check_port_free

    check_port_free(args.host, args.port)
    users = None
    if args.auth:
        from quadrant.app.auth import read_auth_file

        users = read_auth_file(args.auth)
    from quadrant.app.server import make_cache

    cache = make_cache()  # before Gradio is imported: it reads its temp folder then
    try:
        require("gradio", "app")
        audit_path = Path(args.audit).expanduser() if args.audit else _default_audit_path()
        from quadrant.audit import AuditLog

        audit = AuditLog(audit_path).open()
        try:
            _serve(args, cache, _load_models(args), audit, users)
        finally:
            audit.close()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0


def _load_models(args: argparse.Namespace) -> dict:
    """The main model with its adapter, then every --also-model with the same options: one set of options
    for all, so a --paraphraser's language model is loaded once, not once per model. Not prepared: the service
    prepares them on the thread their checks run on (`quadrant.batcher`)."""
    from ..backends import load_model
    from ..check import Checker

    spec, options = spec_and_options(args)
    options = replace(options, evidence=None)  # the service draws a map after its verdict (CheckService.draw_map)
    checkers = {}
    for name in [args.model, *args.also_model]:
        if name in checkers:
            raise OptionError(f"model {name!r} is named twice")
        model = replace(spec, model=name, adapter=spec.adapter if name == args.model else None)
        checkers[name] = Checker(load_model(model), options=options)
    return checkers


def _serve(args: argparse.Namespace, cache: Path, checkers: dict, audit, users) -> None:
    from quadrant.app.server import ServeOptions, launch
    from quadrant.app.service import CheckService
    from quadrant.evidence import EvidenceOptions
    from quadrant.language import load_detector

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("quadrant.app").setLevel(logging.INFO)
    load_detector()
    asked = evidence_options(args)  # the page's toggle draws maps this way, and starts on when one is asked for
    service = CheckService(checkers, audit, upload_dir=cache, max_batch=args.batch,
                           evidence_options=asked or EvidenceOptions(), evidence_by_default=asked is not None).start()
    options = ServeOptions(host=args.host, port=args.port, auth=users, idle_minutes=args.idle_timeout,
                           max_upload_mb=args.max_upload_mb, queue_size=args.queue_size,
                           blocked=[f"{audit.path}{suffix}" for suffix in ("", "-wal", "-shm")])
    launch(service, cache, options, block=True,
           on_ready=lambda url: _announce(url, args.host, checkers, audit, users, args.idle_timeout))


def _announce(url: str, host: str, checkers: dict, audit, users, idle_minutes: float) -> None:
    for name, checker in checkers.items():
        model = checker.loaded
        print(f"Model     {name} ({model.family.name}, {checker.backend}, {model.device}) {model.fingerprint}",
              file=sys.stderr)
    print(f"Audit log {audit.path}", file=sys.stderr)
    if users:
        auditors = sum(account.role == "auditor" for account in users.values())
        idle = f"signed out after {idle_minutes:g} idle minutes" if idle_minutes > 0 else "no idle timeout"
        print(f"Login     required ({len(users)} users, {auditors} auditors; {idle})", file=sys.stderr)
    else:
        print("Login     off (anyone who can reach it)", file=sys.stderr)
    if not users and host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Warning   listening on {host} without a login: anyone who can reach it can use it (--auth FILE)",
              file=sys.stderr)
    print(f"Serving   {url}  (Ctrl-C to stop)", file=sys.stderr, flush=True)


def _check_numbers(args: argparse.Namespace) -> None:
    for option, value in (("--max-upload-mb", args.max_upload_mb), ("--queue-size", args.queue_size),
                          ("--batch", args.batch)):
        if value < 1:
            raise OptionError(f"{option} must be at least 1, got {value}")
    if not args.idle_timeout >= 0:
        raise OptionError(f"--idle-timeout must be a number of minutes >= 0, got {args.idle_timeout}")


def _default_audit_path() -> Path:
    platformdirs = require("platformdirs", "app")
    return Path(platformdirs.user_data_dir("quadrant", appauthor=False)) / "audit.sqlite"


def _print_hash(user: str, role: str) -> int:
    from quadrant.app.auth import auth_line, check_account

    check_account(user, role)  # before a password is asked for
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {user}: ")
        if getpass.getpass("Again: ") != password:
            raise OptionError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    print(auth_line(user, password, role))
    return 0
