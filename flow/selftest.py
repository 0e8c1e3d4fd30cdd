"""Board self-test: the whole accelerator runs a small sparse layer from on-chip memory.

:class:`AccelSelfTest` = :class:`hw.accelerator.Accelerator` + :class:`hw.axi_sram.AxiSram`
(its data memory, preloaded with a memory image compiled at elaboration by
:mod:`sparsemac.host.compiler`) + a small controller FSM.  After reset the controller

1. writes the registers over AXI4-Lite (``MEM_BASE``, ``MEM_LIMIT``, ``DESC_BASE``,
   ``DESC_COUNT``, ``IRQ_STATUS`` (clear), ``IRQ_ENABLE`` = done | error, ``CONTROL.start``),
   checking every ``BRESP``;
2. waits for ``irq`` (at most ``timeout_cycles``);
3. reads ``STATUS`` and requires ``done`` and no ``error``;
4. takes over the SRAM's read channel (the accelerator is idle by then) and reads every bus
   word of the layer's output buffer, comparing it with a ROM built at elaboration from the
   compiler's golden output (whole words: the bytes of the word past the buffer must still
   hold their initial value, so a write beyond the buffer is caught too).

``ok`` (pass LED) or ``fail`` (fail LED) then lights with ``done``.  The layer is one matmul
with requantization in the most interesting sparse format the build has (bitmap, else nm, else
block, else dense), an activation table if the build has the LUT engine, sized to fit the tile
buffers (:func:`selftest_network`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["AccelSelfTest", "SelfTestImage", "selftest_network", "compile_selftest",
           "SELFTEST_BASE"]

#: Window base of the self-test image (the SRAM decodes the low address bits only, so the
#: base must be a multiple of the SRAM size: at most 64 KiB of SRAM).
SELFTEST_BASE = 0x1_0000
_FORMAT_PREFERENCE = ("bitmap", "nm", "block", "dense")


def selftest_network(cfg, *, fmt: str | None = None, m: int | None = None, k: int | None = None,
                     n: int | None = None, seed: int = 1) -> dict:
    """The self-test layer list (``sparsemac.host.network_from_dict`` form) for build ``cfg``.

    One matmul ``Y[M, N] = W[M, K] @ X[K, N]`` with requantization: ``fmt`` (default: the first
    of bitmap, nm, block, dense in ``cfg.formats``) at 50 % density (nm: 2:4), ReLU through the
    activation table when ``cfg.lut_enabled``.  Defaults: ``M = 2 * rows * tiles`` (every tile
    gets rows, two passes of the array), ``N = 2 * cols`` (two column groups), ``K = 32`` or
    less so that the ``ceil(N / cols) * K`` im2col entries fit ``act_buf_depth``.
    """
    fmt = fmt or next(f for f in _FORMAT_PREFERENCE if f in cfg.formats)
    m = m or 2 * cfg.rows * cfg.tiles
    n = n or 2 * cfg.cols
    k = k or min(32, cfg.act_buf_depth // -(-n // cfg.cols))
    layer = {"name": "selftest", "op": "matmul", "out_features": m, "format": fmt,
             "requant": True}
    if fmt == "nm":
        layer["nm"] = "2:4"
    elif fmt != "dense":
        layer["density"] = 0.5
    if cfg.lut_enabled:
        layer["activation"] = "relu"
    return {"name": "selftest", "seed": seed, "input": {"shape": [k, n]}, "layers": [layer]}


@dataclass(frozen=True)
class SelfTestImage:
    """What the self-test hardware is built from (all computed in Python at elaboration).

    Members
    -------
    base, limit : int
        ``MEM_BASE`` / ``MEM_LIMIT``: the SRAM spans ``[base, limit)``.
    sram_depth : int
        SRAM words (a power of two) of ``cfg.axi_data_width`` bits.
    image : bytes
        The SRAM contents (the compiled window, truncated to the used bytes).
    desc_base, desc_count : int
    out_addr, out_bytes : int
        Absolute address and size of the output buffer.
    expected_words : list of int
        The bus words covering the output buffer after a correct run.
    fmt, shape : str, tuple
        The layer's format and ``(M, K, N)``.
    writes : list of (str, int)
        The register writes, in order.
    """

    base: int
    limit: int
    sram_depth: int
    image: bytes
    desc_base: int
    desc_count: int
    out_addr: int
    out_bytes: int
    expected_words: list
    fmt: str
    shape: tuple
    writes: list


def compile_selftest(cfg, network: dict | None = None, *, corrupt: int | None = None
                     ) -> SelfTestImage:
    """Compile ``network`` (default :func:`selftest_network`) for ``cfg`` into a SRAM image.

    ``corrupt`` flips bit 0 of that byte of the expected output (a test of the checker).

    Raises
    ------
    sparsemac.host.NetworkError
        The layer does not compile for ``cfg`` or does not fit its tile buffers.
    ValueError
        The image needs more than 64 KiB of SRAM, or ``corrupt`` is outside the output.
    """
    from sparsemac.host import compile_network, network_from_dict
    from sparsemac.host.compiler import check_tile_buffers

    net = network_from_dict(network or selftest_network(cfg), source="selftest")
    cn = compile_network(net, cfg, base=SELFTEST_BASE)
    check_tile_buffers(cn)
    beat = cfg.axi_bytes
    used = max(r.end for r in cn.regions)
    words = max(1, -(-used // beat))
    depth = 1 << (words - 1).bit_length()
    if depth * beat > SELFTEST_BASE:
        raise ValueError(f"the self-test image must fit {SELFTEST_BASE} bytes of SRAM, not "
                         f"{depth * beat} ({used} bytes used)")
    image = bytes(cn.image[:used])
    layer = cn.layers[-1]
    out = layer.descriptor.out
    golden = bytearray(layer.expected.astype(np.int8 if layer.spec.requant else "<i4").tobytes())
    if corrupt is not None:
        if not 0 <= corrupt < len(golden):
            raise ValueError(f"corrupt must be a byte index between 0 and {len(golden) - 1}, "
                             f"not {corrupt!r}")
        golden[corrupt] ^= 1
    first, last = out // beat, -(-(out + len(golden)) // beat)
    final = bytearray(image) + bytes(last * beat - len(image))
    final[out:out + len(golden)] = golden
    expected = [int.from_bytes(final[i * beat:(i + 1) * beat], "little")
                for i in range(first, last)]
    limit = SELFTEST_BASE + depth * beat
    writes = [("MEM_BASE_LO", SELFTEST_BASE), ("MEM_LIMIT_LO", limit),
              ("DESC_BASE_LO", cn.desc_base), ("DESC_COUNT", cn.desc_count),
              ("IRQ_STATUS", 7), ("IRQ_ENABLE", 3), ("CONTROL", 1)]
    return SelfTestImage(base=SELFTEST_BASE, limit=limit, sram_depth=depth, image=image,
                         desc_base=cn.desc_base, desc_count=cn.desc_count,
                         out_addr=SELFTEST_BASE + out, out_bytes=len(golden),
                         expected_words=expected, fmt=layer.spec.fmt, shape=layer.spec.mkn,
                         writes=writes)


class AccelSelfTest(wiring.Component):
    """The accelerator on a preloaded on-chip memory, started and checked by a small FSM.

    Latency: ``done`` rises after the register writes (about 5 cycles each), the layer (a few
    thousand cycles for the default layers) and one read per output word (about 4 cycles
    each); ``done`` also rises after ``timeout_cycles`` without ``irq`` (then ``fail``).

    Parameters
    ----------
    cfg : hw.config.AcceleratorConfig
    network : dict, optional
        Layer list (``sparsemac.host.network_from_dict`` form); default :func:`selftest_network`.
    corrupt : int, optional
        Flip a bit of this expected output byte (the check must then fail).
    timeout_cycles : int
        Cycles to wait for ``irq`` before failing (>= 1).
    reset_buffer : callable, optional
        Passed to the `Accelerator` (its data plane's reset through a target's buffer).

    Members
    -------
    wrong_byte : In(1)
        Compare against a wrong expected byte (bit 0 of the first output byte flipped, like
        ``corrupt=0`` but without rebuilding): the test must then fail.  Tie to 0 normally.
    done : Out(1)
        The test has finished (stays high until reset).
    ok : Out(1)
        ``done``, every register write answered OKAY, STATUS done without error, every output
        word as expected.
    fail : Out(1)
        ``done`` and not ``ok``.
    status : Out(32)
        STATUS as read after the interrupt (0 if it was never read).
    mismatches : Out(16)
        Output words that differed from the golden ones.
    cycles : Out(32)
        Cycles from ``CONTROL.start`` to ``irq``.
    timed_out : Out(1)
        No ``irq`` within ``timeout_cycles``.
    """

    def __init__(self, cfg, *, network: dict | None = None, corrupt: int | None = None,
                 timeout_cycles: int = 1 << 20, reset_buffer=None):
        if isinstance(timeout_cycles, bool) or not isinstance(timeout_cycles, int) \
                or timeout_cycles < 1:
            raise ValueError(f"timeout_cycles must be a positive integer, not {timeout_cycles!r}")
        self.cfg = cfg
        self.timeout_cycles = timeout_cycles
        self.reset_buffer = reset_buffer
        self.test = compile_selftest(cfg, network, corrupt=corrupt)
        super().__init__({"wrong_byte": In(1), "done": Out(1), "ok": Out(1), "fail": Out(1),
                          "status": Out(32), "mismatches": Out(16), "cycles": Out(32),
                          "timed_out": Out(1)})

    def describe(self) -> dict:
        """The self-test for a board report."""
        t = self.test
        mm, kk, nn = t.shape
        return {"core": "accelerator", "format": t.fmt, "mkn": [mm, kk, nn],
                "sram_bytes": t.sram_depth * self.cfg.axi_bytes, "image_bytes": len(t.image),
                "output_bytes": t.out_bytes,
                "summary": f"whole accelerator: {t.fmt} matmul {mm}x{kk}x{nn} with requant "
                           f"from {t.sram_depth * self.cfg.axi_bytes} bytes of on-chip SRAM, "
                           f"output compared word by word"}

    def elaborate(self, platform):
        from sparsemac.hw.mem.axi import connect_axi4_with_read_tap
        from sparsemac.hw.mem.axi_sram import AxiSram
        from sparsemac.hw.top.accelerator import Accelerator
        from sparsemac.hw.top.regmap import register

        m = Module()
        cfg, t = self.cfg, self.test
        beat = cfg.axi_bytes
        m.submodules.accel = acc = Accelerator(cfg, reset_buffer=self.reset_buffer)
        m.submodules.sram = sram = AxiSram.for_config(cfg, depth=t.sram_depth, init=t.image)
        m.submodules.rom = rom = Memory(shape=cfg.axi_data_width,
                                        depth=len(t.expected_words), init=t.expected_words)
        rom_rd = rom.read_port(domain="sync")
        a, s = acc.m_axi, sram.s_axi

        # -- the SRAM: write channel always the accelerator's, read channel switched by `check`
        check = Signal()
        ctl_arvalid, ctl_araddr, ctl_rready = Signal(), Signal(cfg.axi_addr_width), Signal()
        connect_axi4_with_read_tap(m, a, s, tap=check, araddr=ctl_araddr, arvalid=ctl_arvalid,
                                   rready=ctl_rready)

        # -- register writes: a constant table -------------------------------------------------
        offsets = Array(Const(register(cfg, name).offset, 12) for name, _ in t.writes)
        values = Array(Const(v, 32) for _, v in t.writes)
        lite = acc.s_axil
        idx = Signal(range(len(t.writes)))
        aw_done, w_done = Signal(), Signal()
        m.d.comb += [lite.awaddr.eq(offsets[idx]), lite.wdata.eq(values[idx]),
                     lite.wstrb.eq(0xF), lite.araddr.eq(register(cfg, "STATUS").offset)]

        n_words = len(t.expected_words)
        word = Signal(range(n_words + 1))
        m.d.comb += [rom_rd.addr.eq(word), ctl_araddr.eq(t.out_addr + word * beat)]
        wait = Signal(range(self.timeout_cycles + 1))
        errors = Signal(16)
        m.d.comb += self.mismatches.eq(errors)
        # the compare one cycle after the read: the SRAM's and the ROM's read data (block RAM
        # outputs) go into registers first, so the memories' clock-to-out and the 64-bit
        # compare into the error counter's enables are not one path
        got = Signal(cfg.axi_data_width, name="check_got")
        want = Signal(cfg.axi_data_width, name="check_want")
        cmp_valid = Signal(name="check_cmp_valid")
        m.d.sync += cmp_valid.eq(0)
        with m.If(cmp_valid & (got != want)):
            m.d.sync += errors.eq(errors + 1)

        with m.FSM(name="selftest"):
            with m.State("WRITE"):
                m.d.comb += [lite.awvalid.eq(~aw_done), lite.wvalid.eq(~w_done)]
                aw_now = aw_done | lite.awready
                w_now = w_done | lite.wready
                m.d.sync += [aw_done.eq(aw_now), w_done.eq(w_now)]
                with m.If(aw_now & w_now):
                    m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                    m.next = "WRITE_RESP"
            with m.State("WRITE_RESP"):
                m.d.comb += lite.bready.eq(1)
                with m.If(lite.bvalid):
                    with m.If(lite.bresp != 0):
                        m.next = "FAIL"
                    with m.Elif(idx == len(t.writes) - 1):
                        m.next = "WAIT_IRQ"
                    with m.Else():
                        m.d.sync += idx.eq(idx + 1)
                        m.next = "WRITE"
            with m.State("WAIT_IRQ"):
                m.d.sync += [wait.eq(wait + 1), self.cycles.eq(self.cycles + 1)]
                with m.If(acc.irq):
                    m.next = "READ_STATUS"
                with m.Elif(wait == self.timeout_cycles):
                    m.d.sync += self.timed_out.eq(1)
                    m.next = "FAIL"
            with m.State("READ_STATUS"):
                m.d.comb += lite.arvalid.eq(1)
                with m.If(lite.arready):
                    m.next = "STATUS_DATA"
            with m.State("STATUS_DATA"):
                m.d.comb += lite.rready.eq(1)
                with m.If(lite.rvalid):
                    m.d.sync += self.status.eq(lite.rdata)
                    # STATUS: bit 1 done, bit 2 error
                    with m.If((lite.rresp == 0) & lite.rdata[1] & ~lite.rdata[2]):
                        m.next = "CHECK_ADDR"
                    with m.Else():
                        m.next = "FAIL"
            with m.State("CHECK_ADDR"):
                m.d.comb += [check.eq(1), ctl_arvalid.eq(1)]
                with m.If(s.arready):
                    m.next = "CHECK_DATA"
            with m.State("CHECK_DATA"):
                m.d.comb += [check.eq(1), ctl_rready.eq(1)]
                with m.If(s.rvalid):
                    m.d.sync += [got.eq(s.rdata), cmp_valid.eq(1),
                                 want.eq(rom_rd.data ^ (self.wrong_byte & (word == 0)))]
                    m.d.sync += word.eq(word + 1)
                    with m.If(word == n_words - 1):
                        m.next = "CHECKED"
                    with m.Else():
                        m.next = "CHECK_ADDR"
            with m.State("CHECKED"):
                m.d.comb += check.eq(1)
                with m.If(~cmp_valid):              # the last word's compare is counted
                    m.d.sync += [self.done.eq(1), self.ok.eq(errors == 0),
                                 self.fail.eq(errors != 0)]
            with m.State("FAIL"):
                m.d.sync += [self.done.eq(1), self.fail.eq(1)]
        return m
