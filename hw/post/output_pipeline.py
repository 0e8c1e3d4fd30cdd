"""Output pipeline of a compute tile: requantization then activation (docs/spec.md 1, 1.1)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.hw.mem.skid_buffer import SkidBuffer
from sparsemac.hw.post.activation_lut import ActivationLut, lut_write_signature
from sparsemac.hw.post.pwl_activation import PwlActivation, pwl_write_signature
from sparsemac.hw.post.requantizer import (
    Requantizer,
    _check_int,
    requant_in_layout,
    requant_out_layout,
    requant_param_signature,
)

__all__ = ["OutputPipeline"]


class OutputPipeline(wiring.Component):
    """Accumulator lanes -> bias + requantization -> activation (table or PWL) -> lanes.

    ``mode = 0`` (LUT): ``o.data = table[requantize(i.data, bias[c], mult[c], shift[c]) ^ 0x80]``
    bit for bit (``golden.lut.output_pipeline``); load an identity table to bypass the
    activation.  ``mode = 1`` (interpolated, only with ``pwl``): the requantized value
    saturates to int16 instead (``golden.lut.requantize_to(..., out_width=16)``) and goes
    through ``PwlActivation`` (spec section 1.2).  ``mode`` is static: change it only while
    the pipeline is empty (no beat accepted and not yet delivered).

    Throughput: one beat of ``lanes`` values per cycle, also across table swaps.  Latency:
    ``latency`` cycles in LUT mode (``Requantizer.latency + ActivationLut.latency``, 10 for
    ``acc_width <= 35``) and ``pwl_latency`` (15) in PWL mode, from an accepted input beat to
    its output beat when the output is never stalled.  Stall behaviour: back-pressure on ``o``
    freezes the active path; no beat is lost or duplicated.

    Parameters
    ----------
    cfg : AcceleratorConfig, optional
        Gives ``lanes = cfg.out_lanes``, ``acc_width = cfg.acc_width`` and
        ``max_channels = cfg.rows`` unless they are given as keywords.
    lanes : int
        Values per beat (1..64).
    acc_width : int
        Accumulator width (8..64).
    max_channels : int
        Depth of the per-channel parameter table (1..65536).
    pwl : bool
        Build the interpolated path (default: ``True``).
    pwl_segments : int
        Its segment count (power of two, 4..256; default ``cfg.pwl_segments`` or 32).
    pwl_out_width : int
        Its output width, 8 or 16 (default 8).
    lut_write_bytes : int
        Table entries per ``lut_wr`` write (a power of two, 1..64; default 1): a table loads
        in ``256 / lut_write_bytes`` cycles.  ``o`` carries ``max(8, pwl_out_width)``-bit
        lanes (LUT results sign-extended).

    Members
    -------
    i : In(stream.Signature(requant_in_layout(lanes, acc_width, channel_width)))
        ``data`` (accumulators), ``channel``, ``last`` (end of packet / layer).
    o : Out(stream.Signature(requant_out_layout(lanes, out_width)))
        Activated values and ``last``.
    params : In(requant_param_signature(channel_width))
        Per-channel ``bias``, ``mult``, ``shift`` writes.
    lut_wr : In(lut_write_signature(lut_write_bytes))
        Shadow activation-table writes.
    lut_swap : In(1)
        Make the shadow table active at the next packet boundary.
    lut_swap_pending, lut_bank : Out(1)
        Status of the double buffer.
    mode : In(1)
        0: activation table, 1: interpolated (only with ``pwl``).
    pwl_wr : In(pwl_write_signature(pwl_segments))
        Segment table writes (only with ``pwl``).
    pwl_underflows, pwl_overflows : Out(32)
        Saturation counters of the interpolated path (only with ``pwl``).
    pwl_clear : In(1)
        Zero those counters (only with ``pwl``).

    Raises
    ------
    TypeError, ValueError
        For impossible parameters.
    """

    def __init__(self, cfg=None, *, lanes: int | None = None, acc_width: int | None = None,
                 max_channels: int | None = None, pwl: bool = True,
                 pwl_segments: int | None = None, pwl_out_width: int = 8,
                 lut_write_bytes: int = 1):
        if cfg is not None:
            from sparsemac.hw.config import AcceleratorConfig

            AcceleratorConfig.require(cfg, "cfg")
            lanes = cfg.out_lanes if lanes is None else lanes
            acc_width = cfg.acc_width if acc_width is None else acc_width
            max_channels = cfg.rows if max_channels is None else max_channels
            pwl_segments = cfg.pwl_segments if pwl_segments is None else pwl_segments
        lanes = 4 if lanes is None else lanes
        acc_width = 32 if acc_width is None else acc_width
        max_channels = 64 if max_channels is None else max_channels
        pwl_segments = 32 if pwl_segments is None else pwl_segments
        if not isinstance(pwl, bool):
            raise TypeError(f"pwl must be a bool, not {pwl!r}")
        _check_int("lanes", lanes, 1, 64)
        _check_int("acc_width", acc_width, 8, 64)
        _check_int("max_channels", max_channels, 1, 1 << 16)
        self.lanes = lanes
        self.acc_width = acc_width
        self.max_channels = max_channels
        self.channel_width = max(1, (max_channels - 1).bit_length())
        self.pwl = pwl
        self._pwl = (PwlActivation(lanes=lanes, segments=pwl_segments, out_width=pwl_out_width)
                     if pwl else None)
        self.pwl_segments = pwl_segments if pwl else 0
        self.out_width = max(8, pwl_out_width) if pwl else 8
        self._requant = Requantizer(lanes=lanes, acc_width=acc_width,
                                    max_channels=max_channels, out_width=16 if pwl else 8)
        self._lut = ActivationLut(lanes=lanes, write_bytes=lut_write_bytes)
        self.lut_write_bytes = lut_write_bytes
        members = {
            "i": In(stream.Signature(requant_in_layout(lanes, acc_width, self.channel_width))),
            "o": Out(stream.Signature(requant_out_layout(lanes, self.out_width))),
            "params": In(requant_param_signature(self.channel_width)),
            "lut_wr": In(lut_write_signature(lut_write_bytes)),
            "lut_swap": In(1),
            "lut_swap_pending": Out(1),
            "lut_bank": Out(1),
        }
        if pwl:
            members.update({
                "mode": In(1),
                "pwl_wr": In(pwl_write_signature(pwl_segments)),
                "pwl_underflows": Out(32),
                "pwl_overflows": Out(32),
                "pwl_clear": In(1),
            })
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Cycles from an accepted input beat to its output beat (no back-pressure)."""
        return self._requant.latency + self._lut.latency

    @property
    def pwl_latency(self) -> int | None:
        """Latency in interpolated mode (``None`` without the PWL path)."""
        return self._requant.latency + self._pwl.latency if self.pwl else None

    def elaborate(self, platform):
        m = Module()
        m.submodules.requantizer = rq_ = self._requant
        m.submodules.activation_lut = lut = self._lut
        wiring.connect(m, wiring.flipped(self.i), rq_.i)
        wiring.connect(m, wiring.flipped(self.params), rq_.params)
        # skid buffers (no latency) between the requantizer and the activation stage and at
        # the output: each stage's enable (`~o.valid | o.ready`) then comes from a register,
        # not from a chain of ready signals through every stage and lane
        m.submodules.mid_skid = mid = SkidBuffer(rq_.o.payload.shape())
        m.submodules.out_skid = out = SkidBuffer(self.o.payload.shape())
        wiring.connect(m, rq_.o, mid.i)
        wiring.connect(m, out.o, wiring.flipped(self.o))
        rq = mid       # the requantizer's output, as the activation stage sees it
        o = out.i      # the pipeline's output, as the activation stage drives it
        if not self.pwl:
            wiring.connect(m, rq.o, lut.i)
            wiring.connect(m, lut.o, o)
        else:
            m.submodules.pwl_activation = pwl = self._pwl
            wiring.connect(m, wiring.flipped(self.pwl_wr), pwl.wr)
            m.d.comb += [
                self.pwl_underflows.eq(pwl.underflows),
                self.pwl_overflows.eq(pwl.overflows),
                pwl.clear_counters.eq(self.pwl_clear),
                # requantized int16 -> int8 for the table: sat8(sat16(r)) == sat8(r)
                lut.i.payload.last.eq(rq.o.payload.last),
                pwl.i.payload.eq(rq.o.payload),
                lut.i.valid.eq(rq.o.valid & ~self.mode),
                pwl.i.valid.eq(rq.o.valid & self.mode),
                rq.o.ready.eq(Mux(self.mode, pwl.i.ready, lut.i.ready)),
                o.valid.eq(Mux(self.mode, pwl.o.valid, lut.o.valid)),
                o.payload.last.eq(Mux(self.mode, pwl.o.payload.last, lut.o.payload.last)),
                lut.o.ready.eq(o.ready & ~self.mode),
                pwl.o.ready.eq(o.ready & self.mode),
            ]
            for j in range(self.lanes):
                y = rq.o.payload.data[j]
                m.d.comb += [
                    lut.i.payload.data[j].eq(Mux(y > 127, 127, Mux(y < -128, -128, y))),
                    o.payload.data[j].eq(Mux(self.mode, pwl.o.payload.data[j],
                                             lut.o.payload.data[j])),
                ]
        wiring.connect(m, wiring.flipped(self.lut_wr), lut.wr)
        m.d.comb += [
            lut.swap.eq(self.lut_swap),
            self.lut_swap_pending.eq(lut.swap_pending),
            self.lut_bank.eq(lut.bank),
        ]
        return m
