"""Descriptor sequencer of the memory hub: table -> layers -> tiles (docs/accelerator.md)."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from sparsemac.golden.descriptors import DESC_BYTES, ErrorCode, Flags, Opcode
from sparsemac.golden.formats import HEADER_BYTES
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.hub.desc_checker import DescChecker, descriptor_layout
from sparsemac.hw.hub.desc_prefetch import DescPrefetch
from sparsemac.hw.hub.header_prefetch import HeaderPrefetch
from sparsemac.hw.hub.identity_table import IdentityTable
from sparsemac.hw.hub.layer_setup import LayerSetup
from sparsemac.hw.mem.axi import dma_cmd_layout, dma_read_data_layout, dma_status_layout
from sparsemac.hw.ring.layouts import FlitType, flit_layout
from sparsemac.hw.tile.header_checker import HeaderChecker, header_layout
from sparsemac.hw.tile.tile import DIM_WIDTH
from sparsemac.hw.tile.tile_node import QUANT_BYTES, layer_layout

__all__ = ["PLANE_RESET_DELAY", "Sequencer"]

#: cycles by which the data plane may see ``Sequencer.plane_reset`` late (the accelerator's
#: registered copies); the sequencer's ABORT_HOLD and SETTLE states cover exactly this
PLANE_RESET_DELAY = 1

_P_DESC, _P_WHDR, _P_WBODY, _P_LUT, _P_QUANT, _P_ACTS = range(6)


class Sequencer(wiring.Component):
    """Runs ``DESC_COUNT`` descriptors: fetch, check, stream every buffer to the tiles, wait.

    Per layer (docs/accelerator.md): fetch the 64-byte descriptor (DMA), check it
    (`DescChecker`: its code, then ``act_fits`` -> ``BAD_SHAPE``), then for each tile ``t`` read
    its weight image header into a register, check it (`HeaderChecker`: golden's header rules
    and the hardware limits; here also ``format``, parameters and ``cols`` equal the
    descriptor's, the rows fit ``M``, ``total`` fits the weight buffer and the window: one cycle
    plus ``HeaderChecker.latency``), start the node (``node_start``) and send it the header
    (unicast to node ``t + 1``; tile ``t + 1``'s header is read while tile ``t``'s is checked
    and sent, `HeaderPrefetch`, when its 32 bytes lie inside the window); then the activation
    table (``CTRL``, multicast; an identity
    table, `IdentityTable`, is generated when ``REQUANT`` is set without ``LUT``), the requant
    records (``CTRL``, multicast), the activations (``ACTS``, multicast, read once) and finally
    the image bodies tile after tile (so tile ``t`` computes while later tiles load); with the
    descriptor's ``LATE_TABLES`` flag the table and the records follow the bodies instead
    (read while the tiles compute; each node's output pipeline waits for its records). Then wait
    until the `ResultWriter` has seen one end marker per started node and every started node's
    `ImageChecker` has passed its image. While a layer waits, the next descriptor is prefetched:
    read into the descriptor register and checked by the `DescChecker` (the running layer no
    longer needs either), so the next layer starts at its CHECK step; a failing prefetch read is
    reported only once the running layer has ended (with the next descriptor's index, as if it
    had been fetched then). From the first step after the last header on, a node whose checker
    reports an inconsistent image body (``node_image_code``, codes 7..10) stops the layer at
    once with that code and ``error_addr`` = the image's address; when several do, the first
    image in memory order is reported (a node is only reported once every earlier image passed).
    Any error (checks, DMA status, result writes, an image body, a tile's error flag, the
    watchdog) and ``soft_reset`` abort both DMAs (two cycles), hold ``plane_reset`` (ring,
    nodes, result writer) until the DMAs are drained, wait ``PLANE_RESET_DELAY`` cycles and go
    idle; errors latch ``error_code``, ``error_addr``, ``error_desc`` and pulse ``irq_error``.
    ``plane_reset`` may reach the plane up to ``PLANE_RESET_DELAY`` cycles late (the
    accelerator registers one copy per block, so no combinational path fans out to every
    flip-flop of the plane).

    Members
    -------
    start, soft_reset : In(1)   (CONTROL pulses)
    desc_base, mem_base, mem_limit : In(addr_width); desc_count : In(32)
    busy, done, error : Out(1); error_code : Out(8); error_addr : Out(addr_width)
    desc_index : Out(32)
    irq_done, irq_error, irq_desc : Out(1)  (one-cycle pulses)
    rcmd : Out(stream); rdata, rstatus : In(stream)  -- the DmaReader
    rd_abort, wr_abort : Out(1); rd_busy, wr_busy : In(1)
    inject : Out(stream(flit))  -- the hub's ring port
    layer : Out(layer_layout()); node_start : Out(tiles); node_rows, node_row_base : Out(16)
    node_cg0, node_cgs : Out(16)  (the started node's column groups; 0, 0 = all of them)
    node_done, node_error, node_image_done : In(tiles); node_image_code : In(8 x tiles)
    out_base : Out(addr_width); row_bytes, m_total : Out(32); lg_esize : Out(2); rw_clear : Out(1)
    rw_markers : In(8); rw_error_code : In(8); rw_error_addr : In(addr_width); rw_busy : In(1)
    plane_reset : Out(1); progress : In(1)
    stall_read, stall_desc : Out(1)
    """

    def __init__(self, cfg: AcceleratorConfig, *, tag_width: int = 4):
        self.cfg = AcceleratorConfig.require(cfg, "cfg")
        aw, T = cfg.axi_addr_width, cfg.tiles
        self.checker = DescChecker(cfg)
        self.header_checker = HeaderChecker(cfg)
        self.identity_table = IdentityTable(word_bytes=cfg.axi_bytes)
        self.header_prefetch = HeaderPrefetch(cfg, tag_width=tag_width, tag=_P_WHDR)
        super().__init__({
            "start": In(1), "soft_reset": In(1),
            "desc_base": In(aw), "desc_count": In(32), "mem_base": In(aw), "mem_limit": In(aw),
            "busy": Out(1), "done": Out(1), "error": Out(1), "error_code": Out(8),
            "error_addr": Out(aw), "desc_index": Out(32),
            "irq_done": Out(1), "irq_error": Out(1), "irq_desc": Out(1),
            "rcmd": Out(stream.Signature(dma_cmd_layout(aw, tag_width))),
            "rdata": In(stream.Signature(dma_read_data_layout(cfg.axi_data_width, tag_width))),
            "rstatus": In(stream.Signature(dma_status_layout(aw, tag_width))),
            "rd_abort": Out(1), "wr_abort": Out(1), "rd_busy": In(1), "wr_busy": In(1),
            "inject": Out(stream.Signature(flit_layout(T + 1, cfg.ring_payload_width))),
            "layer": Out(layer_layout()), "node_start": Out(T),
            "node_rows": Out(DIM_WIDTH), "node_row_base": Out(DIM_WIDTH),
            "node_cg0": Out(DIM_WIDTH), "node_cgs": Out(DIM_WIDTH),
            "node_done": In(T), "node_error": In(T), "node_image_done": In(T),
            "node_image_code": In(data.ArrayLayout(8, T)),
            "out_base": Out(aw), "row_bytes": Out(32), "m_total": Out(32), "rw_clear": Out(1),
            "lg_esize": Out(2),
            "rw_markers": In(8), "rw_error_code": In(8), "rw_error_addr": In(aw),
            "rw_busy": In(1), "plane_reset": Out(1), "progress": In(1),
            "stall_read": Out(1), "stall_desc": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        aw, T, W = cfg.axi_addr_width, cfg.tiles, cfg.axi_data_width
        beat = cfg.axi_bytes
        lg_beat = (beat - 1).bit_length()
        m.submodules.checker = chk = self.checker
        m.submodules.header_checker = hc = self.header_checker
        m.submodules.identity_table = ident = self.identity_table
        m.submodules.prefetch = pf = DescPrefetch(addr_width=aw)
        m.submodules.header_prefetch = hpf = self.header_prefetch
        m.submodules.layer_setup = setup = LayerSetup(cfg)
        E = ErrorCode

        desc = Signal(descriptor_layout())
        m.d.comb += [setup.desc.eq(desc), setup.mem_base.eq(self.mem_base),
                     setup.oh.eq(chk.oh), setup.ow.eq(chk.ow), setup.act_bytes.eq(chk.act_bytes),
                     setup.pool.eq(chk.pool), self.layer.eq(setup.layer),
                     self.out_base.eq(setup.out_base), self.row_bytes.eq(setup.row_bytes),
                     self.m_total.eq(setup.m_total), self.lg_esize.eq(setup.lg_esize)]
        hdr = Signal(header_layout())
        idx = Signal(32)
        phase = Signal(3)
        wi = Signal(8)
        rd_addr, rd_len = Signal(aw + 1), Signal(aw + 1)
        f_type, f_dest, f_mcast = Signal(FlitType), Signal(len(self.inject.payload.dest)), Signal()
        t = Signal(range(T + 1))
        tmask = Signal(T)
        img = Signal(aw + 2)
        rows_sum = Signal(33)
        # column split (descriptor col_split, docs/spec.md section 8.1): every tile gets the
        # one image (all rows) and `chunk` column groups from `cg_base`
        split = Signal()
        chunk, cg_base = Signal(DIM_WIDTH + 1), Signal(DIM_WIDTH + 2)
        # the column groups left (set in CHECK, one share less per started tile) and what they
        # decide, registered a cycle later: no subtract and compare in front of the FSM
        cg_left, cg_share = Signal(DIM_WIDTH + 2), Signal(DIM_WIDTH + 2)
        cg_last = Signal()              # the tile that takes `cg_share` takes the last groups
        m.d.sync += [cg_last.eq(cg_left <= chunk),
                     cg_share.eq(Mux(cg_left < chunk, cg_left, chunk))]
        soft = Signal()
        wd = Signal(range(cfg.watchdog_cycles + 1))
        body_addr = Array(Signal(aw + 2, name=f"body_addr{i}") for i in range(T))
        body_len = Array(Signal(32, name=f"body_len{i}") for i in range(T))
        bt = Signal(range(T + 1))
        desc_addr = Signal(aw + 1)
        in_wait = Signal()
        # LATE_TABLES: the table and records after the bodies (read while the tiles compute;
        # a node's output pipeline waits for its records), else before the activations
        late = Signal()
        m.d.comb += late.eq(desc.flags[Flags.LATE_TABLES.bit_length() - 1])

        def start_node():
            """Start node ``t`` on its image's rows (a column split: on its column groups)."""
            for i in range(T):
                with m.If(t == i):
                    m.d.comb += self.node_start[i].eq(1)
            m.d.comb += [self.node_rows.eq(hb.rows), self.node_row_base.eq(rows_sum)]
            with m.If(split):
                m.d.comb += [self.node_cg0.eq(cg_base), self.node_cgs.eq(cg_share)]

        def split_next():
            """A column split, tile ``t`` started: its body is the one image's; the header to
            every started tile after the last share (HSEND), else the next tile."""
            m.d.sync += [t.eq(t + 1), tmask.eq(tmask | (1 << t)), cg_base.eq(cg_base + chunk),
                         cg_left.eq(cg_left - chunk),
                         body_addr[t].eq(img + 32), body_len[t].eq(hb.total - 32)]
            with m.If(cg_last):
                m.d.sync += [f_mcast.eq(1), wi.eq(0)]
                m.next = "HSEND"
            with m.Elif(t + 1 == T):
                fail(E.BAD_SHAPE, A_IMG)
            with m.Else():
                m.next = "S_GAP"

        def after_headers():
            with m.If(late):
                m.next = "ACTS"
            with m.Else():
                m.next = "LUT"
        # descriptor prefetch (while a layer waits, `DescPrefetch`), and the running layer's
        # IRQ flag (the descriptor register then holds the next one)
        pf_window = Signal()                  # the main FSM lets the prefetch use the read DMA
        layer_irq = Signal()
        m.d.comb += [chk.desc.eq(desc), chk.window_bytes.eq(self.mem_limit - self.mem_base),
                     self.desc_index.eq(idx)]
        # addresses and lengths the reads use, and the table-end decisions: registered every
        # cycle from registers that hold still for at least two cycles before they are read
        # (`idx` changes at `start` and in LAYER_DONE, two cycles before FETCH / CHECK; the
        # descriptor is captured before DCHECK, long before LUT, QUANT and ACTS), so no adder
        # sits in front of the read command or the FSM
        next_desc_addr, lut_addr, quant_addr, acts_addr = (
            Signal(aw + 1, name=n) for n in ("next_desc_addr", "lut_addr", "quant_addr",
                                             "acts_addr"))
        qlen = Signal(aw + 1)
        is_last, has_next = Signal(), Signal()
        m.d.sync += [desc_addr.eq(self.desc_base + (idx << 6)),
                     next_desc_addr.eq(desc_addr + DESC_BYTES),
                     is_last.eq(idx + 1 == self.desc_count),
                     has_next.eq(idx + 1 < self.desc_count),
                     lut_addr.eq(self.mem_base + desc.lut),
                     quant_addr.eq(self.mem_base + desc.quant),
                     acts_addr.eq(self.mem_base + desc.acts),
                     qlen.eq(((desc.m * QUANT_BYTES + beat - 1) >> lg_beat) << lg_beat)]

        m.d.comb += hc.hdr.eq(hdr)
        # the header's rules against the descriptor, the buffers and the window (the
        # intrinsic ones are the HeaderChecker's)
        h_format, h_param, h_shape, h_size, h_window, h_last = (
            Signal(name=f"h_{n}") for n in ("format", "param", "shape", "size", "window",
                                            "last"))
        # header prefetch (`HeaderPrefetch`): the next tile's image address (HSTART), whether
        # its header may be read (HCHECK), the prefetch's window (HCHECK .. H_NEXT)
        n_img, n_ok, h_win = Signal(aw + 2, name="n_img"), Signal(name="n_ok"), Signal()
        # ... and the next layer's first header, read once its descriptor is prefetched and
        # checked (WAIT, LAYER_DONE, NEXT), taken in W_HEADER (`f_img`: its address, `f_ok`:
        # a matmul / conv2d that passed the DescChecker: the header lies inside the window)
        f_img, f_ok, f_win = Signal(aw + 2, name="f_img"), Signal(name="f_ok"), Signal()
        t_count, t_align, t_window, t_end, w_window = (
            Signal(name=n) for n in ("t_count", "t_align", "t_window", "t_end", "w_window"))

        # error_addr: a failing state records which address to report (`err_src`, one of the
        # A_* sources) and ABORT copies it from a register (transient sources are registered
        # every cycle), so no address mux sits behind the FSM's error decisions
        A_ZERO, A_TABLE, A_RSTATUS, A_DESC, A_IMG, A_BODY, A_RW, A_PF, A_HPF = range(9)
        err_src = Signal(range(9))

        # `DescChecker.start` from a register: `desc_rd` is high while a descriptor read's status
        # is awaited (RD_STREAM with phase DESC, or the prefetch's PF_STREAM); `aborting`: the
        # FSM goes to ABORT this cycle (which ends either)
        desc_rd, aborting = Signal(), Signal()
        m.d.comb += chk.start.eq(desc_rd & self.rstatus.valid
                                 & (self.rstatus.payload.code == 0))

        def fail(code, src):
            m.d.sync += [self.error_code.eq(code), err_src.eq(src), soft.eq(0), desc_rd.eq(0)]
            m.d.comb += aborting.eq(1)
            m.next = "ABORT"

        def capture(reg, nbytes):
            """The read word ``wi`` into register ``reg`` (``nbytes`` long, a word per beat)."""
            rd = self.rdata
            for i in range(nbytes // beat):
                with m.If(rd.valid & (wi == i)):
                    m.d.sync += reg.as_value()[i * W:(i + 1) * W].eq(rd.payload.data)

        def read(ph, addr, length, nxt_type=None, unicast=None):
            m.d.sync += [phase.eq(ph), rd_addr.eq(addr), rd_len.eq(length), wi.eq(0)]
            if nxt_type is not None:
                m.d.sync += f_type.eq(nxt_type)
            if unicast is not None:
                m.d.sync += [f_dest.eq(unicast), f_mcast.eq(0)]
            else:
                m.d.sync += f_mcast.eq(1)
            m.next = "RD_ISSUE"

        def take_header(when_idle, idle_ok=1):
            """A header from `HeaderPrefetch` (W_HEADER, H_NEXT): ready -> into ``hdr``, sent
            to tile ``t`` after its checks (HSTART); its read failed -> that error; no prefetch
            (and ``idle_ok``) -> ``when_idle()``; else it is on its way (wait)."""
            with m.If(hpf.ready):
                m.d.comb += hpf.take.eq(1)
                m.d.sync += [hdr.eq(hpf.hdr), f_type.eq(FlitType.DATA), f_dest.eq(t + 1),
                             f_mcast.eq(0), phase.eq(_P_WHDR)]
                m.next = "HSTART"
            with m.Elif(hpf.failed):
                m.d.comb += hpf.take.eq(1)
                fail(hpf.code, A_HPF)
            with m.Elif(hpf.idle & idle_ok):
                when_idle()

        # hub ring port: DMA words or the generated identity table
        # the flit is one assignment (a constant-only partial assignment becomes an
        # `always @*` block that Verilator treats as undriven)
        inj_data = Signal(cfg.ring_payload_width)
        ip = self.inject.payload
        # a pool sent plane by plane (`layer.pool_uni`, golden.net_pool.pool_unicast): each
        # ACTS word goes only to the tile of its channel, tile `u_pt` for `plane_last + 1`
        # words, then the next tile (channel c to tile c mod T); `u_left` counts down
        u_pt = Signal(range(max(T, 2)), name="uni_tile")     # (one bit at least: lint)
        u_left = Signal(len(setup.plane_last), name="uni_left")
        uni = Signal(name="uni_acts")
        i_dest = Signal.like(f_dest, name="inj_dest")
        m.d.comb += [uni.eq(self.layer.pool_uni & (phase == _P_ACTS)),
                     i_dest.eq(Mux(uni, u_pt + 1, f_dest))]
        m.d.comb += ip.as_value().eq(Cat(inj_data, f_type, Const(0, len(ip.src)), i_dest,
                                         f_mcast & ~uni, tmask << 1))
        # the activation table the tiles hold (docs/accelerator.md "Tables kept"): the last
        # one sent since the table's start, if it went to every tile (`held`: a LUT read from
        # `held_addr`, or the identity table), forgotten at every start and abort; a layer
        # whose table is that one sends none (`keep`, decided in CHECK: `LayerSetup` gives it
        # no table words, the nodes swap nothing); `same` is the address compare, registered
        # every cycle (the descriptor register holds still through the checks before CHECK)
        held, held_ident, same, keep = (Signal(name=f"table_{n}")
                                        for n in ("held", "held_ident", "same", "keep"))
        held_addr = Signal(32, name="table_held_addr")
        m.d.sync += same.eq(desc.lut == held_addr)
        keep_now = held & desc.flags[0] & Mux(desc.flags[1], ~held_ident & same, held_ident)
        # a table sent to every tile is held by all of them (a tile not started gets none)
        all_started = Signal(name="table_to_all")
        m.d.comb += all_started.eq(tmask == (1 << T) - 1)
        m.d.comb += setup.table_kept.eq(keep_now)
        m.d.comb += self.rcmd.payload.tag.eq(phase)
        lay = self.layer
        hb = hdr
        # CONTROL.soft_reset is a one-cycle pulse: hold it until a state acts on it (ABORT),
        # so a pulse that lands in a state without its own check (HSTART, HCHECK) is never
        # lost
        soft_pending = Signal()
        soft_rq = Signal()
        m.d.comb += soft_rq.eq(self.soft_reset | soft_pending)
        with m.If(self.soft_reset):
            m.d.sync += soft_pending.eq(1)

        def abort_on_soft_reset():
            """In any working state: a soft reset clears the status and aborts (ABORT)."""
            with m.If(soft_rq):
                m.d.comb += aborting.eq(1)
                m.d.sync += [soft.eq(1), self.error_code.eq(0), err_src.eq(A_ZERO), desc_rd.eq(0),
                             self.done.eq(0), self.error.eq(0)]
                m.next = "ABORT"
        # weight image bodies (ImageChecker in every node): the first started node, in image
        # order, whose checker reported a code; or all of them passed (`images_ok`)
        img_fail, img_code, img_addr = Signal(), Signal(8), Signal(aw + 2)
        images_ok = Const(1)
        for i in range(T):
            d, c = self.node_image_done[i], self.node_image_code[i]
            with m.If(images_ok & tmask[i] & d & (c != 0)):
                m.d.comb += [img_fail.eq(1), img_code.eq(c), img_addr.eq(body_addr[i] - 32)]
            images_ok = images_ok & (~tmask[i] | (d & (c == 0)))
        all_images_ok = Signal()
        m.d.comb += all_images_ok.eq(images_ok)
        rs_addr, rw_addr, body_err_addr = Signal(aw), Signal(aw), Signal(aw + 2)
        m.d.sync += [rs_addr.eq(self.rstatus.payload.addr), rw_addr.eq(self.rw_error_addr),
                     body_err_addr.eq(img_addr)]
        err_addrs = {A_ZERO: 0, A_TABLE: self.desc_base, A_RSTATUS: rs_addr, A_DESC: desc_addr,
                     A_IMG: img, A_BODY: body_err_addr, A_RW: rw_addr, A_PF: pf.addr,
                     A_HPF: hpf.err_addr}

        def abort_on_image_error(when=1):
            """After the last header: an inconsistent image body stops the layer."""
            with m.If(img_fail & when):
                fail(img_code, A_BODY)

        # the table's rules (TABLE, T_DECIDE), registered every cycle from the table
        # registers (which hold still from `start` on): the end of the table in two steps
        # (its length, then the compare), so no carry chain follows another
        table_end = Signal(aw + 40)
        m.d.sync += [table_end.eq(self.desc_base + self.desc_count * DESC_BYTES),
                     t_count.eq(self.desc_count == 0),
                     t_align.eq(self.desc_base[:lg_beat] != 0),
                     t_window.eq((self.desc_base < self.mem_base)
                                 | (self.desc_base >= self.mem_limit)),
                     t_end.eq(table_end > self.mem_limit)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.done.eq(0), self.error.eq(0), self.error_code.eq(0),
                                 self.error_addr.eq(0), idx.eq(0), held.eq(0)]
                    m.next = "TABLE"
                abort_on_soft_reset()
            with m.State("TABLE"):
                # the table's rules, one registered bit each (below, from the inputs of the
                # cycle before), then golden's order (T_DECIDE)
                m.d.comb += self.busy.eq(1)
                m.next = "T_DECIDE"
                abort_on_soft_reset()
            with m.State("T_DECIDE"):
                m.d.comb += self.busy.eq(1)
                with m.If(t_count):
                    fail(E.DESC_COUNT, A_TABLE)
                with m.Elif(t_align):
                    fail(E.MISALIGNED, A_TABLE)
                with m.Elif(t_window):
                    fail(E.OUT_OF_WINDOW, A_TABLE)
                with m.Elif(t_end):
                    fail(E.DESC_COUNT, A_TABLE)
                with m.Else():
                    m.next = "FETCH"
                abort_on_soft_reset()
            with m.State("FETCH"):
                m.d.comb += self.busy.eq(1)
                read(_P_DESC, desc_addr, DESC_BYTES)
                abort_on_soft_reset()
            with m.State("RD_ISSUE"):
                m.d.comb += [self.busy.eq(1), self.rcmd.valid.eq(1),
                             self.rcmd.payload.addr.eq(rd_addr),
                             self.rcmd.payload.length.eq(rd_len)]
                with m.If(self.rcmd.ready):
                    m.d.sync += desc_rd.eq(phase == _P_DESC)
                    m.next = "RD_STREAM"
                abort_on_image_error(phase >= _P_WBODY)
                abort_on_soft_reset()
            with m.State("RD_STREAM"):
                m.d.comb += self.busy.eq(1)
                rd = self.rdata
                with m.If(phase == _P_DESC):
                    m.d.comb += rd.ready.eq(1)
                    capture(desc, DESC_BYTES)
                with m.Elif(phase == _P_WHDR):
                    # captured only: sent to the tile from `hdr` once its node is started
                    m.d.comb += rd.ready.eq(1)
                    capture(hdr, 32)
                with m.Else():
                    m.d.comb += [self.inject.valid.eq(rd.valid), rd.ready.eq(self.inject.ready),
                                 inj_data.eq(rd.payload.data),
                                 self.stall_read.eq(~rd.valid)]
                with m.If(rd.valid & rd.ready):
                    m.d.sync += wi.eq(wi + 1)
                    with m.If(uni):
                        with m.If(u_left == 0):
                            m.d.sync += [u_left.eq(setup.plane_last),
                                         u_pt.eq(Mux(u_pt == T - 1, 0, u_pt + 1))]
                        with m.Else():
                            m.d.sync += u_left.eq(u_left - 1)
                m.d.comb += [self.rstatus.ready.eq(1), self.stall_desc.eq(phase == _P_DESC)]
                with m.If(self.rstatus.valid):
                    m.d.sync += desc_rd.eq(0)
                    with m.If(self.rstatus.payload.code != 0):
                        fail(self.rstatus.payload.code, A_RSTATUS)
                    with m.Elif(phase == _P_DESC):
                        m.next = "DCHECK"
                    with m.Elif(phase == _P_WHDR):
                        m.next = "HSTART"
                    with m.Elif(phase == _P_WBODY):
                        m.d.sync += bt.eq(Mux(split, t, bt + 1))
                        m.next = "BODIES"
                    with m.Elif(phase == _P_LUT):
                        m.next = "QUANT"
                    with m.Elif(phase == _P_QUANT):
                        with m.If(late):
                            m.next = "WAIT"
                        with m.Else():
                            m.next = "ACTS"
                    with m.Else():
                        m.d.sync += bt.eq(0)
                        m.next = "BODIES"
                abort_on_image_error(phase >= _P_WBODY)
                abort_on_soft_reset()
            with m.State("DCHECK"):
                # the DescChecker runs its serial arithmetic (about 60-140 cycles)
                m.d.comb += self.busy.eq(1)
                with m.If(chk.valid):
                    m.next = "CHECK"
                abort_on_soft_reset()
            with m.State("CHECK"):
                m.d.comb += [self.busy.eq(1), self.rw_clear.eq(1), f_win.eq(1)]
                # the running layer's registers (`LayerSetup`) from the checked descriptor
                m.d.comb += setup.load.eq(1)
                m.d.sync += [
                    t.eq(0), tmask.eq(0), rows_sum.eq(0), img.eq(self.mem_base + desc.weights),
                    split.eq(chk.cg_chunk != 0), chunk.eq(chk.cg_chunk), cg_left.eq(chk.ncg),
                    cg_base.eq(0),
                    layer_irq.eq(desc.flags[3]), keep.eq(keep_now),
                ]
                with m.If(chk.code != 0):
                    fail(chk.code, A_DESC)
                with m.Elif(~chk.act_fits):     # hardware limit: before anything is sent
                    fail(E.BAD_SHAPE, A_DESC)
                with m.Elif(chk.pool if cfg.pool_enabled else 0):
                    m.next = "P_SHARE"
                with m.Else():
                    m.next = "W_START"
                abort_on_soft_reset()
            with m.State("W_START"):
                m.d.comb += [self.busy.eq(1), f_win.eq(1)]
                m.d.sync += w_window.eq(img + 32 > self.mem_limit)
                m.next = "W_HEADER"
                abort_on_soft_reset()
            with m.State("W_HEADER"):
                # tile 0's header may have been prefetched during the previous layer's wait
                # (take it, or wait for it); else read it
                m.d.comb += [self.busy.eq(1), f_win.eq(1)]
                with m.If(w_window):
                    fail(E.OUT_OF_WINDOW, A_IMG)
                with m.Else():
                    take_header(lambda: read(_P_WHDR, img, 32, FlitType.DATA, unicast=t + 1))
                abort_on_soft_reset()
            # header checks in 1 + hc.latency cycles: HSTART starts the HeaderChecker (the
            # intrinsic rules, golden's codes 1..6) and registers one bit per rule against the
            # descriptor and the window; HCHECK waits for the checker, then applies golden's
            # priority; a soft reset waits in `soft_pending`
            with m.State("HSTART"):
                m.d.comb += [self.busy.eq(1), hc.start.eq(1)]
                m.d.sync += [
                    h_format.eq(hb.format != desc.format),
                    h_param.eq((hb.param_a != desc.param_a) | (hb.param_b != desc.param_b)),
                    h_shape.eq((hb.cols != desc.k) | (rows_sum + hb.rows > desc.m)
                               | (split & (hb.rows != desc.m))),
                    h_size.eq(hb.total > cfg.weight_buf_depth * beat),
                    h_window.eq(img + hb.total > self.mem_limit),
                    h_last.eq(rows_sum + hb.rows == desc.m),
                    n_img.eq(img + hb.total), n_ok.eq(0),
                ]
                m.next = "HCHECK"
            with m.State("HCHECK"):
                m.d.comb += [self.busy.eq(1), h_win.eq(1)]
                # the next tile's header may be read now (from the second HCHECK cycle on):
                # there is a next tile of this row split and its 32 bytes are in the window
                m.d.sync += n_ok.eq(~h_last & ~split & (t + 1 < T)
                                    & (n_img + HEADER_BYTES <= self.mem_limit))
                code = hc.code
                with m.If(hc.done):     # hc.latency cycles after HSTART
                    with m.If(code == E.BAD_MAGIC):
                        fail(E.BAD_MAGIC, A_IMG)
                    with m.Elif((code == E.BAD_FORMAT) | h_format):
                        fail(E.BAD_FORMAT, A_IMG)
                    with m.Elif((code == E.BAD_PARAM) | h_param):
                        fail(E.BAD_PARAM, A_IMG)
                    with m.Elif((code == E.BAD_SHAPE) | h_shape):
                        fail(E.BAD_SHAPE, A_IMG)
                    with m.Elif((code == E.BAD_SIZE) | h_size):
                        fail(E.BAD_SIZE, A_IMG)
                    with m.Elif(code == E.BAD_SECTION):
                        fail(E.BAD_SECTION, A_IMG)
                    with m.Elif(h_window):
                        fail(E.OUT_OF_WINDOW, A_IMG)
                    with m.Else():
                        start_node()
                        with m.If(split):
                            m.next = "S_NEXT"
                        with m.Else():
                            m.d.sync += [f_mcast.eq(0), wi.eq(0)]
                            m.next = "HSEND"
            with m.State("HSEND"):
                m.d.comb += [self.busy.eq(1), self.inject.valid.eq(1), h_win.eq(1)]
                for i in range(32 // beat):
                    with m.If(wi == i):
                        m.d.comb += inj_data.eq(hdr.as_value()[i * W:(i + 1) * W])
                with m.If(self.inject.ready):
                    m.d.sync += wi.eq(wi + 1)
                    with m.If(wi == 32 // beat - 1):
                        with m.If(split):           # sent to every started tile at once
                            after_headers()
                        with m.Else():
                            # bodies go after the activations (step 5), so tile t computes
                            # while later tiles still load their weights
                            m.d.sync += [body_addr[t].eq(img + 32),
                                         body_len[t].eq(hb.total - 32)]
                            m.next = "W_NEXT"
                abort_on_soft_reset()
            with m.State("W_NEXT"):
                m.d.comb += [self.busy.eq(1), h_win.eq(1)]
                m.d.sync += [t.eq(t + 1), tmask.eq(tmask | (1 << t)),
                             rows_sum.eq(rows_sum + hb.rows), img.eq(img + hb.total)]
                with m.If(h_last):
                    after_headers()
                with m.Elif(t + 1 == T):
                    fail(E.BAD_SHAPE, A_IMG)        # `img` is img + total from now on
                with m.Else():
                    m.next = "H_NEXT"
                abort_on_soft_reset()
            # a column split: the one header, checked once (the rules are the same for every
            # tile), the tiles started one after another with their column groups (a start
            # every 2 cycles: `cg_share` and `cg_last` settle a cycle after `cg_left`), then
            # the header multicast to all of them (HSEND) (session 24: it was checked and sent
            # tile after tile, 6 + beats cycles per tile)
            with m.State("S_NEXT"):
                m.d.comb += self.busy.eq(1)
                split_next()
                abort_on_soft_reset()
            with m.State("S_GAP"):
                m.d.comb += self.busy.eq(1)
                m.next = "S_START"
                abort_on_soft_reset()
            with m.State("S_START"):
                m.d.comb += self.busy.eq(1)
                start_node()
                split_next()
                abort_on_soft_reset()
            with m.State("H_NEXT"):
                # the next tile's header: prefetched (check it), its read failed (the error
                # now), not prefetched (read it: W_START; its window check fails there), or
                # still on its way (wait here)
                m.d.comb += [self.busy.eq(1), h_win.eq(1)]
                def read_it():
                    m.next = "W_START"
                take_header(read_it, ~n_ok)
                abort_on_soft_reset()
            if cfg.pool_enabled:
                # a pool's channels, interleaved over the tiles: tile t pools channels t,
                # t + T, t + 2T, ... (golden.tiling.pool_channel_split): the first `p_full`
                # tiles `pool_rows` = ceil(C / T) channels, the others one fewer (none: not
                # started), so every tile's next channel streams in while it pools the one
                # before; in two steps (the share, registered; then the node's start)
                p_take, p_last = Signal(DIM_WIDTH + 1), Signal()
                p_full = Signal(DIM_WIDTH + 2)
                m.d.comb += p_full.eq(desc.m[:DIM_WIDTH + 1] - (chk.pool_rows - 1) * T)
                with m.State("P_SHARE"):
                    m.d.comb += self.busy.eq(1)
                    m.d.sync += [p_take.eq(Mux(t < p_full, chk.pool_rows, chk.pool_rows - 1)),
                                 p_last.eq((t + 1 == T)
                                           | ((chk.pool_rows == 1) & (t + 1 >= p_full)))]
                    m.next = "P_START"
                    abort_on_soft_reset()
                with m.State("P_START"):
                    m.d.comb += self.busy.eq(1)
                    for i in range(T):
                        with m.If(t == i):
                            m.d.comb += self.node_start[i].eq(1)
                    m.d.comb += [self.node_rows.eq(p_take), self.node_row_base.eq(t)]
                    m.d.sync += [t.eq(t + 1), tmask.eq(tmask | (1 << t)), body_len[t].eq(0)]
                    with m.If(p_last):
                        after_headers()
                    with m.Else():
                        m.next = "P_SHARE"
                    abort_on_soft_reset()
            with m.State("LUT"):
                m.d.comb += self.busy.eq(1)
                m.d.comb += ident.start.eq(1)
                with m.If(~desc.flags[0]):
                    m.next = "ACTS"
                with m.Elif(keep):                  # the tiles hold this table: none sent
                    m.next = "QUANT"
                with m.Elif(desc.flags[1]):
                    read(_P_LUT, lut_addr, 256, FlitType.CTRL)
                    m.d.sync += [held.eq(all_started), held_ident.eq(0),
                                 held_addr.eq(desc.lut)]
                with m.Else():
                    m.d.sync += [f_type.eq(FlitType.CTRL), f_mcast.eq(1),
                                 held.eq(all_started), held_ident.eq(1)]
                    m.next = "IDENT"
                abort_on_image_error()
                abort_on_soft_reset()
            with m.State("IDENT"):
                m.d.comb += self.busy.eq(1)
                words = ident.words
                m.d.comb += [self.inject.valid.eq(words.valid), words.ready.eq(self.inject.ready),
                             inj_data.eq(words.payload.data)]
                with m.If(words.valid & words.ready & words.payload.last):
                    m.next = "QUANT"
                abort_on_image_error()
                abort_on_soft_reset()
            with m.State("QUANT"):
                m.d.comb += self.busy.eq(1)
                read(_P_QUANT, quant_addr, qlen, FlitType.CTRL)
                abort_on_image_error()
                abort_on_soft_reset()
            with m.State("ACTS"):
                m.d.comb += self.busy.eq(1)
                read(_P_ACTS, acts_addr, lay.act_beats << lg_beat, FlitType.ACTS)
                m.d.sync += [u_pt.eq(0), u_left.eq(setup.plane_last)]
                abort_on_image_error()
                abort_on_soft_reset()
            with m.State("BODIES"):
                m.d.comb += self.busy.eq(1)
                with m.If((bt == t) & late):
                    m.next = "LUT"
                with m.Elif(bt == t):
                    m.next = "WAIT"
                with m.Elif(body_len[bt] == 0):
                    m.d.sync += bt.eq(bt + 1)
                with m.Elif(split):     # the one image body, multicast to every started tile
                    read(_P_WBODY, body_addr[0], body_len[0], FlitType.DATA)
                with m.Else():
                    read(_P_WBODY, body_addr[bt], body_len[bt], FlitType.DATA, unicast=bt + 1)
                abort_on_image_error()
                abort_on_soft_reset()
            with m.State("WAIT"):
                m.d.comb += [self.busy.eq(1), in_wait.eq(1), pf_window.eq(1)]
                nodes_err = (self.node_error & tmask).any()
                with m.If(self.rw_error_code != 0):
                    fail(self.rw_error_code, A_RW)
                with m.Elif((self.rw_markers == t) & ~self.rw_busy & all_images_ok):
                    with m.If(nodes_err):
                        fail(E.BAD_SHAPE, A_DESC)
                    with m.Else():
                        m.next = "LAYER_DONE"
                with m.Elif(wd == cfg.watchdog_cycles - 1):
                    fail(E.WATCHDOG, A_DESC)
                abort_on_image_error()
                abort_on_soft_reset()
            with m.State("LAYER_DONE"):
                m.d.comb += [self.busy.eq(1), self.irq_desc.eq(layer_irq), pf_window.eq(1)]
                m.d.sync += idx.eq(idx + 1)
                with m.If(is_last):
                    m.d.sync += self.done.eq(1)
                    m.d.comb += self.irq_done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "NEXT"
                abort_on_soft_reset()
            with m.State("NEXT"):
                # the next descriptor: prefetched and checked (CHECK), its read failed (the
                # error now, with this descriptor's index), not prefetched (FETCH), or still
                # on its way (wait here)
                m.d.comb += [self.busy.eq(1), pf_window.eq(1)]
                with m.If(pf.ready):
                    m.d.comb += pf.take.eq(1)
                    m.next = "CHECK"
                with m.Elif(pf.failed):
                    m.d.comb += pf.take.eq(1)
                    fail(pf.code, A_PF)
                with m.Elif(pf.idle):
                    m.next = "FETCH"
                abort_on_soft_reset()
            # the data plane sees `plane_reset` PLANE_RESET_DELAY cycles late (registered
            # copies, one per block, in the accelerator): the DMAs stay aborted while the
            # plane still runs (ABORT, ABORT_HOLD: no command a node or the ResultWriter
            # still presents is taken), and SETTLE waits until the plane is out of reset
            abort_outputs = [self.busy.eq(1), self.rd_abort.eq(1), self.wr_abort.eq(1),
                             self.plane_reset.eq(1)]
            with m.State("ABORT"):
                m.d.comb += abort_outputs
                m.d.sync += [soft_pending.eq(0), held.eq(0)]
                m.d.comb += [pf.clear.eq(1), hpf.clear.eq(1)]
                with m.Switch(err_src):
                    for src, addr in err_addrs.items():
                        with m.Case(src):
                            m.d.sync += self.error_addr.eq(addr)
                m.next = "ABORT_HOLD"
            with m.State("ABORT_HOLD"):
                m.d.comb += abort_outputs
                m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += [self.busy.eq(1), self.plane_reset.eq(1)]
                with m.If(~self.rd_busy & ~self.wr_busy):
                    m.next = "SETTLE"
            with m.State("SETTLE"):
                m.d.comb += self.busy.eq(1)
                with m.If(~soft):
                    m.d.sync += self.error.eq(1)
                    m.d.comb += self.irq_error.eq(1)
                m.next = "IDLE"

        # descriptor prefetch: in WAIT (and on through LAYER_DONE / NEXT) the read DMA is idle;
        # read descriptor idx + 1 into `desc` (the running layer's fields are registered in
        # CHECK) and start the DescChecker on it; `DescPrefetch` holds the state, the read
        # uses the fetch's registers
        rst_ = self.rstatus
        m.d.comb += [pf.window.eq(pf_window), pf.request.eq(in_wait & has_next),
                     pf.cmd_ready.eq(self.rcmd.ready), pf.status_valid.eq(rst_.valid),
                     pf.status_code.eq(rst_.payload.code), pf.status_addr.eq(rst_.payload.addr),
                     pf.checked.eq(chk.valid)]
        with m.If(pf.issue):
            m.d.sync += [phase.eq(_P_DESC), wi.eq(0), rd_addr.eq(next_desc_addr),
                         rd_len.eq(DESC_BYTES)]
        with m.If(pf.issuing):
            m.d.comb += [self.rcmd.valid.eq(1), self.rcmd.payload.addr.eq(rd_addr),
                         self.rcmd.payload.length.eq(rd_len)]
            with m.If(self.rcmd.ready):
                m.d.sync += desc_rd.eq(~aborting)
        with m.If(pf.streaming):
            rd = self.rdata
            m.d.comb += [rd.ready.eq(1), rst_.ready.eq(1)]
            capture(desc, DESC_BYTES)
            with m.If(rd.valid):
                m.d.sync += wi.eq(wi + 1)
            with m.If(rst_.valid):
                m.d.sync += desc_rd.eq(0)

        # header prefetch: from HCHECK to H_NEXT the read port is idle; tile t + 1's header is
        # read into the prefetch's own register (`hdr` is being checked and sent)
        m.d.sync += [f_img.eq(self.mem_base + desc.weights),
                     f_ok.eq(((desc.opcode == Opcode.MATMUL) | (desc.opcode == Opcode.CONV2D))
                             & (chk.code == 0))]
        m.d.comb += [hpf.window.eq(h_win | f_win | pf_window),
                     hpf.request.eq(Mux(h_win, n_ok, pf.ready & f_ok)),
                     hpf.addr.eq(Mux(h_win, n_img, f_img)),
                     hpf.rcmd.ready.eq(self.rcmd.ready),
                     hpf.rdata.valid.eq(self.rdata.valid),
                     hpf.rdata.payload.eq(self.rdata.payload),
                     hpf.rstatus.valid.eq(rst_.valid), hpf.rstatus.payload.eq(rst_.payload)]
        with m.If(hpf.rcmd.valid):
            m.d.comb += [self.rcmd.valid.eq(1), self.rcmd.payload.eq(hpf.rcmd.payload)]
        with m.If(hpf.rdata.ready):
            m.d.comb += [self.rdata.ready.eq(1), rst_.ready.eq(hpf.rstatus.ready)]

        # watchdog: cycles of a running layer without any data movement
        with m.If(in_wait & ~self.progress):
            m.d.sync += wd.eq(Mux(wd == cfg.watchdog_cycles - 1, wd, wd + 1))
        with m.Else():
            m.d.sync += wd.eq(0)
        return m
