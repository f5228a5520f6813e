"""Subcommands of the ``tinyevo`` CLI; each module has ``add_parser(subparsers)``."""
from tinyevo.commands import export, inspect, search, tinynas

COMMANDS = [inspect, search, tinynas, export]
