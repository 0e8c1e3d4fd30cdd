"""On-chip memory behind an AXI4 slave port (board builds: the accelerator's data memory)."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In
from sparsemac.hw.mem.axi import AxiResp, axi4_signature, check_axi_params

__all__ = ["AxiSram"]


def _words(init, depth: int, beat_bytes: int) -> list[int]:
    if isinstance(init, (bytes, bytearray, memoryview)):
        raw = bytes(init)
        if len(raw) > depth * beat_bytes:
            raise ValueError(f"init must hold at most {depth * beat_bytes} bytes (depth "
                             f"{depth} x {beat_bytes}-byte words), not {len(raw)}")
        raw += bytes(-len(raw) % beat_bytes)
        return [int.from_bytes(raw[i:i + beat_bytes], "little")
                for i in range(0, len(raw), beat_bytes)]
    words = list(init)
    if len(words) > depth:
        raise ValueError(f"init must hold at most depth ({depth}) words, not {len(words)}")
    for w in words:
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < 1 << 8 * beat_bytes:
            raise ValueError(f"init words must be integers between 0 and "
                             f"2**{8 * beat_bytes} - 1, not {w!r}")
    return words


class AxiSram(wiring.Component):
    """A single-port-per-direction AXI4 slave on a block RAM, preloaded at construction.

    One ``Memory`` of ``depth`` words of ``data_width`` bits with one synchronous read port
    (the AR/R channels) and one byte-enabled write port (AW/W/B), so it maps onto block RAM
    (ECP5 DP16KD, iCE40 SB_RAM40_4K).  Reads and writes run independently, one burst at a
    time each.  Only what the accelerator's DMA needs is implemented: INCR bursts of full-width
    beats (``arburst``/``awburst``, ``*size``, ``*cache``, ``*prot`` are ignored; any other
    burst type is treated as INCR), responses are always OKAY.

    Addressing: byte address ``a`` is word ``(a // beat_bytes) mod depth`` (the low address
    bits; the memory repeats every ``depth * beat_bytes`` bytes); the low ``log2(beat_bytes)``
    bits are ignored.

    Latency and throughput: the first R beat is valid 2 cycles after the AR handshake, then one
    beat per cycle while ``rready`` is high (a stalled beat keeps its data, ``rlast`` and
    ``rid``); ``arready`` is low while a read burst is being issued.  Writes: ``awready`` in
    idle, then ``wready`` for ``awlen + 1`` beats (``wlast`` is not needed), then ``bvalid``
    until ``bready``; ``awready`` returns the cycle after the B handshake.  A W beat offered
    before its AW waits (``wready`` low).

    Parameters
    ----------
    data_width, addr_width, id_width : int
        AXI widths (``hw.axi.check_axi_params`` ranges).
    depth : int
        Words of memory, a power of two (1 .. 2**20).
    init : bytes or sequence of int
        Initial contents: a little-endian byte image from address 0 (zero-padded), or words.

    Members
    -------
    s_axi : In(axi4_signature(...))
        The slave port (Verilog ``s_axi__*``).

    Raises
    ------
    TypeError, ValueError
        A width or ``depth`` is out of range, or ``init`` does not fit.
    """

    def __init__(self, *, data_width: int, addr_width: int, id_width: int, depth: int,
                 init: bytes | Sequence[int] = b""):
        check_axi_params(data_width=data_width, addr_width=addr_width, id_width=id_width)
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise TypeError(f"depth must be an integer, not {depth!r}")
        if not 1 <= depth <= 1 << 20 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two between 1 and {1 << 20}, "
                             f"not {depth!r}")
        if data_width < 8:
            raise ValueError(f"data_width must be at least 8, not {data_width!r}")
        self.data_width, self.addr_width, self.id_width = data_width, addr_width, id_width
        self.depth = depth
        self.beat_bytes = data_width // 8
        self.init = _words(init, depth, self.beat_bytes)
        if (depth * self.beat_bytes - 1).bit_length() > addr_width:
            raise ValueError(f"depth must be at most {2 ** addr_width // self.beat_bytes} "
                             f"(the {addr_width}-bit address space), not {depth!r}")
        super().__init__({"s_axi": In(axi4_signature(data_width=data_width,
                                                     addr_width=addr_width, id_width=id_width))})

    @classmethod
    def for_config(cls, cfg, *, depth: int, init: bytes | Sequence[int] = b""):
        """An AxiSram with the accelerator's AXI widths (``cfg``: an AcceleratorConfig)."""
        return cls(data_width=cfg.axi_data_width, addr_width=cfg.axi_addr_width,
                   id_width=cfg.axi_id_width, depth=depth, init=init)

    @property
    def size_bytes(self) -> int:
        return self.depth * self.beat_bytes

    @property
    def latency(self) -> int:
        """Cycles from the AR handshake to the first valid R beat."""
        return 2

    def elaborate(self, platform):
        m = Module()
        axi = self.s_axi
        sh = (self.beat_bytes - 1).bit_length()
        abits = max(1, (self.depth - 1).bit_length())
        m.submodules.mem = mem = Memory(shape=self.data_width, depth=self.depth, init=self.init)
        rp = mem.read_port(domain="sync")
        wp = mem.write_port(granularity=8)

        def word(addr):
            return addr[sh:sh + abits] if self.depth > 1 else 0

        # -- read: AR -> (issue one word per free output slot) -> R ----------------------------
        r_busy = Signal()
        r_addr = Signal(abits)
        r_left = Signal(9)
        r_id = Signal(self.id_width)
        r_valid = Signal()
        r_last = Signal()
        r_id_out = Signal(self.id_width)
        issue = Signal()
        m.d.comb += [
            axi.arready.eq(~r_busy),
            issue.eq(r_busy & (~r_valid | axi.rready)),
            rp.en.eq(issue), rp.addr.eq(r_addr),
            axi.rvalid.eq(r_valid), axi.rdata.eq(rp.data), axi.rlast.eq(r_last),
            axi.rid.eq(r_id_out), axi.rresp.eq(AxiResp.OKAY),
        ]
        with m.If(axi.arvalid & ~r_busy):
            m.d.sync += [r_busy.eq(1), r_addr.eq(word(axi.araddr)), r_left.eq(axi.arlen + 1),
                         r_id.eq(axi.arid)]
        with m.If(issue):
            m.d.sync += [r_valid.eq(1), r_last.eq(r_left == 1), r_id_out.eq(r_id),
                         r_addr.eq(r_addr + 1), r_left.eq(r_left - 1)]
            with m.If(r_left == 1):
                m.d.sync += r_busy.eq(0)
        with m.Elif(axi.rready):
            m.d.sync += r_valid.eq(0)

        # -- write: AW -> awlen + 1 W beats -> B -----------------------------------------------
        w_addr = Signal(abits)
        w_left = Signal(9)
        w_id = Signal(self.id_width)
        m.d.comb += [axi.bid.eq(w_id), axi.bresp.eq(AxiResp.OKAY),
                     wp.addr.eq(w_addr), wp.data.eq(axi.wdata)]
        with m.FSM(name="write"):
            with m.State("IDLE"):
                m.d.comb += axi.awready.eq(1)
                with m.If(axi.awvalid):
                    m.d.sync += [w_addr.eq(word(axi.awaddr)), w_left.eq(axi.awlen + 1),
                                 w_id.eq(axi.awid)]
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += axi.wready.eq(1)
                with m.If(axi.wvalid):
                    m.d.comb += wp.en.eq(axi.wstrb)
                    m.d.sync += [w_addr.eq(w_addr + 1), w_left.eq(w_left - 1)]
                    with m.If(w_left == 1):
                        m.next = "RESP"
            with m.State("RESP"):
                m.d.comb += axi.bvalid.eq(1)
                with m.If(axi.bready):
                    m.next = "IDLE"
        return m
