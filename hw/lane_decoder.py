"""Zero-skipping front end of one array lane: compressed weight rows -> effectual pairs.

See docs/tile.md for the micro-architecture and docs/spec.md section 3 for the image layout.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

__all__ = ["LaneDecoder", "pair_layout"]

DENSE, BITMAP, BLOCK, NM = 0, 1, 2, 3


def pair_layout(*, byte_addr_width: int, act_addr_width: int, dim_width: int = 16):
    """Payload of the decoder's pair stream (one effectual pair or an end-of-row token)."""
    return data.StructLayout({
        "k": dim_width,                 # K index of the pair
        "vaddr": byte_addr_width,       # byte address of the weight value in the image
        "abase": act_addr_width,        # activation buffer base of the column group (cg * K)
        "m": dim_width,                 # output row
        "cg": dim_width,                # column group
        "clear": 1,                     # first pair of a row: starts a new sum
        "end": 1,                       # end-of-row token (no MAC)
        "empty": 1,                     # with end: the row had no effectual pair
    })


def _lowest(m, vec, width, name):
    j = Signal(range(max(2, width)), name=name)
    for i in reversed(range(width)):
        with m.If(vec[i]):
            m.d.comb += j.eq(i)
    return j


def _popcount(vec, width):
    return sum((vec[i] for i in range(width)), Const(0, range(width + 1)))


class LaneDecoder(wiring.Component):
    """Turns the lane's weight rows (``m = lane, lane + rows, ...``) into effectual pairs.

    Two decoupled stages.  The *segment fetcher* walks the row's stored data one memory word
    per cycle (dense and nm: the row's value/slot bytes; bitmap: the row's mask bits, 8 x
    ``word_bytes`` of them per word; block: the row's ``B`` bytes of every stored block),
    computes the word's candidate vector (all bytes for dense, non-zero bytes for nm/block,
    set mask bits for bitmap, ANDed with the activation non-zero flags when ``act_skip``) and
    pushes only non-empty words into a 4-entry FIFO, so empty words never reach the scanner.
    The *scanner* emits the lowest candidate of its word every cycle (a priority encoder), so a
    lane issues one effectual pair per cycle while the fetcher skips empty words in parallel.
    Each row of each column group ends with one ``end`` token.  Row set-up costs 2 (dense, nm,
    bitmap) or 3 (block) fetcher cycles, hidden behind the scanner when the previous row has
    enough pairs.  Stall: the scanner waits while ``pairs.ready`` is low.

    Parameters
    ----------
    lane, rows : int
        This lane's index and the number of lanes.
    word_bytes : int
        Bytes per weight memory word (a power of two, 4..32).
    byte_addr_width, act_addr_width, nz_addr_width : int
        Address widths of the weight image (bytes), activation buffer and its non-zero flags.

    Members
    -------
    start : In(1)
        Pulse: begin the layer with the operands below (held stable until ``done``).
    done : Out(1)
        Every row of this lane has been emitted.
    pairs : Out(stream.Signature(pair_layout(...)))
        Effectual pairs and end tokens.
    scan_*, aux_*, nz0_*, nz1_* :
        Read ports (address, enable, data) on the weight image (scan, aux) and on the
        activation non-zero flag words (nz0, nz1).
    """

    def __init__(self, *, lane: int, rows: int, word_bytes: int, byte_addr_width: int,
                 act_addr_width: int, nz_addr_width: int, dim_width: int = 16):
        if word_bytes not in (4, 8, 16, 32):
            raise ValueError(f"word_bytes must be one of 4, 8, 16, 32, not {word_bytes!r}")
        if not 0 <= lane < rows:
            raise ValueError(f"lane must be between 0 and {rows - 1}, not {lane!r}")
        self.lane, self.rows, self.wb = lane, rows, word_bytes
        self.W = 8 * word_bytes
        self.lg_wb = word_bytes.bit_length() - 1
        self.baw, self.aaw, self.naw, self.dw = (byte_addr_width, act_addr_width, nz_addr_width,
                                                 dim_width)
        waw = byte_addr_width - self.lg_wb
        super().__init__({
            "start": In(1), "done": Out(1),
            "fmt": In(2), "act_skip": In(1),
            "lg_n": In(3), "lg_m": In(3), "lg_b": In(3),
            "dim_m": In(dim_width), "dim_k": In(dim_width), "ncg": In(dim_width),
            "row_len": In(byte_addr_width + 3), "kw": In(nz_addr_width),
            "sec_a": In(byte_addr_width), "sec_b": In(byte_addr_width),
            "sec_c": In(byte_addr_width),
            "pairs": Out(stream.Signature(pair_layout(byte_addr_width=byte_addr_width,
                                                      act_addr_width=act_addr_width,
                                                      dim_width=dim_width))),
            "scan_addr": Out(waw), "scan_en": Out(1), "scan_data": In(self.W),
            "aux_addr": Out(waw), "aux_en": Out(1), "aux_data": In(self.W),
            "nz0_addr": Out(nz_addr_width), "nz1_addr": Out(nz_addr_width), "nz_en": Out(1),
            "nz0_data": In(self.W), "nz1_data": In(self.W),
        })

    def elaborate(self, platform):
        m = Module()
        W, WB, lg_wb, baw, dw = self.W, self.wb, self.lg_wb, self.baw, self.dw
        lg_w = lg_wb + 3
        uw = baw + 3  # unit (byte or bit) address width
        fmt = self.fmt
        is_bm = fmt == BITMAP
        lg_u = Mux(is_bm, lg_w, lg_wb)

        rec = data.StructLayout({
            "end": 1, "cand": W, "aux": W, "kbase": signed(uw + 2), "base": baw,
            "m": dw, "cg": dw, "abase": self.aaw,
        })
        m.submodules.fifo = fifo = SyncFIFO(width=rec.size, depth=4)

        # ---------------- segment fetcher: issue stage ----------------
        row, cg = Signal(dw), Signal(dw)
        abase, nzbase = Signal(self.aaw), Signal(self.naw)
        rs, re = Signal(uw), Signal(uw)
        wa = Signal(baw)
        j, jend = Signal(baw), Signal(baw)
        sel = Signal(lg_wb)  # byte offset of a u32 in the aux word
        rib = Signal(5)
        vrun = Signal(baw)

        d_valid = Signal()
        d = Signal(data.StructLayout({
            "end": 1, "lo": lg_w + 1, "hi": lg_w + 1, "kpos": signed(uw + 2),
            "wbyte": baw, "half": lg_wb, "sh": lg_w, "m": dw, "cg": dw, "abase": self.aaw}))
        d_push = Signal()
        d_take = d_valid & (~d_push | fifo.w_rdy)
        a_go = ~d_valid | d_take
        m.d.comb += [self.scan_en.eq(a_go), self.aux_en.eq(a_go), self.nz_en.eq(a_go)]

        wlast = wa == ((re - 1) >> lg_u)
        kpos = Signal(signed(uw + 2))
        m.d.comb += kpos.eq((wa << lg_u).as_signed() - rs.as_signed())
        q = Signal(signed(self.naw + 2))
        m.d.comb += q.eq(nzbase + (kpos >> lg_w))
        m.d.comb += [self.scan_addr.eq(wa), self.nz0_addr.eq(q), self.nz1_addr.eq(q + 1)]
        blk_col_addr = self.sec_b + (j << 1)
        row_bits = (self.sec_a + (Mux(fmt == BLOCK, row >> self.lg_b, row) << 2))

        with m.If(d_take):  # emptied; an issue below (later statement) refills it
            m.d.sync += d_valid.eq(0)
        one = Const(1, W + 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [row.eq(self.lane), cg.eq(0), abase.eq(0), nzbase.eq(0)]
                    with m.If(self.lane < self.dim_m):
                        m.next = "ROW0"
                    with m.Else():
                        m.next = "DONE"
            with m.State("ROW0"):
                m.d.comb += self.aux_addr.eq(row_bits >> lg_wb)
                with m.If(~d_valid):
                    base = Mux(is_bm, self.sec_b << 3, self.sec_a)
                    m.d.sync += [rs.eq(base + row * self.row_len),
                                 sel.eq(row_bits[:lg_wb]),
                                 rib.eq(row & ((one << self.lg_b) - 1))]
                    m.next = "ROW1"
            with m.State("ROW1"):
                u32 = self.aux_data.word_select(sel >> 2, 32)
                m.d.comb += self.aux_addr.eq((row_bits + 4) >> lg_wb)
                m.d.sync += [re.eq(rs + self.row_len), wa.eq(rs >> lg_u)]
                m.d.sync += sel.eq((row_bits + 4)[:lg_wb])
                m.d.sync += vrun.eq(self.sec_c + u32)
                m.d.sync += j.eq(u32)
                with m.If(fmt == BLOCK):
                    m.next = "ROW2"
                with m.Else():
                    m.next = "SCAN"
            with m.State("ROW2"):
                u32 = self.aux_data.word_select(sel >> 2, 32)
                m.d.sync += jend.eq(u32)
                s = self.sec_c + (j << (self.lg_b << 1)) + (rib << self.lg_b)
                m.d.sync += [rs.eq(s), re.eq(s + (one << self.lg_b)), wa.eq(s >> lg_wb)]
                with m.If(j == u32):
                    m.next = "ENDQ"
                with m.Else():
                    m.next = "SCAN"
            with m.State("SCAN"):
                m.d.comb += self.aux_addr.eq(Mux(fmt == BLOCK, blk_col_addr >> lg_wb,
                                                 wa + ((self.sec_b - self.sec_a) >> lg_wb)))
                with m.If(a_go):
                    lo = Mux(wa == (rs >> lg_u), rs & ((one << lg_u) - 1), 0)
                    hi = Mux(wlast, ((re - 1) & ((one << lg_u) - 1)) + 1, one << lg_u)
                    m.d.sync += [d_valid.eq(1), d.end.eq(0), d.lo.eq(lo), d.hi.eq(hi),
                                 d.kpos.eq(kpos), d.wbyte.eq(wa << lg_wb),
                                 d.half.eq(blk_col_addr[:lg_wb]), d.sh.eq(kpos[:lg_w]),
                                 d.m.eq(row), d.cg.eq(cg), d.abase.eq(abase)]
                    with m.If(~wlast):
                        m.d.sync += wa.eq(wa + 1)
                    with m.Elif((fmt == BLOCK) & (j + 1 != jend)):
                        s = rs + (one << (self.lg_b << 1))
                        m.d.sync += [j.eq(j + 1), rs.eq(s), re.eq(s + (one << self.lg_b)),
                                     wa.eq(s >> lg_wb)]
                    with m.Else():
                        m.next = "ENDQ"
            with m.State("ENDQ"):
                with m.If(a_go):
                    m.d.sync += [d_valid.eq(1), d.end.eq(1), d.m.eq(row), d.cg.eq(cg),
                                 d.abase.eq(abase)]
                    with m.If(cg + 1 < self.ncg):
                        m.d.sync += [cg.eq(cg + 1), abase.eq(abase + self.dim_k),
                                     nzbase.eq(nzbase + self.kw)]
                        m.next = "ROW0"
                    with m.Else():
                        m.d.sync += [cg.eq(0), abase.eq(0), nzbase.eq(0),
                                     row.eq(row + self.rows)]
                        with m.If(row + self.rows < self.dim_m):
                            m.next = "ROW0"
                        with m.Else():
                            m.next = "DONE"
            with m.State("DONE"):
                with m.If(self.start):
                    m.d.sync += [row.eq(self.lane), cg.eq(0), abase.eq(0), nzbase.eq(0)]
                    with m.If(self.lane < self.dim_m):
                        m.next = "ROW0"
                with m.If(~d_valid & ~fifo.r_rdy & ~self.pairs.valid & ~self.start):
                    m.d.comb += self.done.eq(1)

        # ---------------- segment fetcher: data stage ----------------
        ones = Const((1 << W) - 1, W)
        win = Signal(W)
        m.d.comb += win.eq(((Const(1, W + 1) << d.hi) - 1) & ~((Const(1, W + 1) << d.lo) - 1))
        nzb = Cat(*[self.scan_data.word_select(i, 8).any() for i in range(WB)])
        actwin = (Cat(self.nz0_data, self.nz1_data) >> d.sh)[:W]
        mask = Signal(W)
        cand = Signal(W)
        m.d.comb += mask.eq(self.scan_data & win)
        with m.Switch(fmt):
            with m.Case(DENSE):
                m.d.comb += cand.eq(win)
            with m.Case(BITMAP):
                m.d.comb += cand.eq(mask & Mux(self.act_skip, actwin, ones))
            with m.Default():
                m.d.comb += cand.eq(nzb & win)
        blk_col = self.aux_data.word_select(d.half >> 1, 16)
        w_rec = Signal(rec)
        m.d.comb += [
            w_rec.end.eq(d.end), w_rec.cand.eq(cand),
            w_rec.aux.eq(Mux(is_bm, mask, self.aux_data)),
            w_rec.kbase.eq(d.kpos + Mux(fmt == BLOCK, blk_col << self.lg_b, 0)),
            w_rec.base.eq(Mux(is_bm, vrun, d.wbyte)),
            w_rec.m.eq(d.m), w_rec.cg.eq(d.cg), w_rec.abase.eq(d.abase),
            d_push.eq(d.end | cand.any()),
            fifo.w_data.eq(w_rec), fifo.w_en.eq(d_valid & d_push),
        ]
        with m.If(d_take & is_bm & ~d.end):
            m.d.sync += vrun.eq(vrun + _popcount(mask, W))

        # ---------------- scanner ----------------
        cur = Signal(rec)
        cur_valid = Signal()
        first = Signal(init=1)
        jj = _lowest(m, cur.cand, W, "jj")
        rem = cur.cand & (cur.cand - 1)
        below = cur.aux & ((Const(1, W + 1) << jj) - 1)[:W]
        idx = cur.aux.word_select(jj[:lg_wb], 8)
        slot = (cur.kbase + jj).as_unsigned()
        k_nm = ((slot >> self.lg_n) << self.lg_m) + idx
        p = self.pairs.payload
        m.d.comb += [
            self.pairs.valid.eq(cur_valid),
            p.k.eq(Mux(fmt == NM, k_nm, cur.kbase + jj)),
            p.vaddr.eq(Mux(is_bm, cur.base + _popcount(below, W), cur.base + jj)),
            p.abase.eq(cur.abase), p.m.eq(cur.m), p.cg.eq(cur.cg),
            p.clear.eq(first), p.end.eq(cur.end), p.empty.eq(first),
        ]
        take = Signal()
        with m.If(~cur_valid):
            m.d.comb += take.eq(1)
        with m.Elif(self.pairs.ready):
            with m.If(cur.end):
                m.d.sync += first.eq(1)
                m.d.comb += take.eq(1)
            with m.Else():
                m.d.sync += first.eq(0)
                with m.If(rem == 0):
                    m.d.comb += take.eq(1)
                with m.Else():
                    m.d.sync += cur.cand.eq(rem)
        with m.If(take):
            m.d.comb += fifo.r_en.eq(1)
            m.d.sync += cur_valid.eq(fifo.r_rdy)
            with m.If(fifo.r_rdy):
                m.d.sync += cur.eq(fifo.r_data)
        return m
