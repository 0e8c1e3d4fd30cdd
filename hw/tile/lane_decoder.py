"""Zero-skipping front end of one array lane: compressed weight rows -> effectual pairs.

See docs/tile.md for the micro-architecture and docs/spec.md section 3 for the image layout.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from sparsemac.golden.formats import FormatCode
from sparsemac.hw.config import FORMATS

__all__ = ["LaneDecoder", "pair_layout"]


def pair_layout(*, byte_addr_width: int, act_addr_width: int, dim_width: int = 16,
                bitmap: bool = True):
    """Payload of the decoder's pair stream (one effectual pair or an end-of-row token).

    ``w`` is the weight byte for dense, nm and block; a bitmap pair's value is not in the
    scanned word (it sits in section C at ``vaddr``), so ``vaddr`` exists only when bitmap is
    built and ``w`` is then 0.  End tokens carry no row or column group: a lane ends its
    rows in a fixed order (``m = lane, lane + rows, ...``, column groups inner), so the
    consumer counts them (the tile does; no copy of ``m``/``cg`` rides through the FIFO,
    the scanner and the MAC pipeline).
    """
    fields = {
        "k": dim_width,                 # K index of the pair
        "w": 8,                         # weight value (dense, nm, block)
    }
    if bitmap:
        fields["vaddr"] = byte_addr_width  # byte address of a bitmap value in the image
    fields.update({
        "abase": act_addr_width,        # activation buffer base of the column group (cg * K)
        "aaddr": act_addr_width + 1,    # activation entry of the pair: abase + k
        "clear": 1,                     # first pair of a row: starts a new sum
        "end": 1,                       # end-of-row token (no MAC)
        "empty": 1,                     # with end: the row had no effectual pair
    })
    return data.StructLayout(fields)


def _lowest(m, vec, width, name):
    """Index of the lowest set bit of ``vec`` (0 if none): isolate it with a carry chain
    (``vec & -vec``), then OR-encode the one-hot bit (log depth, no priority chain)."""
    j = Signal(range(max(2, width)), name=name)
    low = Signal(width, name=f"{name}_low")
    m.d.comb += low.eq(vec & (~vec + 1))
    for b in range(len(j)):
        bits = [low[i] for i in range(width) if i >> b & 1]
        if bits:
            m.d.comb += j[b].eq(Cat(*bits).any())
    return j


def _popcount(vec, width):
    """Number of set bits of ``vec``, as a balanced adder tree."""
    terms = [vec[i] for i in range(width)]
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def _cmul(c: int, v, width: int):
    """``c * v`` for a constant ``c`` as shifts and adds (no multiplier)."""
    terms = [v << i for i in range(c.bit_length()) if c >> i & 1]
    return sum(terms, Const(0, width))


class LaneDecoder(wiring.Component):
    """Turns the lane's weight rows (``m = lane, lane + rows, ...``) into effectual pairs.

    Two decoupled stages.  The *segment fetcher* walks the row's stored data one memory word
    per cycle (dense and nm: the row's value/slot bytes; bitmap: the row's mask bits, 8 x
    ``word_bytes`` of them per word; block: the row's ``B`` bytes of every stored block),
    computes the word's candidate vector (all bytes for dense, non-zero bytes for nm/block,
    set mask bits for bitmap, ANDed with the activation non-zero flags when ``act_skip``) and
    pushes only non-empty words (with the word itself) into a 4-entry FIFO, so empty words
    never reach the scanner.  The *scanner* emits the lowest candidate of its word every cycle
    (a priority encoder), so a lane issues one effectual pair per cycle while the fetcher skips
    empty words in parallel.  Each row of each column group ends with one ``end`` token.  Row
    set-up costs 2 (dense, nm, bitmap) or 3 (block) fetcher cycles, hidden behind the scanner
    when the previous row has enough pairs.  Stall: the scanner waits while ``pairs.ready`` is
    low.

    Only the formats in ``formats`` are built.  A ``fmt`` that is not built is decoded as dense
    (the tile flags it as an error); the ports a format does not need are not created:

    ========  ==========================================================================
    port      needed by
    ========  ==========================================================================
    scan_*    every format (stored data; the row_ptr / blk_ptr reads of the row set-up)
    aux_*     nm (index word beside the value word), block (``blk_col``)
    nz0/nz1   bitmap (activation non-zero flags for dual-side skipping)
    ========  ==========================================================================

    Parameters
    ----------
    lane, rows : int
        This lane's index and the number of lanes.
    word_bytes : int
        Bytes per weight memory word (a power of two, 4..32).
    byte_addr_width, act_addr_width, nz_addr_width : int
        Address widths of the weight image (bytes), activation buffer and its non-zero flags.
    formats : tuple of str
        Formats to build, a subset of ``hw.config.FORMATS`` that contains ``"dense"``.

    Members
    -------
    start : In(1)
        Pulse: begin the layer with the operands below (held stable until ``done``).
    w_avail, w_all : In(byte_addr_width + 1), In(1)
        The weight image is still arriving: words ``[0, w_avail)`` are in the buffer, or
        every word is (``w_all``).  The fetcher issues a word only once every word it reads
        in that cycle is in (dense: the value word; nm: the index word, which sits after the
        value word; block: the value word, after its ``blk_col`` word; a row set-up's
        pointer words), one cycle after ``w_avail`` passed it (the limit is registered), so
        the lane computes while its image streams in (docs/tile.md "Load and compute").
    cg_avail : In(dim_width)  (builds with bitmap)
        Column groups whose activation entries, and so their non-zero flag words, are all in
        (the im2col gather or the matmul entries still arriving).  Bitmap with ``act_skip``
        fetches a word of column group ``cg`` only once ``cg < cg_avail`` (compared a cycle
        late: ``cg_avail`` only grows, and ``cg`` changes at least two cycles before the row's
        first fetch), so the lanes start with the gather instead of after it (session 24).
    done : Out(1)
        Every row of this lane has been emitted.
    pairs : Out(stream.Signature(pair_layout(...)))
        Effectual pairs and end tokens.
    scan_*, aux_*, nz0_*, nz1_* :
        Read ports (address, enable, data; one cycle latency) on the weight image (scan, aux)
        and on the activation non-zero flag words (nz0, nz1).

    Raises
    ------
    ValueError
        ``word_bytes``, ``lane`` or ``formats`` out of range.
    """

    def __init__(self, *, lane: int, rows: int, word_bytes: int, byte_addr_width: int,
                 act_addr_width: int, nz_addr_width: int, dim_width: int = 16,
                 formats: tuple = FORMATS, register_gap: bool = True):
        self.register_gap = bool(register_gap)
        if word_bytes not in (4, 8, 16, 32):
            raise ValueError(f"word_bytes must be one of 4, 8, 16, 32, not {word_bytes!r}")
        if not 0 <= lane < rows:
            raise ValueError(f"lane must be between 0 and {rows - 1}, not {lane!r}")
        bad = [f for f in formats if f not in FORMATS]
        if bad or "dense" not in formats:
            raise ValueError(f"formats must be a subset of {', '.join(FORMATS)} that contains "
                             f"'dense', not {tuple(formats)!r}")
        self.formats = tuple(f for f in FORMATS if f in formats)
        self.has_bm, self.has_blk, self.has_nm = (f in self.formats
                                                  for f in ("bitmap", "block", "nm"))
        self.has_aux = self.has_blk or self.has_nm
        self.lane, self.rows, self.wb = lane, rows, word_bytes
        self.W = 8 * word_bytes
        self.lg_wb = word_bytes.bit_length() - 1
        self.baw, self.aaw, self.naw, self.dw = (byte_addr_width, act_addr_width, nz_addr_width,
                                                 dim_width)
        waw = byte_addr_width - self.lg_wb
        sig = {
            "start": In(1), "done": Out(1),
            "w_avail": In(byte_addr_width + 1), "w_all": In(1),
            "fmt": In(2), "act_skip": In(1),
            "lg_n": In(3), "lg_m": In(3), "lg_b": In(3),
            "dim_m": In(dim_width), "dim_k": In(dim_width), "ncg": In(dim_width),
            "row_len": In(byte_addr_width + 3), "kw": In(nz_addr_width),
            "sec_a": In(byte_addr_width), "sec_b": In(byte_addr_width),
            "sec_c": In(byte_addr_width),
            "pairs": Out(stream.Signature(pair_layout(byte_addr_width=byte_addr_width,
                                                      act_addr_width=act_addr_width,
                                                      dim_width=dim_width,
                                                      bitmap=self.has_bm))),
            "scan_addr": Out(waw), "scan_en": Out(1), "scan_data": In(self.W),
        }
        if self.has_aux:
            sig.update({"aux_addr": Out(waw), "aux_en": Out(1), "aux_data": In(self.W)})
        if self.has_bm:
            sig.update({"nz0_addr": Out(nz_addr_width), "nz1_addr": Out(nz_addr_width),
                        "nz_en": Out(1), "nz0_data": In(self.W), "nz1_data": In(self.W),
                        "cg_avail": In(dim_width)})
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        W, WB, lg_wb, baw, dw = self.W, self.wb, self.lg_wb, self.baw, self.dw
        has_bm, has_blk, has_nm = self.has_bm, self.has_blk, self.has_nm
        lg_w = lg_wb + 3
        uw = baw + 3  # unit (byte or bit) address width
        fmt = self.fmt
        # a format that is not built is never selected (decoded as dense)
        is_bm = (fmt == FormatCode.BITMAP) if has_bm else Const(0)
        is_blk = (fmt == FormatCode.BLOCK) if has_blk else Const(0)
        is_nm = (fmt == FormatCode.NM) if has_nm else Const(0)
        lg_u = Mux(is_bm, lg_w, lg_wb) if has_bm else lg_wb

        # dense only: a word's candidates are the byte range [lo, hi), kept as two indices
        # instead of a W-bit vector (same cycles, no priority encoder)
        ranged = not (has_bm or has_blk or has_nm)
        # the candidate unit is a bit for bitmap, else a byte: without bitmap a word has WB
        cw = W if has_bm else WB
        cand_fields = {"lo": lg_wb + 1, "hi": lg_wb + 1} if ranged else {"cand": cw}
        fields = {"end": 1, **cand_fields, "data": W, "kbase": signed(uw + 2),
                  "abase": self.aaw, "ak": self.aaw + 1}   # ak = abase + kbase
        if has_nm:
            fields["aux"] = W      # nm index word
            # nm: kbase = g0 * N + o; a pair's k = (g0 + (o + j) / N) * M + index, so the
            # record carries g0 * M (gk), abase + g0 * M (ga) and o
            fields.update({"gk": signed(dw + 2), "ga": self.aaw + 1, "o": 8})
        if has_bm:
            fields["base"] = baw   # bitmap: value address of the word's first set bit
        rec = data.StructLayout(fields)
        m.submodules.fifo = fifo = SyncFIFO(width=rec.size, depth=4)
        cur_valid = Signal()   # the scanner's word (below)
        q_valid = Signal()     # the scanner's picked pair (below)

        # ---------------- segment fetcher: issue stage ----------------
        row, cg = Signal(dw), Signal(dw)
        abase = Signal(self.aaw)
        roff = Signal(uw)   # row * row_len, kept incrementally (no multiplier)
        rs, re = Signal(uw), Signal(uw)
        wa = Signal(baw)
        sel = Signal(lg_wb)  # byte offset of a u32 in a row set-up word

        d_valid = Signal()
        dfields = {"end": 1, "lo": lg_w + 1, "hi": lg_w + 1, "kpos": signed(uw + 2),
                   "abase": self.aaw}
        if has_bm:
            # a bitmap row starts at a multiple of 8 bits (sec_b is 32-byte aligned and a row
            # holds ceil(K/G) groups of G >= 8 bits): the flag words shift by whole bytes
            dfields["sh"] = lg_wb
        if has_blk:
            dfields["half"] = lg_wb
        # data registers (d, e, e_data, e_aux, e_nz*, cur, q) are qualified by their valid
        # bits and are not reset: the data-plane reset's fan-out stays small
        d = Signal(data.StructLayout(dfields), reset_less=True)
        # the fetched word is registered (stage e) before its candidates are formed: the
        # block RAM's output (no output register) drives only flip-flops
        e_valid = Signal()
        e = Signal(data.StructLayout(dfields), reset_less=True)
        e_data = Signal(W, reset_less=True)
        e_push = Signal()
        # a fetched word leaves the data stage when the FIFO has room, even a word that will
        # be dropped: the fetcher's control never waits on the word's bytes (the memory output
        # -> candidates -> FIFO-full path was the tile's critical path)
        e_take = e_valid & fifo.w_rdy
        d_take = d_valid & (~e_valid | e_take)
        a_go = ~d_valid | d_take
        with m.If(e_take):
            m.d.sync += e_valid.eq(0)
        with m.If(d_take):
            m.d.sync += [e_valid.eq(1), e.eq(d), e_data.eq(self.scan_data)]
        m.d.comb += self.scan_en.eq(a_go)
        if self.has_aux:
            m.d.comb += self.aux_en.eq(a_go)

        # the words in the buffer, as a limit on the scanned word ``wa``: an nm index word sits
        # (sec_b - sec_a) / word_bytes words after its value word; registered (a cycle late,
        # never early: ``w_avail`` only grows during a layer)
        w_lim = Signal(baw + 2, name="w_lim")
        # the index words' distance, registered: the header's fields hold still from at least
        # two cycles before `start` (so no subtractor sits in front of `aux_addr`, the read
        # address of a block RAM that may be placed far away: the 64-MAC board's critical
        # path, session 23)
        gap = (self.sec_b - self.sec_a) >> lg_wb
        nm_gap = gap
        if has_nm and self.register_gap:
            nm_gap = Signal(gap.shape(), name="nm_gap")
            m.d.sync += nm_gap.eq(gap)
        w_gap = Mux(is_nm, nm_gap, 0) if has_nm else Const(0, 1)
        m.d.sync += w_lim.eq(Mux(self.w_all, (1 << (baw + 1)) - 1,
                                 Mux(self.w_avail > w_gap, self.w_avail - w_gap, 0)))
        w_ok = Signal(name="w_ok")
        m.d.comb += w_ok.eq(wa < w_lim)
        if has_bm:
            # bitmap skipping zero activations: the row's column group has its flag words
            nz_ready = Signal(name="nz_ready")
            m.d.sync += nz_ready.eq(~(is_bm & self.act_skip) | (cg < self.cg_avail))
            m.d.comb += w_ok.eq((wa < w_lim) & nz_ready)

        wlast = wa == ((re - 1) >> lg_u)
        kpos = Signal(signed(uw + 2))
        m.d.comb += kpos.eq((wa << lg_u).as_signed() - rs.as_signed())
        m.d.comb += self.scan_addr.eq(wa)
        if has_bm:
            nzbase = Signal(self.naw)
            vrun = Signal(baw)
            q = Signal(signed(self.naw + 2))
            m.d.comb += [q.eq(nzbase + (kpos >> lg_w)), self.nz_en.eq(a_go),
                         self.nz0_addr.eq(q), self.nz1_addr.eq(q + 1)]
        if has_blk:
            j, jend = Signal(baw), Signal(baw)
            rib = Signal(5)
            blk_col_addr = self.sec_b + (j << 1)
        if has_bm or has_blk:
            row_bits = (self.sec_a + (Mux(is_blk, row >> self.lg_b, row) << 2))
        one = Const(1, W + 1)

        def restart():
            s = [row.eq(self.lane), cg.eq(0), abase.eq(0),
                 roff.eq(_cmul(self.lane, self.row_len, uw))]
            return s + ([nzbase.eq(0)] if has_bm else [])

        with m.If(d_take):  # emptied; an issue below (later statement) refills it
            m.d.sync += d_valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += restart()
                    with m.If(self.lane < self.dim_m):
                        m.next = "ROW0"
                    with m.Else():
                        m.next = "DONE"
            with m.State("ROW0"):
                # the scan port is free during the row set-up: it reads the row's pointers
                if has_bm or has_blk:
                    m.d.comb += self.scan_addr.eq(row_bits >> lg_wb)
                # (bitmap and block read their row's pointers; dense and nm read nothing here)
                ptr_ok = ((((row_bits + 4) >> lg_wb) < w_lim) | ~(is_bm | is_blk)
                          if (has_bm or has_blk) else 1)
                with m.If(~d_valid & ptr_ok):
                    base = Mux(is_bm, self.sec_b << 3, self.sec_a) if has_bm else self.sec_a
                    m.d.sync += rs.eq(base + roff)
                    if has_bm or has_blk:
                        m.d.sync += sel.eq(row_bits[:lg_wb])
                    if has_blk:
                        m.d.sync += rib.eq(row & ((one << self.lg_b) - 1))
                    m.next = "ROW1"
            with m.State("ROW1"):
                m.d.sync += [re.eq(rs + self.row_len), wa.eq(rs >> lg_u)]
                if has_bm or has_blk:
                    u32 = self.scan_data.word_select(sel >> 2, 32)
                    m.d.comb += self.scan_addr.eq((row_bits + 4) >> lg_wb)
                    m.d.sync += sel.eq((row_bits + 4)[:lg_wb])
                if has_bm:
                    m.d.sync += vrun.eq(self.sec_c + u32)
                if has_blk:
                    m.d.sync += j.eq(u32)
                    with m.If(is_blk):
                        m.next = "ROW2"
                    with m.Else():
                        m.next = "SCAN"
                else:
                    m.next = "SCAN"
            if has_blk:
                with m.State("ROW2"):
                    u32 = self.scan_data.word_select(sel >> 2, 32)
                    m.d.sync += jend.eq(u32)
                    s = self.sec_c + (j << (self.lg_b << 1)) + (rib << self.lg_b)
                    m.d.sync += [rs.eq(s), re.eq(s + (one << self.lg_b)), wa.eq(s >> lg_wb)]
                    with m.If(j == u32):
                        m.next = "ENDQ"
                    with m.Else():
                        m.next = "SCAN"
            with m.State("SCAN"):
                if has_nm and has_blk:
                    m.d.comb += self.aux_addr.eq(Mux(is_blk, blk_col_addr >> lg_wb,
                                                     wa + nm_gap))
                elif has_blk:
                    m.d.comb += self.aux_addr.eq(blk_col_addr >> lg_wb)
                elif has_nm:
                    m.d.comb += self.aux_addr.eq(wa + nm_gap)
                with m.If(a_go & w_ok):
                    lo = Mux(wa == (rs >> lg_u), rs & ((one << lg_u) - 1), 0)
                    hi = Mux(wlast, ((re - 1) & ((one << lg_u) - 1)) + 1, one << lg_u)
                    m.d.sync += [d_valid.eq(1), d.end.eq(0), d.lo.eq(lo), d.hi.eq(hi),
                                 d.kpos.eq(kpos), d.abase.eq(abase)]
                    if has_bm:
                        m.d.sync += d.sh.eq(kpos[3:lg_w])
                    if has_blk:
                        m.d.sync += d.half.eq(blk_col_addr[:lg_wb])
                    with m.If(~wlast):
                        m.d.sync += wa.eq(wa + 1)
                    if has_blk:
                        with m.Elif(is_blk & (j + 1 != jend)):
                            s = rs + (one << (self.lg_b << 1))
                            m.d.sync += [j.eq(j + 1), rs.eq(s), re.eq(s + (one << self.lg_b)),
                                         wa.eq(s >> lg_wb)]
                    with m.Else():
                        m.next = "ENDQ"
            with m.State("ENDQ"):
                with m.If(a_go):
                    m.d.sync += [d_valid.eq(1), d.end.eq(1), d.abase.eq(abase)]
                    with m.If(cg + 1 < self.ncg):
                        m.d.sync += [cg.eq(cg + 1), abase.eq(abase + self.dim_k)]
                        if has_bm:
                            m.d.sync += nzbase.eq(nzbase + self.kw)
                        m.next = "ROW0"
                    with m.Else():
                        m.d.sync += [cg.eq(0), abase.eq(0), row.eq(row + self.rows),
                                     roff.eq(roff + _cmul(self.rows, self.row_len, uw))]
                        if has_bm:
                            m.d.sync += nzbase.eq(0)
                        with m.If(row + self.rows < self.dim_m):
                            m.next = "ROW0"
                        with m.Else():
                            m.next = "DONE"
            with m.State("DONE"):
                with m.If(self.start):
                    m.d.sync += restart()
                    with m.If(self.lane < self.dim_m):
                        m.next = "ROW0"
                with m.If(~d_valid & ~e_valid & ~fifo.r_rdy & ~cur_valid & ~q_valid
                          & ~self.start):
                    m.d.comb += self.done.eq(1)

        # ---------------- segment fetcher: data stage ----------------
        if self.has_aux:
            e_aux = Signal(W, reset_less=True)
            with m.If(d_take):
                m.d.sync += e_aux.eq(self.aux_data)
        if has_bm:
            e_nz0, e_nz1 = Signal(W, reset_less=True), Signal(W, reset_less=True)
            with m.If(d_take):
                m.d.sync += [e_nz0.eq(self.nz0_data), e_nz1.eq(self.nz1_data)]
        w_rec = Signal(rec)
        if ranged:
            m.d.comb += [w_rec.lo.eq(e.lo), w_rec.hi.eq(e.hi), e_push.eq(e.end | (e.hi > e.lo))]
        else:
            win = Signal(cw)
            m.d.comb += win.eq(((Const(1, cw + 1) << e.hi) - 1)
                               & ~((Const(1, cw + 1) << e.lo) - 1))
            cand = Signal(cw)
            m.d.comb += cand.eq(win)  # dense (and a format that is not built)
            m.d.comb += [w_rec.cand.eq(cand), e_push.eq(e.end | cand.any())]
        if has_nm or has_blk:
            nzb = Cat(*[e_data.word_select(i, 8).any() for i in range(WB)])
            with m.If(is_nm | is_blk):
                m.d.comb += cand.eq(nzb & win)
        m.d.comb += w_rec.data.eq(e_data)
        if has_bm:
            ones = Const((1 << W) - 1, W)
            actwin = (Cat(e_nz0, e_nz1) >> Cat(Const(0, 3), e.sh))[:W]
            mask = Signal(W)
            m.d.comb += mask.eq(e_data & win)
            with m.If(is_bm):
                m.d.comb += [cand.eq(mask & Mux(self.act_skip, actwin, ones)),
                             w_rec.data.eq(mask)]
            m.d.comb += w_rec.base.eq(vrun)
            with m.If(e_take & is_bm & ~e.end):
                m.d.sync += vrun.eq(vrun + _popcount(mask, W))
        if has_nm:
            m.d.comb += w_rec.aux.eq(e_aux)
        kbase = e.kpos
        if has_blk:
            blk_col = e_aux.word_select(e.half >> 1, 16)
            kbase = e.kpos + Mux(is_blk, blk_col << self.lg_b, 0)
        kb = Signal(signed(uw + 2))
        m.d.comb += kb.eq(kbase)
        if has_nm:
            g0 = Signal(signed(uw + 2))
            m.d.comb += [g0.eq(kb >> self.lg_n), w_rec.gk.eq(g0 << self.lg_m),
                         w_rec.ga.eq(e.abase + (g0 << self.lg_m)),
                         w_rec.o.eq(kb & ((Const(1, 9) << self.lg_n) - 1))]
        m.d.comb += [
            w_rec.end.eq(e.end), w_rec.kbase.eq(kb),
            w_rec.abase.eq(e.abase), w_rec.ak.eq(e.abase + kb),
            fifo.w_data.eq(w_rec), fifo.w_en.eq(e_valid & e_push),
        ]

        # ---------------- scanner ----------------
        # two stages: the pick (lowest candidate of the word -> `jj`, registered in `q`, with
        # the nm pick's k within its group pair), then
        # the pair's arithmetic from `q` (the byte selects and k / the activation address from
        # the record's precomputed bases: one short adder and one address adder), which feeds
        # the consumer's register.  One pair per cycle; `q` advances when the consumer takes.
        cur = Signal(rec, reset_less=True)
        first = Signal(init=1)
        if ranged:
            jj = cur.lo
            last = cur.lo + 1 >= cur.hi
        else:
            # the pick `jj` is a register: the lowest candidate of the word that `cur` will
            # hold, found a cycle ahead (of the FIFO's head word, or of `rem`, the candidates
            # left after this pick), so the pick's byte selects start from a register
            jj = Signal(range(max(2, cw)), name="jj", reset_less=True)
            rem = cur.cand & (cur.cand - 1)
            last = rem == 0
            jj_rem = _lowest(m, rem, cw, "jj_rem")
            jj_head = _lowest(m, rec(fifo.r_data).cand, cw, "jj_head")
        # q holds the word's record (without its candidates) beside the pick
        carried = [n for n in fields if n not in ("end", "cand", "lo", "hi")]
        qf = {"end": 1, "first": 1, "jj": len(jj), **{n: fields[n] for n in carried}}
        if has_nm:    # the pick's k within its group pair (nm), computed beside the pick
            qf["small"] = dw
        q = Signal(data.StructLayout(qf), reset_less=True)
        q_ready = ~q_valid | self.pairs.ready
        if has_nm:
            idx = cur.aux.word_select(jj[:lg_wb], 8)
            small = Signal(dw, name="nm_small")
            m.d.comb += small.eq((((cur.o + jj) >> self.lg_n) << self.lg_m) + idx)
        with m.If(self.pairs.ready):
            m.d.sync += q_valid.eq(0)
        with m.If(cur_valid & q_ready):
            m.d.sync += [q_valid.eq(1), q.end.eq(cur.end), q.first.eq(first), q.jj.eq(jj)]
            m.d.sync += [getattr(q, n).eq(getattr(cur, n)) for n in carried]
            if has_nm:
                m.d.sync += q.small.eq(small)
        p = self.pairs.payload
        k = q.kbase + q.jj
        aaddr = q.ak + q.jj
        if has_nm:
            k = Mux(is_nm, q.gk + q.small, k)
            aaddr = Mux(is_nm, q.ga + q.small, aaddr)
        if has_bm:
            below = q.data & ((Const(1, W + 1) << q.jj) - 1)[:W]
            m.d.comb += p.vaddr.eq(q.base + _popcount(below, W))
        m.d.comb += [
            self.pairs.valid.eq(q_valid),
            p.k.eq(k), p.w.eq(Mux(is_bm, 0, q.data.word_select(q.jj[:lg_wb], 8))),
            p.abase.eq(q.abase), p.aaddr.eq(aaddr),
            p.clear.eq(q.first), p.end.eq(q.end), p.empty.eq(q.first),
        ]
        take = Signal()
        with m.If(~cur_valid):
            m.d.comb += take.eq(1)
        with m.Elif(q_ready):
            with m.If(cur.end):
                m.d.sync += first.eq(1)
                m.d.comb += take.eq(1)
            with m.Else():
                m.d.sync += first.eq(0)
                with m.If(last):
                    m.d.comb += take.eq(1)
                with m.Else():
                    m.d.sync += (cur.lo.eq(cur.lo + 1) if ranged
                                 else [cur.cand.eq(rem), jj.eq(jj_rem)])
        with m.If(take):
            m.d.comb += fifo.r_en.eq(1)
            m.d.sync += cur_valid.eq(fifo.r_rdy)
            with m.If(fifo.r_rdy):
                m.d.sync += cur.eq(fifo.r_data)
                if not ranged:
                    m.d.sync += jj.eq(jj_head)
        return m
