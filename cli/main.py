"""``sparsemac`` command line: one command, one subcommand per job (docs/cli.md).

Subcommands live in their own modules (``cli/cmd_<name>.py``), each with
``add_arguments(parser)`` and ``main(args) -> int``.  User mistakes raise :class:`UsageError`
(or a config error) and print one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "UsageError", "COMMANDS", "Parser", "HelpFormatter"]


class UsageError(Exception):
    """A user mistake (bad flag value, missing file ...): printed as one line, exit code 2."""


# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("sparsemac.cli.cmd_generate", "Verilog, register map and manifest for a config"),
    "bench": ("sparsemac.cli.cmd_bench", "run one layer or the ring on the RTL or the cycle model"),
    "run": ("sparsemac.cli.cmd_run", "run a network of layers from YAML end to end"),
    "synth": ("sparsemac.cli.cmd_synth", "area and Fmax of a config for an FPGA target"),
    "build": ("sparsemac.cli.cmd_build", "bitstream and reports for a board"),
    "sweep": ("sparsemac.cli.cmd_sweep", "parameter sweep: area, Fmax, throughput, Pareto plot"),
    "lut": ("sparsemac.cli.cmd_lut", "activation tables and their accuracy"),
    "config": ("sparsemac.cli.cmd_config", "show, validate or resolve a configuration"),
    "lint": ("sparsemac.cli.cmd_lint", "verilator --lint-only -Wall on the generated Verilog"),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (the subcommand docstrings); every option's help ends with its
    default, except switches and options whose help already names it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (default is None or default is argparse.SUPPRESS or isinstance(default, bool)
                or "default" in text or not action.option_strings):
            return text
        return f"{text} (default: {default})".strip() if text else f"default: {default}"


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` with :class:`HelpFormatter`; sub-commands inherit it."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        """One line, exit code 2 (argparse's default also prints the whole usage)."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="sparsemac",
        description="Generate, verify and measure the sparsemac sparse neural-network "
                    "accelerator.")
    from importlib import metadata

    try:
        version = metadata.version("sparsemac")
    except metadata.PackageNotFoundError:  # running from a checkout without install
        version = "unknown"
    parser.add_argument("--version", action="version", version=f"sparsemac {version}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (modname, help_) in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip())
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sparsemac.hw.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except (UsageError, ConfigError) as exc:
        print(f"sparsemac {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"sparsemac {args.command}: error: out of memory (a size flag too large?)",
              file=sys.stderr)
        return 2
    except (TypeError, ValueError) as exc:
        # Parameter validation errors (AcceleratorConfig, golden) are user mistakes here.
        if _is_validation_error(exc):
            print(f"sparsemac {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print(f"sparsemac {args.command}: interrupted", file=sys.stderr)
        return 130


def _is_validation_error(exc: Exception) -> bool:
    return " must be " in str(exc)
