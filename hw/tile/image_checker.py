"""Consistency checks of a weight image's body in hardware (docs/spec.md section 3, codes 7..10).

`ImageChecker` sits on the stream of weight-image words going into a tile and reports, at the
end of the image, the code ``golden.parse_weights`` would report (`golden.format_check`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from sparsemac.golden.formats import FormatCode, FormatErrorCode
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tile.header_checker import HeaderChecker, header_layout
from sparsemac.hw.tile.row_scan import RowScan, carry_run, clamp, highest, log2, named, popcount

__all__ = ["ImageChecker"]

_HDR, _SETUP1, _SETUP2, _SETUP3, _SETUP4, _SETUP5, _BODY, _DONE = range(8)


class ImageChecker(wiring.Component):
    """Checks the body of one weight image as it streams into a tile (golden rules 7..10).

    A pass-through on the weight stream (``i`` -> ``o``, payload unchanged): it observes every
    word, header first, of the image started by ``start`` and, once the image's ``total`` bytes
    have passed, holds ``done`` with ``code`` = the `FormatErrorCode` ``golden.parse_weights``
    reports for the image (0 when valid).  Exact checks, one pass, in section order:

    * bitmap: ``row_ptr`` (``BAD_PTR``: starts at 0, non-decreasing, ``row_ptr[M] <= total -
      sec_c``), mask bits at or past ``K`` (``BAD_PAD``), popcount of each row against its
      ``row_ptr`` difference (``BAD_MASK_COUNT``, the pointers are kept in a small memory);
    * block: ``blk_ptr`` (``BAD_PTR``, capacity of the ``blk_col`` and value sections),
      ``blk_col < ceil(K/B)`` and strictly increasing within a block row (``BAD_INDEX``), stored
      values past ``M`` (last block row) or ``K`` (blocks in the last block column, one bit per
      stored block kept from section B) are 0 (``BAD_PAD``);
    * nm: indices ``< M`` and strictly increasing within each group (``BAD_INDEX``); values of
      slots whose column is past ``K`` are 0 (``BAD_PAD``: the trailing zero values of each
      row's last group are kept per row and compared with the number of its indices past
      ``K``);
    * dense: nothing beyond the header.

    When several rules break, the code is golden's (bitmap: PTR, PAD, MASK_COUNT; block: PTR,
    INDEX, PAD; nm: INDEX, PAD).  The header is re-checked as golden does (magic, format,
    parameters, shape, ``total``, section offsets and sizes: codes 1..6; the sequencer has
    already rejected such headers), plus the hardware limits ``rows <= out_buf_depth`` and
    ``cols < 2**16`` (``BAD_SHAPE``).  Words past ``total`` are passed without looking at them.

    Throughput: one word per cycle, except

    * for `setup_cycles` cycles after the header (a body word arriving then is held);
    * a word that holds a second row end of the bitmap masks, or (nm with ``K % M != 0``) of
      the nm values or indices, is held one more cycle per extra row end;
    * a word of ``blk_col`` holding a second block-row boundary is held one more cycle per
      extra boundary (an empty block row counts as a boundary).

    So rows of at least ``axi_data_width / 8`` bytes (and block rows of at least that many
    ``blk_col`` entries) never stall.  ``o.ready`` is never waited for by ``o.valid``; the
    hold depends only on the checker's state, never on the payload.  Every wait is bounded
    (by the rows and block rows of the image), whatever the bytes.

    Parameters
    ----------
    cfg : AcceleratorConfig
        ``axi_data_width`` (word), ``group_size``, ``block_size``, ``nm_max_m``, ``formats``
        (only built formats are checked), ``out_buf_depth`` (rows per slice, pointer memory),
        ``weight_buf_depth`` (image words: sizes the block-column bit memory).

    Members
    -------
    i : In(stream.Signature(axi_data_width))
    o : Out(stream.Signature(axi_data_width))
    start : In(1)
        Pulse: forget the last image, the next word on ``i`` is a header word.
    done : Out(1)
        The image has passed and ``code`` is final (until ``start``).
    code : Out(8)
        ``FormatErrorCode`` of the image, 0 when valid (meaningful with ``done``).

    Raises
    ------
    TypeError
        ``cfg`` is not an AcceleratorConfig.
    """

    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = AcceleratorConfig.require(cfg, "cfg")
        self.wb = cfg.axi_bytes
        super().__init__({
            "i": In(stream.Signature(cfg.axi_data_width)),
            "o": Out(stream.Signature(cfg.axi_data_width)),
            "start": In(1), "done": Out(1), "code": Out(8),
        })

    #: Cycles after the last header word during which a body word is held.
    setup_cycles = 5

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        W, wb = cfg.axi_data_width, cfg.axi_bytes
        lg_wb = log2(wb)
        B = cfg.block_size
        lgB = log2(B)
        BB, lgBB = B * B, 2 * lgB
        obd = cfg.out_buf_depth
        rw = obd.bit_length()           # holds 0..out_buf_depth
        has_bm, has_blk, has_nm = (f in cfg.formats for f in ("bitmap", "block", "nm"))
        E = wb // 4                     # u32 pointers per word
        F = wb // 2                     # u16 block columns per word
        lgE, lgF = log2(E), log2(F)
        C = FormatErrorCode

        # ---------------- stream: pass-through, held while `may` is low ----------------
        i, o = self.i, self.o
        word = i.payload
        may, go, xfer = Signal(), Signal(), Signal()
        m.d.comb += [o.payload.eq(word), o.valid.eq(i.valid & may), i.ready.eq(o.ready & may),
                     go.eq(i.valid & o.ready), xfer.eq(go & may)]
        byte = [word[8 * j:8 * j + 8] for j in range(wb)]

        # ---------------- header and position ----------------
        state = Signal(range(8), init=_HDR)
        hdr = Signal(header_layout())
        pos = Signal(34)                # byte offset of the presented word in the image
        hdr_words = 32 // wb
        h_fmt, h_a, h_b, h_rows, h_cols = hdr.format, hdr.param_a, hdr.param_b, hdr.rows, hdr.cols
        sec_a, sec_b, sec_c, total = hdr.sec_a, hdr.sec_b, hdr.sec_c, hdr.total
        # pos >= 32, sec_a, sec_b, sec_c, total: registers, each the compare of the next pos
        # (pos + wb after a transfer) so no 34-bit compare sits in front of the body checks;
        # valid from the first set-up cycle (no transfer before the body)
        bounds = {"hdr": Const(32, 6), "a": sec_a, "b": sec_b, "c": sec_c, "t": total}
        ge = {k: Signal(name=f"pos_ge_{k}") for k in bounds}
        pos_step = Signal.like(pos)
        m.d.comb += pos_step.eq(pos + wb)
        for k, bound in bounds.items():
            m.d.sync += ge[k].eq(Mux(xfer, pos_step >= bound, pos >= bound))
        ended = Signal()
        m.d.comb += ended.eq(ge["hdr"] & ge["t"])
        body = Signal()
        m.d.comb += body.eq((state == _BODY) & ~ended)
        in_a, in_b, in_c = Signal(), Signal(), Signal()
        m.d.comb += [in_a.eq(body & ge["a"] & ~ge["b"]),
                     in_b.eq(body & ge["b"] & ~ge["c"]),
                     in_c.eq(body & ge["c"] & ~ge["t"])]
        with m.If(xfer):
            m.d.sync += pos.eq(pos + wb)
            with m.If(state == _HDR):
                for k in range(hdr_words):
                    with m.If(pos == k * wb):
                        m.d.sync += hdr.as_value()[k * W:(k + 1) * W].eq(word)
                with m.If(pos == 32 - wb):
                    m.d.sync += state.eq(_SETUP1)

        # ---------------- set-up: header rules, derived values ----------------
        # the header rules (codes 1..6) and the per-row factor and its product with the rows
        # are the HeaderChecker's, started in SETUP1 (the header is complete): its nm
        # logarithms are valid from SETUP2, row_bytes from SETUP3, sec_bytes from SETUP4,
        # code and fields_ok from SETUP5 (its latency), before the first body word
        m.submodules.header_checker = hc = HeaderChecker(cfg)
        assert hc.latency < self.setup_cycles
        m.d.comb += [hc.hdr.eq(hdr), hc.start.eq(state == _SETUP1)]
        is_bm, is_blk, is_nm = Signal(), Signal(), Signal()
        M = Signal(rw)
        K = Signal(16)
        mn, nn = Signal(6), Signal(6)
        pq = Signal(17)                 # bitmap: RB - floor(K/8)
        hi = Signal(8)                  # bitmap: bits at/after K of byte floor(K/8)
        nbr, nbc = Signal(rw), Signal(17)
        krem = Signal(6)
        pad_nm = Signal()
        np_ = Signal(rw)                # pointer intervals (bitmap M, block nbr)
        cap = Signal(32)
        rvalid, cvalid = Signal(max(1, lgB)), Signal(max(1, lgB))
        rpad_on, cpad_on = Signal(), Signal()
        setup_end = Signal()            # the last set-up cycle: derived values are registered
        m.d.comb += setup_end.eq(state == _SETUP5)

        with m.If(state == _SETUP1):
            m.d.sync += [is_bm.eq(h_fmt == FormatCode.BITMAP),
                         is_blk.eq(h_fmt == FormatCode.BLOCK), is_nm.eq(h_fmt == FormatCode.NM),
                         M.eq(h_rows[:rw]), K.eq(h_cols[:16]),
                         mn.eq(h_b[:6]), nn.eq(h_a[:6]), state.eq(_SETUP2)]
        # derived values: computed in SETUP2 / SETUP3 from registered header fields and
        # registered (the body's per-word checks then start from flip-flops, not from an
        # add-and-shift chain on K; that chain was the accelerator's critical path)
        d_nbr = Signal.like(nbr)
        m.d.comb += d_nbr.eq((M + B - 1) >> lgB)
        with m.If(state == _SETUP2):
            m.d.sync += [
                hi.eq(Const(0xFF, 8) << K[:3]),
                nbr.eq(d_nbr), nbc.eq((K + B - 1) >> lgB),
                krem.eq(((K - 1) & (mn - 1)) + 1), pad_nm.eq((K & (mn - 1)) != 0),
                np_.eq(Mux(is_blk, d_nbr, M)),
                rvalid.eq(M[:max(1, lgB)]), cvalid.eq(K[:max(1, lgB)]),
                rpad_on.eq((M & (B - 1)) != 0), cpad_on.eq((K & (B - 1)) != 0),
            ]
        with m.If(state == _SETUP3):            # bitmap: row_bytes = mask bytes per row
            m.d.sync += pq.eq(hc.row_bytes - (K >> 3))
        cap_bm = Signal(33)
        cap_b1, cap_b2 = Signal(33), Signal(33)
        m.d.comb += [cap_bm.eq(total - sec_c), cap_b1.eq((sec_c - sec_b) >> 1),
                     cap_b2.eq((total - sec_c) >> lgBB)]
        with m.If(state == _SETUP2):
            m.d.sync += [cap.eq(Mux(is_blk, Mux(cap_b1 < cap_b2, cap_b1, cap_b2), cap_bm)),
                         state.eq(_SETUP3)]
        with m.If(state == _SETUP3):
            m.d.sync += state.eq(_SETUP4)
        with m.If(state == _SETUP4):           # hc.sec_bytes is valid from here
            m.d.sync += state.eq(_SETUP5)
        with m.If(state == _SETUP5):
            m.d.sync += state.eq(_BODY)
        checks = Signal()               # the body rules apply (header fine, format built)
        m.d.comb += checks.eq(hc.fields_ok)

        # sticky rule flags
        bad_ptr, bad_pad, bad_cnt, bad_idx = Signal(), Signal(), Signal(), Signal()

        # ---------------- pointer section (bitmap row_ptr, block blk_ptr) ----------------
        ptr_fmt = Signal()
        m.d.comb += ptr_fmt.eq(Const(int(has_bm)) & is_bm | Const(int(has_blk)) & is_blk)
        pidx = Signal(rw + 2)           # next pointer entry the body checks need
        consume = Signal()
        e1, e2 = Signal(32), Signal(32)
        nnz = Signal(32)                # ptr[np]: stored values / blocks
        plast_row = Signal(32)          # ptr[np - 1]: first block of the last block row
        if has_bm or has_blk:
            p_entries = max(obd + 1, -(-obd // B) + 1) + 2
            pd = max(2, -(-p_entries // E))
            pmem = Memory(shape=W, depth=pd, init=[])
            m.submodules.ptr_mem = pmem
            pw = pmem.write_port()
            pr1 = pmem.read_port(transparent_for=(pw,))
            pr2 = pmem.read_port(transparent_for=(pw,))
            a_act = Signal()
            m.d.comb += a_act.eq(in_a & ptr_fmt & checks)
            aoff = Signal(34)
            m.d.comb += aoff.eq(pos - sec_a)
            j0 = Signal(34)
            m.d.comb += j0.eq(aoff >> 2)
            plast = Signal(32)
            vals = [word[32 * e:32 * e + 32] for e in range(E)]
            dj = clamp(m, np_ - j0, -2, E + 1, "ptr_dj")    # lane of entry np
            for e in range(E):
                v = vals[e]
                prev = vals[e - 1] if e else plast
                ok = a_act & (dj >= e)
                first = (j0 == 0) if e == 0 else Const(0)
                with m.If(xfer & ok):
                    with m.If(first & (v != 0)):
                        m.d.sync += bad_ptr.eq(1)
                    with m.If(~first & (v < prev)):
                        m.d.sync += bad_ptr.eq(1)
                    with m.If(dj == e):
                        m.d.sync += nnz.eq(v)
                        with m.If(v > cap):
                            m.d.sync += bad_ptr.eq(1)
                    with m.If(dj == e + 1):
                        m.d.sync += plast_row.eq(v)
            with m.If(xfer & a_act):
                m.d.sync += plast.eq(vals[-1])
            m.d.comb += [pw.addr.eq(aoff >> lg_wb), pw.data.eq(word),
                         pw.en.eq(xfer & a_act & ((aoff >> lg_wb) < pd))]
            # sequential read of entries pidx (e1) and pidx + 1 (e2)
            ent1, ent2 = Signal(rw + 3), Signal(rw + 3)
            m.d.comb += [ent1.eq(Mux(consume, pidx + 1, pidx)), ent2.eq(ent1 + 1),
                         pr1.addr.eq(ent1 >> lgE), pr2.addr.eq(ent2 >> lgE)]
            sel1, sel2 = Signal(max(1, lgE)), Signal(max(1, lgE))
            if lgE:
                m.d.sync += [sel1.eq(ent1[:lgE]), sel2.eq(ent2[:lgE])]
            m.d.comb += [e1.eq(pr1.data.word_select(sel1, 32) if lgE else pr1.data),
                         e2.eq(pr2.data.word_select(sel2, 32) if lgE else pr2.data)]
        with m.If(setup_end):
            m.d.sync += pidx.eq(1)
        with m.Elif(consume):
            m.d.sync += pidx.eq(pidx + 1)

        stall = Signal()
        stalls = []

        # ---------------- bitmap masks (section B) ----------------
        # row scanner of section B (bitmap masks or nm indices) and of section A (nm values)
        scan_b_on = Signal()
        m.d.comb += scan_b_on.eq(checks & in_b & (Const(int(has_bm)) & is_bm
                                                  | Const(int(has_nm)) & is_nm & pad_nm))
        sb = RowScan(m, "sb", wb=wb, rw=rw, active=scan_b_on, rb=hc.row_bytes,
                      rows=M, go=go, init=setup_end,
                      offsets=dict(**({"pq": (pq, -1)} if has_bm else {}),
                                   **({"nn": (nn, 0)} if has_nm else {})))
        stalls.append(sb.stall)
        if has_bm:
            bm_go = Signal()
            m.d.comb += bm_go.eq(go & is_bm & sb.live)
            s_sum = Signal(40)
            pops = [named(m, popcount(b, 8), 4, f"bm_pop{j}") for j, b in enumerate(byte)]
            pc_r = sum((Mux(sb.in_r[j], pops[j], 0) for j in range(wb)), Const(0, 9))
            pc_n = sum((Mux(sb.in_n[j], pops[j], 0) for j in range(wb)), Const(0, 9))
            th_r = sb.cut_r["pq"]
            th_n = sb.cut_n["pq"]
            pad_lane = []
            for j in range(wb):
                bad_r = ((j > th_r) & (byte[j] != 0)) | ((j == th_r) & ((byte[j] & hi) != 0))
                bad_n = ((j > th_n) & (byte[j] != 0)) | ((j == th_n) & ((byte[j] & hi) != 0))
                pad_lane.append((sb.in_r[j] & bad_r) | (sb.in_n[j] & bad_n))
            with m.If(setup_end):
                m.d.sync += s_sum.eq(0)
            with m.Elif(bm_go):
                m.d.sync += s_sum.eq(s_sum + pc_r + pc_n)
                with m.If(Cat(*pad_lane).any()):
                    m.d.sync += bad_pad.eq(1)
                with m.If(sb.ends & (s_sum + pc_r != e1)):
                    m.d.sync += bad_cnt.eq(1)
            with m.If(bm_go & sb.ends):
                m.d.comb += consume.eq(1)

        # ---------------- block: blk_col (section B), values (section C) ----------------
        if has_blk:
            bb_act = Signal()
            m.d.comb += bb_act.eq(checks & is_blk & in_b)
            br = Signal(rw + 1)
            blp = Signal(max(1, lgF))
            cj0 = Signal(33)
            boff = Signal(34)
            m.d.comb += [boff.eq(pos - sec_b), cj0.eq(boff >> 1)]
            rel1, rel2 = Signal(signed(36)), Signal(signed(36))
            m.d.comb += [rel1.eq(e1 - cj0), rel2.eq(e2 - cj0)]
            has1, has2 = Signal(), Signal()
            bl1, stop = Signal(signed(36)), Signal(signed(36))
            m.d.comb += [has1.eq(bb_act & (br + 1 < nbr) & (rel1 < F)),
                         bl1.eq(Mux(rel1 < blp, blp, rel1)),
                         has2.eq(has1 & (br + 2 < nbr) & (rel2 < F)),
                         stop.eq(Mux(has2, Mux(rel2 < bl1, bl1, rel2), F))]
            stalls.append(has2)
            cols = [word[16 * f:16 * f + 16] for f in range(F)]
            clast = Signal(16)
            lastcol = Signal(F)
            nlim = clamp(m, nnz - cj0, 0, F, "blk_nlim")    # lanes below nnz
            bl1c = clamp(m, bl1, 0, F, "blk_bl1")
            stopc = clamp(m, stop, 0, F, "blk_stop")
            for f in range(F):
                valid = bb_act & (nlim > f)
                from_lp = (blp <= f) if f < F - 1 else Const(1)  # blp < F always
                proc = valid & from_lp & (stopc > f)
                prev = cols[f - 1] if f else clast
                brk = has1 & (bl1c == f)
                nonfirst = (cj0 != 0) if f == 0 else Const(1)
                with m.If(go & proc & (cols[f] >= nbc)):
                    m.d.sync += bad_idx.eq(1)
                with m.If(go & proc & ~brk & nonfirst & (cols[f] <= prev)):
                    m.d.sync += bad_idx.eq(1)
                m.d.comb += lastcol[f].eq(valid & (cols[f] == nbc - 1))
            with m.If(setup_end):
                m.d.sync += [br.eq(0), blp.eq(0)]
            with m.Elif(go & bb_act):
                with m.If(has1):
                    m.d.sync += br.eq(br + 1)
                    m.d.comb += consume.eq(1)
                m.d.sync += blp.eq(Mux(has2, stopc, 0))
            with m.If(xfer & bb_act):
                m.d.sync += clast.eq(cols[-1])
            # one bit per stored block: its column is the last one (ceil(K/B) - 1)
            max_blocks = max(F, cfg.weight_buf_depth * wb // BB)
            cd = max(2, -(-max_blocks // F))
            cmem = Memory(shape=F, depth=cd, init=[])
            m.submodules.lastcol_mem = cmem
            cw = cmem.write_port()
            cr = cmem.read_port(transparent_for=(cw,))
            m.d.comb += [cw.addr.eq(boff >> lg_wb), cw.data.eq(lastcol),
                         cw.en.eq(xfer & bb_act & ((boff >> lg_wb) < cd))]
            # values: read the bits of the next word's blocks one cycle ahead
            coff = Signal(34)
            m.d.comb += coff.eq(pos - sec_c)
            coff_n = Signal(34)
            m.d.comb += coff_n.eq(Mux(xfer, coff + wb, coff))
            blk_n = Signal(34)
            m.d.comb += [blk_n.eq(coff_n >> lgBB), cr.addr.eq(blk_n >> lgF)]
            bsel = Signal(max(1, lgF))
            if lgF:
                m.d.sync += bsel.eq(blk_n[:lgF])
            cbits = Signal(F)
            m.d.comb += cbits.eq(cr.data >> bsel if lgF else cr.data)
            bc_act = Signal()
            m.d.comb += bc_act.eq(checks & is_blk & in_c)
            # rows / columns of a block at or past rvalid / cvalid (padding when applicable)
            rmask, cmask = Signal(B), Signal(B)
            m.d.comb += [rmask.eq(Const((1 << B) - 1, B) << rvalid),
                         cmask.eq(Const((1 << B) - 1, B) << cvalid)]
            bad_lanes = []
            if BB >= wb:
                blk = Signal(34)
                m.d.comb += blk.eq(coff >> lgBB)
                wo = coff[:lgBB]
                rowpad = rpad_on & (blk >= plast_row)
                colpad = cpad_on & cbits[0]
                for j in range(wb):
                    # element of lane j in its block: wo (a multiple of wb) + j
                    e = Cat(Const(j, lg_wb), wo[lg_wb:]) if lg_wb < lgBB else Const(j, lgBB)
                    rr, cc = e[lgB:lgBB], e[:lgB]
                    bad_lanes.append((blk < nnz) & (byte[j] != 0)
                                     & ((rowpad & rmask.bit_select(rr, 1))
                                        | (colpad & cmask.bit_select(cc, 1))))
            else:
                i0 = Signal(34)
                m.d.comb += i0.eq(coff >> lgBB)
                for bj in range(wb // BB):
                    blk = i0 + bj
                    rowpad = rpad_on & (blk >= plast_row)
                    colpad = cpad_on & cbits[bj]
                    for e in range(BB):
                        j = bj * BB + e
                        rr, cc = e >> lgB, e & (B - 1)
                        bad_lanes.append((blk < nnz) & (byte[j] != 0)
                                         & ((rowpad & rmask[rr]) | (colpad & cmask[cc])))
            with m.If(xfer & bc_act & Cat(*bad_lanes).any()):
                m.d.sync += bad_pad.eq(1)

        # ---------------- nm: indices (section B), values (section A) ----------------
        if has_nm:
            nb_act = Signal()
            m.d.comb += nb_act.eq(checks & is_nm & in_b)
            noff = Signal(6)                # (pos - sec_b) mod 64: slot of lane 0 in its group
            m.d.comb += noff.eq(pos[:6] - sec_b[:6])
            ilast = Signal(8)
            # index bytes left from the presented word on (sec_bytes + sec_b - pos) and the
            # lanes below the last slot (that, clamped to [0, wb]), both registers: set up in
            # SETUP4 / SETUP5 (hc.sec_bytes is valid from SETUP4), then stepped with pos
            left = Signal(signed(43), name="nm_left")
            vlim = Signal(range(wb + 1), name="nm_vlim")
            with m.If(state == _SETUP4):
                m.d.sync += left.eq(hc.sec_bytes + sec_b - pos)
            with m.Elif(xfer):
                m.d.sync += left.eq(left - wb)
            v_stay = clamp(m, left, 0, wb, "nm_vlim_stay")
            v_step = clamp(m, left - wb, 0, wb, "nm_vlim_step")
            m.d.sync += vlim.eq(Mux(xfer, v_step, v_stay))
            for j in range(wb):
                valid = nb_act & (vlim > j)
                first = ((noff + j) & (nn - 1)[:6]) == 0
                prev = byte[j - 1] if j else ilast
                with m.If(go & valid & (byte[j] >= mn)):
                    m.d.sync += bad_idx.eq(1)
                with m.If(go & valid & ~first & (byte[j] <= prev)):
                    m.d.sync += bad_idx.eq(1)
            with m.If(xfer & nb_act):
                m.d.sync += ilast.eq(byte[-1])
            # padding: per row, trailing zero values of the last group (section A) against the
            # number of its indices past K (section B); only when K % M != 0
            sa = RowScan(m, "sa", wb=wb, rw=rw, active=checks & is_nm & pad_nm & in_a,
                          rb=hc.row_bytes, rows=M, go=go, init=setup_end, offsets={"nn": (nn, 0)})
            stalls.append(sa.stall)
            tzmem = Memory(shape=6, depth=max(2, obd), init=[])
            m.submodules.tz_mem = tzmem
            tw = tzmem.write_port()
            tr = tzmem.read_port(transparent_for=(tw,))
            tz_run = Signal(7)
            nz = named(m, Cat(*[b != 0 for b in byte]), wb, "nm_nz")
            ta_r = sa.cut_r["nn"]
            ta_n = sa.cut_n["nn"]
            tail_r = named(m, Cat(*[sa.in_r[j] & (j >= ta_r) for j in range(wb)]), wb, "nm_tail_r")
            tail_n = named(m, Cat(*[sa.in_n[j] & (j >= ta_n) for j in range(wb)]), wb, "nm_tail_n")
            hi_r = highest(m, tail_r & nz, wb, "nm_hi_r")
            hi_n = highest(m, tail_n & nz, wb, "nm_hi_n")
            last_r = Signal(signed(21))
            m.d.comb += last_r.eq(Mux(sa.ends, sa.er - 1, wb - 1))
            tz_r, tz_n = Signal(signed(22)), Signal(signed(22))
            m.d.comb += [tz_r.eq(Mux((tail_r & nz).any(), last_r - hi_r,
                                     tz_run + popcount(tail_r, wb))),
                         tz_n.eq(Mux((tail_n & nz).any(), wb - 1 - hi_n, popcount(tail_n, wb)))]
            m.d.comb += [tw.addr.eq(sa.r), tw.data.eq(tz_r),
                         tw.en.eq(go & sa.live & sa.ends)]
            carry_run(m, tz_run, reset=setup_end, go=go & sa.live, seg=sa, cont=tz_r, nxt=tz_n)
            # section B: indices past K of each row's last group
            past = named(m, Cat(*[byte[j] >= krem for j in range(wb)]), wb, "nm_past")
            cnt_run = Signal(7)
            tb_r = sb.cut_r["nn"]
            tb_n = sb.cut_n["nn"]
            btail_r = named(m, Cat(*[sb.in_r[j] & (j >= tb_r) for j in range(wb)]), wb,
                           "nm_btail_r")
            btail_n = named(m, Cat(*[sb.in_n[j] & (j >= tb_n) for j in range(wb)]), wb,
                           "nm_btail_n")
            c_r, c_n = Signal(8), Signal(8)
            m.d.comb += [c_r.eq(cnt_run + popcount(btail_r & past, wb)),
                         c_n.eq(popcount(btail_n & past, wb))]
            nm_go = Signal()
            m.d.comb += nm_go.eq(go & is_nm & sb.live)
            t_idx = Signal(rw + 1)
            m.d.comb += [t_idx.eq(Mux(nm_go & sb.ends, sb.r + 1, sb.r)), tr.addr.eq(t_idx)]
            carry_run(m, cnt_run, reset=setup_end, go=nm_go, seg=sb, cont=c_r, nxt=c_n)
            with m.If(~setup_end & nm_go & sb.ends & (c_r > tr.data)):
                m.d.sync += bad_pad.eq(1)

        m.d.comb += stall.eq(Cat(*stalls).any())

        # ---------------- ready, end of image, verdict ----------------
        with m.Switch(state):
            with m.Case(_SETUP1, _SETUP2, _SETUP3, _SETUP4, _SETUP5):
                m.d.comb += may.eq(0)
            with m.Case(_BODY):
                m.d.comb += may.eq(~stall)
            with m.Default():
                m.d.comb += may.eq(1)
        with m.If((state == _BODY) & ended):
            m.d.sync += state.eq(_DONE)
            with m.If(hc.code != 0):
                m.d.sync += self.code.eq(hc.code)
            with m.Elif(is_bm & Const(int(has_bm))):
                m.d.sync += self.code.eq(Mux(bad_ptr, C.BAD_PTR, Mux(bad_pad, C.BAD_PAD,
                                             Mux(bad_cnt, C.BAD_MASK_COUNT, 0))))
            with m.Elif(is_blk & Const(int(has_blk))):
                m.d.sync += self.code.eq(Mux(bad_ptr, C.BAD_PTR, Mux(bad_idx, C.BAD_INDEX,
                                             Mux(bad_pad, C.BAD_PAD, 0))))
            with m.Elif(is_nm & Const(int(has_nm))):
                m.d.sync += self.code.eq(Mux(bad_idx, C.BAD_INDEX, Mux(bad_pad, C.BAD_PAD, 0)))
            with m.Else():
                m.d.sync += self.code.eq(0)
        m.d.comb += self.done.eq(state == _DONE)

        with m.If(self.start):
            m.d.sync += [state.eq(_HDR), pos.eq(0), hdr.eq(0), self.code.eq(0),
                         bad_ptr.eq(0), bad_pad.eq(0), bad_cnt.eq(0), bad_idx.eq(0)]
        return m
