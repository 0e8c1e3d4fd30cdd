"""Show the resolved configuration (a preset or a file, plus ``--set`` overrides) as YAML."""

from __future__ import annotations

import argparse

from sparsemac.hw.config import AcceleratorConfig, load_config

from .main import UsageError


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The config flags every subcommand shares: ``--config FILE``, ``--preset``, ``--set``."""
    p.add_argument("--config", metavar="FILE", help="config YAML (default: configs/default.yaml)")
    p.add_argument("--preset", metavar="NAME", help="named preset: tiny, default, large")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override one parameter (repeatable), e.g. --set rows=8")


def config_from_args(args) -> AcceleratorConfig:
    if args.config and args.preset:
        raise UsageError("--config and --preset are exclusive: give one")
    if args.preset:
        return AcceleratorConfig.preset(args.preset).with_overrides(args.overrides)
    return load_config(args.config, args.overrides)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)


def main(args) -> int:
    cfg = config_from_args(args)
    print(cfg.to_yaml(), end="")
    d = {"macs": cfg.macs, "axi_bytes": cfg.axi_bytes, "tile_id_width": cfg.tile_id_width}
    print("# derived: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    return 0
