"""The sequencer's header prefetch: tile ``t + 1``'s 32-byte weight image header is read while
tile ``t``'s header is checked and sent (docs/accelerator.md, "Header prefetch")."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.golden.formats import HEADER_BYTES
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.hub.desc_prefetch import DescPrefetch
from sparsemac.hw.mem.axi import dma_cmd_layout, dma_read_data_layout, dma_status_layout
from sparsemac.hw.tile.header_checker import header_layout

__all__ = ["HeaderPrefetch"]


class HeaderPrefetch(wiring.Component):
    """Reads one 32-byte image header from ``addr`` into ``hdr`` while the sequencer's read
    port is its own (``window``), and holds the outcome until the sequencer ``take``s it.

    The state machine is a `DescPrefetch` (issue, stream, a check that always passes, ready or
    failed); this block adds the read command (``addr``, 32 bytes, ``tag``), its own word
    counter and the header register, so the register the sequencer checks and sends (its
    ``hdr``) is not written while it is being sent.  ``request`` starts a read from idle (the
    sequencer raises it only for an address whose 32 bytes lie inside the window: nothing is
    read outside it); ``addr`` is taken in that cycle.  A read whose status reports an error
    ends ``failed`` with the status's ``code`` and ``err_addr``; ``clear`` (an abort) returns
    to idle at once, the DMA's abort drops the rest of the read.

    Timing: ``request`` in cycle 0, the command offered from cycle 1 (``issuing``), ``ready``
    two cycles after the read's status is taken (``golden.net_cycles``: the header phase).

    Parameters
    ----------
    cfg : AcceleratorConfig
        ``axi_addr_width`` and ``axi_data_width`` (bytes per word) of the read port.
    tag_width : int
        Width of the DMA command's tag.
    tag : int
        The tag of the header read (the sequencer's header phase).

    Members
    -------
    window, request, take, clear : In(1)
    addr : In(axi_addr_width + 2)
    rcmd : Out(stream(dma_cmd)); rdata, rstatus : In(stream) -- the sequencer's DmaReader port
    idle, ready, failed : Out(1)
    code : Out(8); err_addr : Out(axi_addr_width)
    hdr : Out(header_layout())
    """

    def __init__(self, cfg: AcceleratorConfig, *, tag_width: int = 4, tag: int = 0):
        self.cfg = AcceleratorConfig.require(cfg, "cfg")
        if not isinstance(tag, int) or not 0 <= tag < (1 << tag_width):
            raise ValueError(f"tag must be an integer in 0..{(1 << tag_width) - 1}, not {tag!r}")
        self.tag = tag
        aw = cfg.axi_addr_width
        super().__init__({
            "window": In(1), "request": In(1), "take": In(1), "clear": In(1),
            "addr": In(aw + 2),
            "rcmd": Out(stream.Signature(dma_cmd_layout(aw, tag_width))),
            "rdata": In(stream.Signature(dma_read_data_layout(cfg.axi_data_width, tag_width))),
            "rstatus": In(stream.Signature(dma_status_layout(aw, tag_width))),
            "idle": Out(1), "ready": Out(1), "failed": Out(1),
            "code": Out(8), "err_addr": Out(aw),
            "hdr": Out(header_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        W, beat = cfg.axi_data_width, cfg.axi_bytes
        words = HEADER_BYTES // beat
        m.submodules.state = st = DescPrefetch(addr_width=cfg.axi_addr_width)
        m.d.comb += [st.window.eq(self.window), st.request.eq(self.request),
                     st.take.eq(self.take), st.clear.eq(self.clear), st.checked.eq(1),
                     st.cmd_ready.eq(self.rcmd.ready),
                     st.status_valid.eq(self.rstatus.valid),
                     st.status_code.eq(self.rstatus.payload.code),
                     st.status_addr.eq(self.rstatus.payload.addr),
                     self.idle.eq(st.idle), self.ready.eq(st.ready), self.failed.eq(st.failed),
                     self.code.eq(st.code), self.err_addr.eq(st.addr)]
        addr = Signal(cfg.axi_addr_width, name="hdr_addr")
        wi = Signal(range(words + 1), name="hdr_word")
        with m.If(st.issue):
            m.d.sync += [addr.eq(self.addr), wi.eq(0)]
        m.d.comb += [self.rcmd.valid.eq(st.issuing), self.rcmd.payload.addr.eq(addr),
                     self.rcmd.payload.length.eq(HEADER_BYTES),
                     self.rcmd.payload.tag.eq(self.tag)]
        with m.If(st.streaming):
            m.d.comb += [self.rdata.ready.eq(1), self.rstatus.ready.eq(1)]
            with m.If(self.rdata.valid):
                m.d.sync += wi.eq(wi + 1)
                for i in range(words):
                    with m.If(wi == i):
                        m.d.sync += self.hdr.as_value()[i * W:(i + 1) * W].eq(
                            self.rdata.payload.data)
        return m
