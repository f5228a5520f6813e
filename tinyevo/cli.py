"""The ``tinyevo`` command. Each subcommand lives in ``tinyevo/commands/``.

Errors caused by input are printed as one line and exit with status 2; a traceback is a bug
(set TINYEVO_DEBUG=1 to see one anyway).
"""
from __future__ import annotations

import argparse
import os
import sys

from tinyevo import __version__
from tinyevo.errors import TinyevoError

DESCRIPTION = """\
Hardware-aware neural architecture search for microcontrollers.

Typical session:
  tinyevo list spaces                       # what can be searched
  tinyevo list boards                       # which microcontrollers are modelled
  tinyevo sample --space mbv2 --seed 3 --json > g.json
  tinyevo cost g.json --board stm32f746     # params, MACs, flash, peak SRAM, latency
  tinyevo cost examples/resnet8.json --board stm32f746 --json
"""


def build_parser() -> argparse.ArgumentParser:
    from tinyevo.commands import COMMANDS

    parser = argparse.ArgumentParser(prog="tinyevo", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tinyevo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except TinyevoError as error:
        print(f"tinyevo {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tinyevo {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as error:  # a bug: say so in one line, keep the traceback for developers
        if os.environ.get("TINYEVO_DEBUG"):
            raise
        print(f"tinyevo {args.command}: internal error: {type(error).__name__}: {error} "
              f"(set TINYEVO_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
