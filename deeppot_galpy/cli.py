"""The ``deeppot`` command line: parses arguments and calls the package; no science here.

Each sub-command lives with the code it drives and exposes ``add_arguments(parser)`` and
``run(args) -> int``; this module only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .rundir import ModelFileError

__all__ = ["main"]

# name -> (module providing add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("deeppot_galpy.commands.demo", "run the paper's Plummer-sphere demonstration"),
    "fit": ("deeppot_galpy.commands.fit", "fit a potential to a star catalog"),
    "orbits": ("deeppot_galpy.commands.orbits", "orbits in the learned potential vs a reference"),
    "local": ("deeppot_galpy.commands.local", "local quantities of a solar-neighbourhood fit"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deeppot",
        description="Deep Potential: a gravitational potential from a phase-space snapshot.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (modname, help_) in COMMANDS.items():
        module = importlib.import_module(modname)
        p = sub.add_parser(name, help=help_, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, ModelFileError) as exc:
        # User errors (bad input, missing files, a run not to be overwritten) get one clear
        # line, not a traceback.
        print(f"deeppot {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
