"""The ``tinyevo`` command. Each subcommand lives in ``tinyevo/commands/``.

Errors caused by input are printed as one line and exit with status 2; a traceback is a bug
(set TINYEVO_DEBUG=1 to see one anyway).
"""
from __future__ import annotations

import argparse
import os
import re
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


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (what is wrong, where the help is) and exit 2;
    its subcommands' parsers are of the same kind."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


#: A value that starts with a dash and a digit (``-5KB``, ``-3``): the value of the flag before it,
#: which argparse would otherwise read as an unknown option ("expected one argument").
DASHED_VALUE = re.compile(r"-[0-9.]")


def joined_values(argv: list[str]) -> list[str]:
    """``["--max-sram", "-5KB"]`` as ``["--max-sram=-5KB"]``, so that the flag's own check says
    what is wrong with the value."""
    joined: list[str] = []
    for item in argv:
        previous = joined[-1] if joined else ""
        if DASHED_VALUE.match(item) and previous.startswith("--") and "=" not in previous:
            joined[-1] = f"{previous}={item}"
        else:
            joined.append(item)
    return joined


def build_parser() -> argparse.ArgumentParser:
    from tinyevo.commands import COMMANDS

    parser = OneLineParser(prog="tinyevo", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tinyevo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(joined_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except TinyevoError as error:
        print(f"tinyevo {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # only a command that keeps its work as it goes promises a resume
        then = "rerun the same command to resume" if getattr(args, "resumes", False) else "nothing was kept"
        print(f"tinyevo {args.command}: interrupted; {then}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as error:  # a file or folder the system refused: name it, no traceback
        print(f"tinyevo {args.command}: error: {os_error_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug: say so in one line, keep the traceback for developers
        if os.environ.get("TINYEVO_DEBUG"):
            raise
        print(f"tinyevo {args.command}: internal error: {type(error).__name__}: {error} "
              f"(set TINYEVO_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 1


def os_error_line(error: OSError) -> str:
    """What the system refused, on which path, and what to do."""
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}; check the path and its permissions"


if __name__ == "__main__":
    sys.exit(main())
