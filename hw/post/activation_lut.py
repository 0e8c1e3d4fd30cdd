"""Double-buffered 256-entry int8 -> int8 activation table (docs/spec.md section 1.1)."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.hw.post.requantizer import requant_out_layout

__all__ = ["ActivationLut", "lut_write_signature"]


def lut_write_signature(write_bytes: int = 1) -> wiring.Signature:
    """Write port of the shadow table: ``write_bytes`` entries per write, entry ``addr + i``
    (0..255; ``addr`` a multiple of ``write_bytes``) takes byte ``i`` of ``data``; entry ``k``
    holds ``f(k - 128)``."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(unsigned(8)),
        "data": Out(signed(8) if write_bytes == 1 else unsigned(8 * write_bytes)),
    })


class ActivationLut(wiring.Component):
    """Apply a run-time loaded 256-entry int8 table to ``lanes`` values per cycle.

    ``o.data[j] = table[i.data[j] ^ 0x80]`` (entry ``k`` holds ``f(k - 128)``, spec 1.1).

    Double buffer: two banks.  ``bank`` is the active one (read by the data path); ``wr``
    always writes the other (shadow) bank.  A one-cycle ``swap`` strobe requests a swap, which
    takes effect at the next packet boundary: in the strobe cycle itself when no packet is open
    (so a beat accepted in that cycle already uses the new table), else right after the beat
    with ``last = 1`` is accepted; until then ``swap_pending`` is 1 (a second strobe while one
    is pending is merged with it).  Every beat reads its bank in its accept cycle, so a swap
    never stalls or flushes the pipeline.  Writes land in whichever bank is the shadow in that
    cycle: load the new table, then strobe ``swap`` (writes issued while the swap is pending
    still belong to the new table).  Since a swap between packets is immediate, the swap for
    the packet after next is strobed only once the next packet has begun (a beat of it was
    accepted in an earlier cycle).  A write stores ``write_bytes`` consecutive entries, so a
    table loads in ``256 / write_bytes`` cycles (a bus word per cycle).

    Throughput: one beat (``lanes`` values) per cycle.  Latency: ``latency`` (1) cycle from
    acceptance to the output register.  Stall behaviour: the pipeline advances when its output
    is empty or taken (``i.ready = ~o.valid | o.ready``).  Each lane has its own copy of both
    banks (one 512-byte RAM per lane, ``write_bytes`` bytes wide); a write updates every
    copy.

    Parameters
    ----------
    lanes : int
        Values per beat (1..64).
    write_bytes : int
        Entries per write (a power of two, 1..64; the bus word of the table's source).

    Members
    -------
    i : In(stream.Signature(requant_out_layout(lanes, 8)))
        int8 values and ``last`` (end of packet).
    o : Out(stream.Signature(requant_out_layout(lanes, 8)))
        Activated values, ``last`` passed through.
    wr : In(lut_write_signature(write_bytes))
        Shadow-table write port.
    swap : In(1)
        Request a bank swap at the next packet boundary.
    swap_pending : Out(1)
        A requested swap has not taken effect yet.
    bank : Out(1)
        The active bank (for status registers).

    Raises
    ------
    TypeError, ValueError
        For impossible parameters.
    """

    latency = 1

    def __init__(self, *, lanes: int = 4, write_bytes: int = 1):
        for name, v in (("lanes", lanes), ("write_bytes", write_bytes)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if not 1 <= v <= 64:
                raise ValueError(f"{name} must be between 1 and 64, not {v!r}")
        if write_bytes & (write_bytes - 1):
            raise ValueError(f"write_bytes must be a power of two, not {write_bytes!r}")
        self.lanes = lanes
        self.write_bytes = write_bytes
        layout = requant_out_layout(lanes, 8)
        super().__init__({
            "i": In(stream.Signature(layout)),
            "o": Out(stream.Signature(layout)),
            "wr": In(lut_write_signature(write_bytes)),
            "swap": In(1),
            "swap_pending": Out(1),
            "bank": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        take = Signal()
        m.d.comb += take.eq(self.i.valid & en)

        pending = Signal()
        in_packet = Signal()  # a beat with last = 0 was accepted, its packet is open
        swap_now = Signal()   # the swap happens in this cycle (before this cycle's beat)
        cur = Signal()        # bank used by this cycle's beat (and active from now on)
        m.d.comb += [
            swap_now.eq((pending | self.swap) & ~in_packet),
            cur.eq(Mux(swap_now, ~self.bank, self.bank)),
            self.swap_pending.eq(pending),
        ]
        m.d.sync += [self.bank.eq(cur), pending.eq((pending | self.swap) & ~swap_now)]
        with m.If(take):
            m.d.sync += in_packet.eq(~self.i.payload.last)

        with m.If(en):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.last.eq(self.i.payload.last)]
        wbytes = self.write_bytes
        lg = wbytes.bit_length() - 1
        for j in range(self.lanes):
            # entry e of bank b: word (b * 256 + e) >> lg, byte e % wbytes
            mem = memory.Memory(shape=signed(8) if wbytes == 1 else unsigned(8 * wbytes),
                                depth=512 // wbytes, init=[])
            m.submodules[f"table_{j}"] = mem
            wp = mem.write_port()
            rp = mem.read_port()
            entry = Signal(8, name=f"entry{j}")
            m.d.comb += [
                entry.eq(self.i.payload.data[j].as_unsigned() ^ 0x80),
                wp.en.eq(self.wr.en),
                wp.addr.eq(Cat(self.wr.addr[lg:], ~cur)),
                wp.data.eq(self.wr.data),
                rp.en.eq(en),
                rp.addr.eq(Cat(entry[lg:], cur)),
            ]
            if wbytes == 1:
                m.d.comb += self.o.payload.data[j].eq(rp.data)
            else:
                byte = Signal(lg, name=f"byte{j}")      # the entry's byte in the word read
                with m.If(en):
                    m.d.sync += byte.eq(entry[:lg])
                m.d.comb += self.o.payload.data[j].eq(rp.data.word_select(byte, 8))
        return m
