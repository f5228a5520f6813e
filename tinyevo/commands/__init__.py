"""Subcommands of the ``tinyevo`` CLI; each module has ``add_parser(subparsers)``."""
from tinyevo.commands import calibrate, export, inspect, report, search, tinynas

COMMANDS = [inspect, search, tinynas, export, report, calibrate]
