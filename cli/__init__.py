"""The ``sparsemac`` command: one subcommand per job (``sparsemac --help``), and the demo."""

from .main import COMMANDS, UsageError, main

__all__ = ["main", "UsageError", "COMMANDS"]
