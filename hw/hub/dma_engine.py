"""What the DMA reader and writer share: parameters, ports and their command FSM states.

Not a block of its own: :class:`DmaReader` and :class:`DmaWriter` derive from
:class:`DmaEngine`, which validates the AXI parameters once and declares the ports both have
(``cmd``, ``status``, ``m_axi``, the window, ``abort``, ``busy``); each adds its ``data``
stream and its own ``elaborate``.
"""

from __future__ import annotations

from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.hw.mem.axi import check_dma_params, dma_cmd_layout, dma_status_layout

__all__ = ["DmaEngine"]


class _State(enum.Enum):
    """Command FSM of both engines: accept, check against the window, run, report.

    (The generated Verilog names the enum, ``enum_base_type = "_State"``: renaming it changes
    the bytes of every top with a DMA.)"""

    IDLE = 0
    CHECK = 1
    RUN = 2
    STATUS = 3
    ABORT = 4


class DmaEngine(wiring.Component):
    """Base of the two AXI4 DMA engines (see their docstrings for the behaviour).

    Parameters
    ----------
    data_width, addr_width, id_width : int
        AXI widths.
    max_burst : int
        Longest burst in beats (power of two, 1..256).
    max_outstanding : int
        Bursts in flight (1..16).
    watchdog_cycles : int
        Stall limit in cycles (4..2**30).
    tag_width : int
        Width of the command tag (1..32).
    data, m_axi : wiring member
        The engine's own data stream and AXI half (read or write).
    """

    def __init__(self, *, data_width: int, addr_width: int, id_width: int, max_burst: int,
                 max_outstanding: int, watchdog_cycles: int, tag_width: int, data, m_axi):
        check_dma_params(data_width=data_width, addr_width=addr_width, id_width=id_width,
                         max_burst=max_burst, max_outstanding=max_outstanding,
                         watchdog_cycles=watchdog_cycles, tag_width=tag_width)
        self.data_width = data_width
        self.addr_width = addr_width
        self.id_width = id_width
        self.max_burst = max_burst
        self.max_outstanding = max_outstanding
        self.watchdog_cycles = watchdog_cycles
        self.tag_width = tag_width
        super().__init__({
            "cmd": In(stream.Signature(dma_cmd_layout(addr_width, tag_width))),
            "data": data,
            "status": Out(stream.Signature(dma_status_layout(addr_width, tag_width))),
            "m_axi": m_axi,
            "window_base": In(addr_width),
            "window_limit": In(addr_width),
            "abort": In(1),
            "busy": Out(1),
        })

    @property
    def beat_bytes(self) -> int:
        """Bytes per AXI beat."""
        return self.data_width // 8
