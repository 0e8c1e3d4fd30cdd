"""The Verilog cache of the RTL engine (`sparsemac.sim.runner.cached_verilog`)."""

from __future__ import annotations

from sparsemac.sim import runner


def test_cached_verilog_elaborates_once_per_key(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "BUILD_ROOT", tmp_path)
    made = []

    def fake_verilog(component, name):
        made.append((component, name))
        return f"module {name}; // {component}\nendmodule\n"
    monkeypatch.setattr(runner, "to_verilog", fake_verilog)
    a1 = runner.cached_verilog(lambda: "A", "top", "cfg-a")
    a2 = runner.cached_verilog(lambda: "A2", "top", "cfg-a")
    assert a1 == a2 and made == [("A", "top")]          # the second call read the file
    b = runner.cached_verilog(lambda: "B", "top", "cfg-b")
    assert "B" in b and len(made) == 2                    # another key elaborates
    # a change in hw/ (another source hash) elaborates again
    monkeypatch.setattr(runner, "hw_source_hash", lambda: "changed")
    runner.cached_verilog(lambda: "A3", "top", "cfg-a")
    assert len(made) == 3


def test_hw_source_hash_is_stable_and_covers_hw():
    h = runner.hw_source_hash()
    assert h == runner.hw_source_hash() and len(h) == 64


def test_a_first_build_says_so_on_stderr(tmp_path, monkeypatch, capsys):
    """A build that is not cached yet announces itself and its time on stderr (a user's first
    RTL run waits minutes for it); a cached one is silent; stdout stays clean."""
    monkeypatch.setattr(runner, "BUILD_ROOT", tmp_path)
    built = []

    def build(src, folder):
        built.append(src.read_text())

    d1 = runner._cached_build("top-abc", "module top; endmodule\n", "top", build)
    out = capsys.readouterr()
    assert built == ["module top; endmodule\n"] and out.out == ""
    assert "[sparsemac] building top-abc (first use of this design" in out.err
    assert "[sparsemac] built top-abc in" in out.err
    d2 = runner._cached_build("top-abc", "module top; endmodule\n", "top", build)
    out = capsys.readouterr()
    assert d1 == d2 and len(built) == 1 and out.err == "" and out.out == ""


def test_hw_source_hash_covers_golden(tmp_path, monkeypatch):
    """hw/ takes constants from golden/ (descriptor magic, error and format codes): a change
    there must elaborate again, so golden/'s sources are part of the key."""
    import sparsemac.golden as golden

    def fresh():        # the hash is read once per process: read it again
        runner.hw_source_hash.cache_clear()
        return runner.hw_source_hash()

    before = fresh()
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "descriptors.py").write_text("DESC_MAGIC = 0\n")
    monkeypatch.setattr(golden, "__file__", str(tmp_path / "__init__.py"))
    changed = fresh()
    (tmp_path / "descriptors.py").write_text("DESC_MAGIC = 1\n")
    # within one process the sources it imported stay the key (a long bench run elaborates
    # the modules of its start: no newer key may name their Verilog)
    assert runner.hw_source_hash() == changed
    assert len({before, changed, fresh()}) == 3
    runner.hw_source_hash.cache_clear()


def test_run_cocotb_cache_key_reuses_the_verilog(tmp_path, monkeypatch):
    """``run_cocotb(..., cache_key=...)`` elaborates once per key; without a key every call
    elaborates (the component may hold parameters no key names)."""
    monkeypatch.setattr(runner, "BUILD_ROOT", tmp_path)
    made, built = [], []
    monkeypatch.setattr(runner, "to_verilog", lambda c, name: made.append(c) or f"// {c}\n")

    class Stop(Exception):
        pass

    def fake_build(verilog, toplevel, **kw):
        built.append(verilog)
        raise Stop
    monkeypatch.setattr(runner, "build_verilator", fake_build)
    for comp, key in (("A", "k"), ("A2", "k"), ("B", None), ("B", None)):
        try:
            runner.run_cocotb(comp, toplevel="t", test_module="m", cache_key=key,
                              simulator="verilator")
        except Stop:
            pass
    assert made == ["A", "B", "B"] and built == ["// A\n", "// A\n", "// B\n", "// B\n"]
