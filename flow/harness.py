"""An I/O harness: any core behind two pins, for place and route without out-of-context mode.

nextpnr-ice40 places every top-level port on a package pin, and a core has far more port bits
than an iCE40 has pins.  :class:`IoHarness` feeds all of the core's inputs from one shift chain
(serial input ``si``) and folds all of its outputs into one pin (``so``) through registers and a
pipelined XOR tree, so every core port is driven / read by a flip-flop and no logic of the core
can be optimised away.  Timing paths are those of the core between registers, as inside a
real design.  Area is always measured on the core alone.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IoHarness", "harness_verilog"]


class IoHarness(wiring.Component):
    """Wrap ``core``: inputs from a shift chain fed by ``si``, outputs XOR-folded onto ``so``.

    Latency: an output bit reaches ``so`` ``1 + ceil(log4(output bits))`` cycles later.

    Parameters
    ----------
    core : wiring.Component
        The block under test (its ``sync`` domain is the harness's).

    Members
    -------
    si : In(1)
        Serial input: shifted into the input chain every cycle.
    so : Out(1)
        Parity of all core outputs, registered.
    """

    def __init__(self, core):
        if not isinstance(core, wiring.Component):
            raise TypeError(f"core must be a wiring.Component, not {core!r}")
        self.core = core
        super().__init__({"si": In(1), "so": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        ins, outs = [], []
        for _path, member, value in core.signature.flatten(core):
            (ins if member.flow == In else outs).append(Value.cast(value))
        n_in = sum(len(v) for v in ins)
        chain = Signal(max(2, n_in))
        m.d.sync += chain.eq(Cat(self.si, chain[:-1]))
        pos = 0
        for v in ins:
            m.d.comb += v.eq(chain[pos:pos + len(v)])
            pos += len(v)
        level = Signal(max(1, sum(len(v) for v in outs)), name="out_r")
        m.d.sync += level.eq(Cat(*outs))
        stage = 0
        while len(level) > 1:
            n = (len(level) + 3) // 4
            nxt = Signal(n, name=f"fold{stage}")
            m.d.sync += [nxt[i].eq(level[4 * i:4 * i + 4].xor()) for i in range(n)]
            level, stage = nxt, stage + 1
        m.d.sync += self.so.eq(level[0])
        return m


def harness_verilog(cfg, top: str):
    """Verilog of top ``top`` of ``cfg`` inside an :class:`IoHarness`."""
    from sparsemac.hw.tops import make_top, top_module_name
    from sparsemac.hw.verilog import generate_verilog

    from .generate import GeneratedTop

    module = top_module_name(top) + "_harness"
    text = generate_verilog(IoHarness(make_top(top, cfg)), name=module)
    return GeneratedTop(top=top, module=module, verilog=text)
