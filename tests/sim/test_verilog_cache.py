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
