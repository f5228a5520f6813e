"""Subcommands of the ``tinyevo`` CLI; each module has ``add_parser(subparsers)``."""
from tinyevo.commands import export, inspect, search

COMMANDS = [inspect, search, export]
