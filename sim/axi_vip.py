"""AXI verification IP shared by the testbenches: an error-injecting ``AxiRam`` and a monitor
of the AXI address-channel rules.

* :class:`FaultyAxiRam` answers SLVERR (resp 2) or DECERR (3) for every access touching one of
  its ``faults`` ranges ``(lo, hi, resp)`` (cocotbext-axi's ``AxiRam`` never answers errors by
  itself).
* :func:`axi_rule_monitor` checks every AR/AW handshake of a master: INCR bursts of full bus
  width, at most ``max_burst`` beats, never across a 4 KiB boundary; it appends a message per
  violation to ``violations`` and every handshake ``(channel, address, beats)`` to ``bursts``.
"""

from __future__ import annotations

from cocotbext.axi import AxiRam
from cocotbext.axi.constants import AxiResp

__all__ = ["FaultyAxiRam", "axi_rule_monitor"]


class FaultyAxiRam(AxiRam):
    """``AxiRam`` with error injection: set ``faults`` to a list of ``(lo, hi, resp)``."""

    def __init__(self, bus, clock, reset, **kw):
        super().__init__(bus, clock, reset, **kw)
        self.faults: list[tuple[int, int, int]] = []
        self._fault: dict[str, int] = {}
        for kind, iface in (("r", self.read_if), ("w", self.write_if)):
            chan = iface.r_channel if kind == "r" else iface.b_channel
            if kind == "r":
                async def op(address, length, _orig=iface._read, _k=kind):
                    self._check_fault(_k, address, length)
                    return await _orig(address, length)
                iface._read = op
            else:
                async def op(address, data, _orig=iface._write, _k=kind):
                    self._check_fault(_k, address, len(data))
                    return await _orig(address, data)
                iface._write = op

            async def send(t, _send=chan.send, _k=kind):
                # a failed access is answered SLVERR by AxiRam; turn it into DECERR on request
                field = "rresp" if _k == "r" else "bresp"
                fault = self._fault.pop(_k, None)
                if int(getattr(t, field)) == AxiResp.SLVERR and fault == 3:
                    setattr(t, field, AxiResp.DECERR)
                await _send(t)
            chan.send = send

    def _check_fault(self, kind, address, length):
        for lo, hi, resp in self.faults:
            if address < hi and address + length > lo:
                self._fault[kind] = resp
                raise OSError(f"injected fault at {address:#x}")


async def axi_rule_monitor(dut, *, prefix: str, beat_bytes: int, max_burst: int,
                           violations: list, bursts: list | None = None):
    """Run forever: check every AR/AW handshake of the master ports ``<prefix>_ar*``/``aw*``."""
    from cocotb.triggers import ReadOnly, RisingEdge

    def sig(ch, name):
        return getattr(dut, f"{prefix}_{ch}{name}").value

    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        for ch in ("ar", "aw"):
            if not (int(sig(ch, "valid")) and int(sig(ch, "ready"))):
                continue
            addr = int(sig(ch, "addr"))
            beats = int(sig(ch, "len")) + 1
            if bursts is not None:
                bursts.append((ch, addr, beats))
            if (addr & 0xFFF) + beats * beat_bytes > 0x1000:
                violations.append(f"{ch} {addr:#x} x{beats} crosses 4 KiB")
            if beats > max_burst:
                violations.append(f"{ch} burst of {beats} beats > max_burst {max_burst}")
            if int(sig(ch, "burst")) != 1 or 1 << int(sig(ch, "size")) != beat_bytes:
                violations.append(f"{ch} {addr:#x}: not a full-width INCR burst")
