"""Command line: ``sidecar serve`` (what the shell spawns) and the terminal tools.

Kept light: each command imports what it needs only when it runs, so ``serve`` reaches its
handshake without loading the agent stack.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sidecar import __version__


def _add_serve(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="serve the local API (what the desktop shell spawns)")
    p.add_argument("--data-dir", type=Path, help="data directory (default: the platform's user data dir)")
    p.add_argument("--parent-pid", type=int, help="exit when this process is gone (default: the spawning process)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="an Origin allowed to call the API, e.g. app://- (repeatable)")
    p.add_argument("--watch", action="append", default=[], type=Path, metavar="PATH",
                   help="a folder to watch for files to extract from (repeatable)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    spawner_pid = os.getppid()  # first: the parent may die while we start
    # No cyclic GC until the handshake: what start-up allocates (modules, classes) lives as long
    # as the process, and the full collections it would trigger cost ~5% of the way there.
    # lifecycle freezes it and turns GC back on right after the handshake line.
    gc.disable()
    from sidecar.lifecycle import HandshakeChannel, install_early_signal_handlers

    channel = HandshakeChannel.reserve()  # before anything else can print
    install_early_signal_handlers()

    from sidecar.lifecycle import serve
    from sidecar.logs import redact, setup_logging
    from sidecar.settings import Settings, default_data_dir, make_token

    setup_logging(args.log_level)
    env = dict(os.environ)
    token, from_env = make_token(env)
    redact(token)
    settings = Settings(
        data_dir=(args.data_dir or default_data_dir()).expanduser().absolute(),
        token=token,
        token_from_env=from_env,
        parent_pid=args.parent_pid,
        spawner_pid=spawner_pid,
        allow_origins=tuple(args.allow_origin),
        log_level=args.log_level,
        watch_paths=tuple(p.expanduser().absolute() for p in args.watch),
        env=env,
    )
    code = int(serve(settings, channel))
    # Everything is closed by now. Skip the interpreter's module teardown, which takes seconds
    # once the agent stack is loaded (or half-loaded by a background import), so the exit stays
    # within the shell's bound; registered atexit handlers still run first.
    atexit._run_exitfuncs()
    logging.shutdown()
    os._exit(code)


def _command(module: str) -> Callable[[argparse._SubParsersAction], None]:  # type: ignore[type-arg]
    """An adder that imports ``module`` and calls its ``add_parser(sub)`` only when the parser is
    built, so one command never pays for another's imports."""

    def add(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        importlib.import_module(module).add_parser(sub)

    return add


#: Every subcommand, ``serve`` first: each module registers its own arguments and handler.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [  # type: ignore[type-arg]
    _add_serve,
    _command("sidecar.ingest.cli"),
    _command("sidecar.agent.chat"),
    _command("sidecar.search.cli"),
    _command("sidecar.doctor"),
    _command("sidecar.schemas"),
    _command("sidecar.sync.cli"),
]


def build_parser(only_serve: bool = False) -> argparse.ArgumentParser:
    """The ``sidecar`` argument parser with every registered subcommand (``only_serve``: just
    ``serve``, whose start-up must not pay for importing the other commands' modules)."""
    parser = argparse.ArgumentParser(prog="sidecar", description="Local agent service for the desktop app.")
    parser.add_argument("--version", action="version", version=f"sidecar {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS[:1] if only_serve else SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sidecar`` console script and ``python -m sidecar``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(only_serve=argv[:1] == ["serve"]).parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
