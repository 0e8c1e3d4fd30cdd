"""The ``sparsemac`` command: help for every subcommand, one-line errors, exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sparsemac.cli.main import COMMANDS
from sparsemac.golden.lut import build_lut, lut_error


def run(*args):
    return subprocess.run([sys.executable, "-m", "sparsemac", *args], capture_output=True,
                          text=True, timeout=120)


def test_every_subcommand_has_help():
    names = list(COMMANDS)
    assert {"config", "bench", "lut", "generate", "run", "lint"} <= set(names), names
    for name in names:
        r = run(name, "--help")
        assert r.returncode == 0, (name, r.stderr)
        assert "usage: sparsemac " + name in r.stdout


def test_no_subcommand_prints_help_and_fails():
    r = run()
    assert r.returncode == 2 and "COMMAND" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["config", "--preset", "tiny", "--set", "rows=0"],
     "sparsemac config: error: --set: rows must be between 1 and 64, not 0"),
    (["config", "--preset", "nope"],
     "sparsemac config: error: preset must be one of default, large, tiny, not 'nope'"),
    (["config", "--config", "/nonexistent.yaml"],
     "sparsemac config: error: cannot read config file '/nonexistent.yaml'"),
    (["config", "--set", "rows"], "sparsemac config: error: --set must be key=value, not 'rows'"),
    (["lut", "foo", "--in-scale", "0.1", "--out-scale", "0.1"],
     "sparsemac lut: error: func must be one of"),
    (["lut", "gelu", "--in-scale", "-1", "--out-scale", "0.1"],
     "sparsemac lut: error: in_scale must be a positive finite number, not -1.0"),
    # bench layers are checked by the network schema (sparsemac.host.network), errors name flags
    (["bench", "matmul", "--m", "0"], "sparsemac bench: error: --m must be an integer between 1 "
     "and 16777216, not 0"),
    (["bench", "matmul", "--density", "1.5"], "sparsemac bench: error: --density must be a "
     "number between 0 and 1, not 1.5"),
    (["bench", "matmul", "--format", "nm", "--prune", "block"], "sparsemac bench: error: "
     "--prune must be auto or nm for format nm (the format stores N:M weights only), not "
     "'block'"),
    (["bench", "conv2d", "--h", "2", "--w", "2", "--pad", "0"], "sparsemac bench: error: "
     "--kh, --kw must fit the padded input 2 x 2 (dilated kernel 3 x 3), not [3, 3]"),
])
def test_user_errors_are_one_line(args, message):
    r = run(*args)
    assert r.returncode == 2, r
    assert r.stderr.startswith(message), r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_config_resolves_overrides(tmp_path):
    r = run("config", "--preset", "tiny", "--set", "rows=3", "--set", "formats=[dense, nm]")
    assert r.returncode == 0, r.stderr
    import yaml

    data = yaml.safe_load(r.stdout)
    assert data["rows"] == 3 and data["formats"] == ["dense", "nm"] and data["cols"] == 2


def test_lut_json_matches_golden():
    r = run("lut", "silu", "--in-scale", "0.0625", "--out-scale", "0.0625", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    table = build_lut("silu", 0.0625, 0.0625)
    assert np.array_equal(np.array(out["table"], dtype=np.int8), table)
    err = lut_error("silu", table, 0.0625, 0.0625)
    assert out["error"]["max"] == pytest.approx(err["max"])
    assert out["error"]["max"] <= 0.5  # round-to-nearest table: at most half an LSB


def test_every_option_says_what_it_does_and_its_default():
    """`--help` of every subcommand (and bench kind) describes each flag; flags that take a
    value and have a default show it."""
    import argparse

    from sparsemac.cli.main import build_parser

    missing, parsers = [], [("sparsemac", build_parser())]
    while parsers:
        name, parser = parsers.pop()
        fmt = parser._get_formatter()
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                parsers += [(f"{name} {n}", sp) for n, sp in a.choices.items()]
            elif a.dest != "help" and not a.help:
                missing.append(f"{name} {a.option_strings or a.dest}: no help")
            elif (a.option_strings and a.default not in (None, False, argparse.SUPPRESS)
                  and not isinstance(a.default, bool) and "default" not in fmt._get_help_string(a)):
                missing.append(f"{name} {a.option_strings}: default not shown")
    assert not missing, "\n".join(missing)


def test_bench_flags_build_a_network_layer():
    """`bench` flags are one layer of the network schema (cli.bench_layer.layer_spec)."""
    from sparsemac.cli.bench_layer import build_layer, layer_spec
    from sparsemac.cli.main import build_parser
    from sparsemac.hw.config import AcceleratorConfig

    a = build_parser().parse_args(["bench", "conv2d", "--c", "3", "--h", "6", "--w", "7",
                                   "--kout", "5", "--stride", "2", "--format", "dense",
                                   "--nm", "1:4"])
    spec = layer_spec(a, "conv2d")
    assert (spec.op, spec.fmt, spec.prune, spec.nm) == ("conv2d", "dense", "nm", (1, 4))
    assert (spec.in_shape, spec.out_shape, spec.stride) == ((3, 6, 7), (5, 3, 4), (2, 2))
    W, X, meta = build_layer(a, "conv2d", AcceleratorConfig.preset("tiny"))
    assert W.shape == (5, 27) and X.shape == (27, 12) and meta["prune"] == "nm"
    assert all(np.count_nonzero(W[:, g:g + 4], axis=1).max() <= 1 for g in range(0, 27, 4))
