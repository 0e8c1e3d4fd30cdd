"""AXI4-Lite slave implementing the register map of ``hw.regmap`` (docs/registers.md)."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.hw.mem.axi import AxiResp, axi4_lite_signature
from sparsemac.hw.top.regmap import Register, registers

__all__ = ["CsrBank"]


def _layout(reg: Register) -> data.FlexibleLayout:
    return data.FlexibleLayout(32, {f.name: data.Field(unsigned(f.width), f.lsb)
                                    for f in reg.fields})


def _mask(reg: Register) -> int:
    return sum(f.mask for f in reg.fields)


class CsrBank(wiring.Component):
    """The control registers behind an AXI4-Lite slave port; the top wires the fields.

    Every register of :func:`hw.regmap.registers` becomes a member named like the register in
    lower case, with the register's fields as a ``data.FlexibleLayout`` view:

    * ``ro`` registers (``status``, ``error_addr_lo`` ...) are ``In``: the top drives them;
    * ``rw`` registers (``irq_enable``, ``desc_base_lo`` ...) are ``Out``: stored here;
    * ``pulse`` registers (``control``) are ``Out``: a bit is 1 for exactly one cycle, the
      cycle after a write of 1 to it (byte strobes honoured);
    * ``w1c`` registers (``irq_status``) are ``Out`` with an ``In`` ``<name>_set``: a set
      pulse sets the bit (set wins over a clear in the same cycle), writing 1 clears it;
    * counters are 64 bits here, incremented by ``In`` ``<counter>_inc`` each cycle (``cycles``
      counts every cycle), cleared by ``CONTROL.perf_clear``.  Reading ``<counter>_LO``
      snapshots the high word, returned by the following ``<counter>_HI`` read.

    ``irq`` is ``OR(irq_status & irq_enable)``, registered from the stored bits.  Unmapped
    addresses and writes to read-only registers answer SLVERR and change nothing.  Bits
    outside every field read 0 and ignore writes.

    Latency / throughput: a write is taken when AWVALID and WVALID are both high and no B is
    pending (AWREADY = WREADY in that cycle), B follows one cycle later; a read answers one
    cycle after the AR handshake.  One read and one write can be in progress at once; each
    channel takes a new request every second cycle at best.

    Parameters
    ----------
    cfg : AcceleratorConfig
        The build: fills the constant registers and the byte-counter increment width.
    addr_width : int
        AXI4-Lite address bits (8..32; the map needs 8).

    Members
    -------
    s_axil : In(axi4_lite_signature)
    irq : Out(1)
    <register> : In / Out(FlexibleLayout), see above.
    """

    def __init__(self, cfg, *, addr_width: int = 12):
        if isinstance(addr_width, bool) or not isinstance(addr_width, int):
            raise TypeError(f"addr_width must be an integer, not {addr_width!r}")
        if not 8 <= addr_width <= 32:
            raise ValueError(f"addr_width must be between 8 and 32, not {addr_width!r}")
        self.cfg = cfg
        self.addr_width = addr_width
        self.regs = registers(cfg)
        members = {"s_axil": In(axi4_lite_signature(addr_width=addr_width)), "irq": Out(1)}
        for r in self.regs:
            if r.kind == "ro":
                members[r.port] = In(_layout(r))
            elif r.kind in ("rw", "pulse", "w1c"):
                members[r.port] = Out(_layout(r))
            if r.kind == "w1c":
                members[f"{r.port}_set"] = In(_layout(r))
            if r.kind == "cnt_lo" and r.inc_width:
                members[f"{r.counter}_inc"] = In(r.inc_width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        axi = self.s_axil
        store = {}
        counters = {}
        snap = {}
        for r in self.regs:
            if r.kind in ("rw", "w1c"):
                store[r.name] = Signal(32, name=f"{r.port}_q")
                m.d.comb += getattr(self, r.port).as_value().eq(store[r.name])
            elif r.kind == "pulse":
                m.d.sync += getattr(self, r.port).as_value().eq(0)
            elif r.kind == "cnt_lo":
                counters[r.counter] = Signal(64, name=f"{r.counter}_q")
                snap[r.counter] = Signal(32, name=f"{r.counter}_hi_snap")

        # -- write channel --------------------------------------------------------------------
        bvalid = Signal()
        bresp = Signal(2)
        do_write = axi.awvalid & axi.wvalid & ~bvalid
        mask = Cat(*(axi.wstrb[i].replicate(8) for i in range(4)))
        wbits = axi.wdata & mask
        m.d.comb += [axi.awready.eq(do_write), axi.wready.eq(do_write),
                     axi.bvalid.eq(bvalid), axi.bresp.eq(bresp)]
        clears = {name: Signal(32, name=f"{name.lower()}_clr") for name in store}
        perf_clear = Signal()
        with m.If(bvalid & axi.bready):
            m.d.sync += bvalid.eq(0)
        with m.If(do_write):
            m.d.sync += [bvalid.eq(1), bresp.eq(AxiResp.SLVERR)]
            with m.Switch(axi.awaddr[2:]):
                for r in self.regs:
                    if r.kind not in ("rw", "pulse", "w1c"):
                        continue
                    with m.Case(r.offset >> 2):
                        m.d.sync += bresp.eq(AxiResp.OKAY)
                        if r.kind == "rw":
                            keep = store[r.name] & ~mask
                            m.d.sync += store[r.name].eq((keep | wbits) & _mask(r))
                        elif r.kind == "w1c":
                            m.d.comb += clears[r.name].eq(wbits)
                        else:
                            m.d.sync += getattr(self, r.port).as_value().eq(wbits & _mask(r))
                            if any(f.name == "perf_clear" for f in r.fields):
                                m.d.comb += perf_clear.eq(
                                    wbits[r.fields[[f.name for f in r.fields]
                                                   .index("perf_clear")].lsb])
        for r in self.regs:
            if r.kind == "w1c":
                q = store[r.name]
                m.d.sync += q.eq(((q & ~clears[r.name])
                                  | getattr(self, f"{r.port}_set").as_value()) & _mask(r))

        # -- counters -------------------------------------------------------------------------
        for r in self.regs:
            if r.kind != "cnt_lo":
                continue
            inc = getattr(self, f"{r.counter}_inc") if r.inc_width else 1
            with m.If(perf_clear):
                m.d.sync += counters[r.counter].eq(0)
            with m.Else():
                m.d.sync += counters[r.counter].eq(counters[r.counter] + inc)

        # -- read channel ---------------------------------------------------------------------
        rvalid = Signal()
        rresp = Signal(2)
        rdata = Signal(32)
        do_read = axi.arvalid & ~rvalid
        m.d.comb += [axi.arready.eq(do_read), axi.rvalid.eq(rvalid), axi.rresp.eq(rresp),
                     axi.rdata.eq(rdata)]
        with m.If(rvalid & axi.rready):
            m.d.sync += rvalid.eq(0)
        with m.If(do_read):
            m.d.sync += [rvalid.eq(1), rresp.eq(AxiResp.SLVERR), rdata.eq(0)]
            with m.Switch(axi.araddr[2:]):
                for r in self.regs:
                    with m.Case(r.offset >> 2):
                        m.d.sync += rresp.eq(AxiResp.OKAY)
                        if r.kind == "const":
                            m.d.sync += rdata.eq(r.value)
                        elif r.kind == "ro":
                            m.d.sync += rdata.eq(getattr(self, r.port).as_value() & _mask(r))
                        elif r.kind in ("rw", "w1c"):
                            m.d.sync += rdata.eq(store[r.name])
                        elif r.kind == "cnt_lo":
                            m.d.sync += [rdata.eq(counters[r.counter][:32]),
                                         snap[r.counter].eq(counters[r.counter][32:])]
                        elif r.kind == "cnt_hi":
                            m.d.sync += rdata.eq(snap[r.counter])

        # -- interrupt ------------------------------------------------------------------------
        irq_bits = []
        for r in self.regs:
            if r.kind == "w1c":
                en = store[r.name.replace("STATUS", "ENABLE")]
                irq_bits.append((store[r.name] & en).any())
        m.d.sync += self.irq.eq(Cat(*irq_bits).any())
        return m
