"""AXI4 / AXI4-Lite signatures and the DMA command/status layouts (docs/dma.md).

Port names follow the AXI specification in lower case (``arvalid``, ``rdata`` ...), so a member
``m_axi`` of a component flattens to Verilog ports ``m_axi__arvalid``, ``m_axi__rdata`` ...
cocotbext-axi finds them with ``AxiBus.from_prefix(dut, "m_axi_")`` (its bus separator ``_``
follows the prefix), likewise ``AxiLiteBus.from_prefix(dut, "s_axil_")`` for a member
``s_axil``.

All signatures are written from the **master** side (``Out`` = driven by the master); a slave
uses ``signature.flip()``.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from amaranth.hdl import Cat, Const, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "AxiResp", "AxiBurst", "BOUNDARY_BYTES",
    "axi4_read_signature", "axi4_write_signature", "axi4_signature", "axi4_lite_signature",
    "dma_cmd_layout", "dma_read_data_layout", "dma_write_data_layout", "dma_status_layout",
    "dma_beat_layout",
    "check_axi_params", "check_dma_params", "BurstStep", "burst_step",
    "connect_axi4_with_read_tap",
    "ERROR_CODE_WIDTH",
]

#: An INCR burst never crosses a multiple of this many bytes (AXI4 rule A3.4.1).
BOUNDARY_BYTES = 4096
#: Width of an error code field (values are ``hw.regmap.ErrorCode``).
ERROR_CODE_WIDTH = 8


class AxiResp(enum.IntEnum):
    """RRESP / BRESP encodings."""

    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class AxiBurst(enum.IntEnum):
    """ARBURST / AWBURST encodings."""

    FIXED = 0
    INCR = 1
    WRAP = 2


def _check_int(name, value, lo, hi, pow2=False):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi or (pow2 and value & (value - 1)):
        kind = "a power of two between" if pow2 else "between"
        raise ValueError(f"{name} must be {kind} {lo} and {hi}, not {value!r}")


def check_axi_params(*, data_width: int, addr_width: int, id_width: int | None = None) -> None:
    """Validate AXI widths (ranges of ``hw.config``: data 8..1024 power of two, addr 12..64).

    Raises
    ------
    TypeError
        A width is not an integer.
    ValueError
        A width is out of range.
    """
    _check_int("data_width", data_width, 8, 1024, pow2=True)
    _check_int("addr_width", addr_width, 12, 64)
    if id_width is not None:
        _check_int("id_width", id_width, 1, 16)


def _axi4_address_channel(prefix: str, *, addr_width: int, id_width: int) -> dict:
    """Members of an AXI4 address channel, ``prefix`` ``"ar"`` or ``"aw"`` (AR and AW have
    the same fields; ``AxCACHE``/``AxPROT`` included, no user bits)."""
    widths = {"id": id_width, "addr": addr_width, "len": 8, "size": 3, "burst": 2, "cache": 4,
              "prot": 3, "valid": 1}
    members = {f"{prefix}{name}": Out(width) for name, width in widths.items()}
    members[f"{prefix}ready"] = In(1)
    return members


def axi4_read_signature(*, data_width: int, addr_width: int, id_width: int) -> wiring.Signature:
    """AR and R channels of an AXI4 master (``arcache``/``arprot`` included, no user bits)."""
    check_axi_params(data_width=data_width, addr_width=addr_width, id_width=id_width)
    return wiring.Signature({
        **_axi4_address_channel("ar", addr_width=addr_width, id_width=id_width),
        "rid": In(id_width),
        "rdata": In(data_width),
        "rresp": In(2),
        "rlast": In(1),
        "rvalid": In(1),
        "rready": Out(1),
    })


def axi4_write_signature(*, data_width: int, addr_width: int, id_width: int) -> wiring.Signature:
    """AW, W and B channels of an AXI4 master (``awcache``/``awprot`` included, no user bits)."""
    check_axi_params(data_width=data_width, addr_width=addr_width, id_width=id_width)
    return wiring.Signature({
        **_axi4_address_channel("aw", addr_width=addr_width, id_width=id_width),
        "wdata": Out(data_width),
        "wstrb": Out(data_width // 8),
        "wlast": Out(1),
        "wvalid": Out(1),
        "wready": In(1),
        "bid": In(id_width),
        "bresp": In(2),
        "bvalid": In(1),
        "bready": Out(1),
    })


def axi4_signature(*, data_width: int, addr_width: int, id_width: int) -> wiring.Signature:
    """Full AXI4 master: the members of :func:`axi4_write_signature` and
    :func:`axi4_read_signature` side by side."""
    members = dict(axi4_write_signature(data_width=data_width, addr_width=addr_width,
                                        id_width=id_width).members)
    members.update(axi4_read_signature(data_width=data_width, addr_width=addr_width,
                                       id_width=id_width).members)
    return wiring.Signature(members)


def axi4_lite_signature(*, data_width: int = 32, addr_width: int) -> wiring.Signature:
    """AXI4-Lite master (data 32 or 64 bits)."""
    if data_width not in (32, 64):
        raise ValueError(f"data_width must be 32 or 64, not {data_width!r}")
    check_axi_params(data_width=data_width, addr_width=addr_width)
    return wiring.Signature({
        "awaddr": Out(addr_width),
        "awprot": Out(3),
        "awvalid": Out(1),
        "awready": In(1),
        "wdata": Out(data_width),
        "wstrb": Out(data_width // 8),
        "wvalid": Out(1),
        "wready": In(1),
        "bresp": In(2),
        "bvalid": In(1),
        "bready": Out(1),
        "araddr": Out(addr_width),
        "arprot": Out(3),
        "arvalid": Out(1),
        "arready": In(1),
        "rdata": In(data_width),
        "rresp": In(2),
        "rvalid": In(1),
        "rready": Out(1),
    })


def dma_cmd_layout(addr_width: int, tag_width: int) -> data.StructLayout:
    """DMA command: start byte address, length in bytes, an opaque tag returned in the status."""
    return data.StructLayout({
        "addr": unsigned(addr_width),
        "length": unsigned(addr_width),
        "tag": unsigned(tag_width),
    })


def dma_read_data_layout(data_width: int, tag_width: int) -> data.StructLayout:
    """One delivered bus word, the tag of its command and ``last`` on its final word."""
    return data.StructLayout({
        "data": unsigned(data_width),
        "last": unsigned(1),
        "tag": unsigned(tag_width),
    })


def dma_write_data_layout(data_width: int) -> data.StructLayout:
    """One word to write and its byte strobes (bit ``i`` enables byte lane ``i``)."""
    return data.StructLayout({
        "data": unsigned(data_width),
        "strb": unsigned(data_width // 8),
    })


def dma_beat_layout(data_width: int, addr_width: int) -> data.StructLayout:
    """One single-beat write: its beat address ``tag`` (the byte address over the beat size,
    so it is aligned by construction), the word and its byte strobes."""
    lg_beat = (data_width // 8 - 1).bit_length()
    return data.StructLayout({
        "tag": unsigned(addr_width - lg_beat),
        "data": unsigned(data_width),
        "strb": unsigned(data_width // 8),
    })


def dma_status_layout(addr_width: int, tag_width: int) -> data.StructLayout:
    """Completion of one command: its tag, an error code (0 = OK) and the faulting address."""
    return data.StructLayout({
        "tag": unsigned(tag_width),
        "code": unsigned(ERROR_CODE_WIDTH),
        "addr": unsigned(addr_width),
    })


def check_dma_params(*, data_width: int, addr_width: int, id_width: int, max_burst: int,
                     max_outstanding: int, watchdog_cycles: int, tag_width: int) -> None:
    """Validate the parameters shared by ``DmaReader`` and ``DmaWriter``.

    Raises
    ------
    TypeError, ValueError
        ``"<name> must be <range>, not <value!r>"``.
    """
    check_axi_params(data_width=data_width, addr_width=addr_width, id_width=id_width)
    _check_int("max_burst", max_burst, 1, 256, pow2=True)
    _check_int("max_outstanding", max_outstanding, 1, 16)
    _check_int("watchdog_cycles", watchdog_cycles, 4, 1 << 30)
    _check_int("tag_width", tag_width, 1, 32)
    if max_burst * data_width // 8 > BOUNDARY_BYTES:
        raise ValueError(f"max_burst must be at most {BOUNDARY_BYTES * 8 // data_width} "
                         f"(a burst of {data_width}-bit beats fits in 4 KiB), not {max_burst!r}")


class BurstStep(NamedTuple):
    """The next INCR burst of a cursor: its ``beats`` and the cursor after it (``addr``,
    ``left``), each a signal driven in ``m.d.comb`` by :func:`burst_step`."""
    beats: Signal
    addr: Signal
    left: Signal
    len: Signal            # beats - 1 (``AxLEN``), chosen like ``beats`` with no subtractor


def burst_step(m, addr, left, max_burst: int, beat_bytes: int) -> BurstStep:
    """The next INCR burst at byte ``addr`` with ``left`` beats still to move:
    ``min(max_burst, left, beats to the next 4 KiB boundary)`` beats, and the cursor after it.

    Combinational, built so that no wide compare or subtract waits for another: with
    ``max_burst = 2**k`` (a power of two, at most a 4 KiB page) the boundary is near exactly
    when the beat index's bits above ``k`` within the page are all ones and its low ``k`` bits
    ``a`` are not zero (then ``2**k - a`` beats remain to it); ``left < lim`` is a
    ``k + 1``-bit compare beside a wide zero test; and the next cursor is chosen among values
    computed from the registers alone (``left - max_burst (+ a)``, ``addr + ...``, the next
    page).  ``addr`` must be beat aligned; tests/hw/test_axi.py checks every bound.
    """
    sh = (beat_bytes - 1).bit_length()
    k = (max_burst - 1).bit_length()
    aw = len(addr)
    beats = Signal(range(max_burst + 1), name="burst_beats")
    nxt_addr = Signal(aw, name="burst_next_addr")
    nxt_left = Signal(len(left), name="burst_next_left")
    a = addr[sh:sh + k]                               # beat index within a max_burst block
    near = Signal(name="near_4k")                     # the 4 KiB boundary is under max_burst
    if k == 0:
        m.d.comb += near.eq(0)
    else:
        hi = addr[sh + k:12]
        m.d.comb += near.eq((hi.all() if len(hi) else 1) & a.any())
    lim = Signal(range(max_burst + 1), name="lim")
    m.d.comb += lim.eq(Mux(near, (-a)[:k] if k else 0, max_burst))
    left_lo = left[:k + 1]
    # the command ends within this burst (``left < lim``): ``left`` below ``2**k``, or, near
    # the boundary, ``left + a`` below ``2**k`` (an adder of two registers, beside ``near``)
    left_small = Signal(name="left_small")
    m.d.comb += left_small.eq((left[k + 1:] == 0) if len(left) > k + 1 else 1)
    lt_4k = Signal(name="left_lt_4k")
    m.d.comb += lt_4k.eq(((left_lo + a) >> k) == 0 if k else left_lo == 0)
    take_left = Signal(name="take_left")
    m.d.comb += take_left.eq(left_small & Mux(near, lt_4k, ~left_lo[k]))
    page_next = Signal(aw, name="page_next")
    m.d.comb += page_next.eq(Cat(Const(0, 12), addr[12:] + 1) if aw > 12 else 0)
    len_ = Signal(8, name="burst_len")
    m.d.comb += [
        beats.eq(Mux(take_left, left_lo, lim)),
        # lim - 1 is ~a when near (2**k - a - 1), max_burst - 1 otherwise
        len_.eq(Mux(take_left, left_lo - 1, Mux(near, ~a if k else 0, max_burst - 1))),
        nxt_left.eq(Mux(take_left, 0, left - max_burst + Mux(near, a, 0))),
        nxt_addr.eq(Mux(take_left, addr + (left_lo << sh),
                        Mux(near, page_next, addr + (max_burst << sh)))),
    ]
    return BurstStep(beats, nxt_addr, nxt_left, len_)


def connect_axi4_with_read_tap(m, master, slave, *, tap, araddr, arvalid, rready):
    """Wire an AXI4 ``master`` to a ``slave`` (both as seen from outside, e.g. an
    accelerator's ``m_axi`` and an AxiSram's ``s_axi``); while ``tap`` is high the slave's read
    channel serves single-beat INCR reads at ``araddr`` (``arvalid``, ``rready``) instead of the
    master, which then sees ``arready`` and ``rvalid`` low.  Write channels always pass.
    (Testbench and self-test tops use it to read a memory back after a run.)"""
    for name in ("awid", "awaddr", "awlen", "awsize", "awburst", "awvalid", "wdata", "wstrb",
                 "wlast", "wvalid", "bready"):
        m.d.comb += getattr(slave, name).eq(getattr(master, name))
    for name in ("awready", "wready", "bid", "bresp", "bvalid", "rid", "rdata", "rresp",
                 "rlast"):
        m.d.comb += getattr(master, name).eq(getattr(slave, name))
    with m.If(tap):
        m.d.comb += [slave.arvalid.eq(arvalid), slave.araddr.eq(araddr), slave.arlen.eq(0),
                     slave.arburst.eq(AxiBurst.INCR), slave.rready.eq(rready)]
    with m.Else():
        for name in ("arid", "araddr", "arlen", "arsize", "arburst", "arvalid", "rready"):
            m.d.comb += getattr(slave, name).eq(getattr(master, name))
        m.d.comb += [master.arready.eq(slave.arready), master.rvalid.eq(slave.rvalid)]
