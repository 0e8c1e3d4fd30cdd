"""amaranth.sim tests of CsrBank (AXI4-Lite register bank) against the hw.regmap definition."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator
from sparsemac.hw.config import FORMATS, AcceleratorConfig
from sparsemac.hw.top.csr_bank import CsrBank
from sparsemac.hw.top.regmap import REGMAP_ID, register, registers

OKAY, SLVERR = 0, 2


class Lite:
    """A sequential AXI4-Lite master inside one testbench coroutine; logs ``watch`` per cycle."""

    def __init__(self, ctx, dut, rng, watch=()):
        self.ctx, self.dut, self.rng, self.watch = ctx, dut, rng, watch
        self.trace = []

    async def tick(self):
        await self.ctx.tick()
        self.trace.append(tuple(int(self.ctx.get(w)) for w in self.watch))

    async def write(self, addr, data, strb=0xF):
        ctx, a = self.ctx, self.dut.s_axil
        ctx.set(a.bready, 0)
        ctx.set(a.awaddr, addr)
        ctx.set(a.wdata, data)
        ctx.set(a.wstrb, strb)
        skew = int(self.rng.integers(0, 3))   # AW before W, or W before AW
        first, second = (a.awvalid, a.wvalid) if self.rng.random() < 0.5 else (a.wvalid,
                                                                                 a.awvalid)
        ctx.set(first, 1)
        for _ in range(skew):
            assert not ctx.get(a.awready) and not ctx.get(a.wready), "took half a write"
            await self.tick()
        ctx.set(second, 1)
        while True:
            taken = ctx.get(a.awready)
            assert taken == ctx.get(a.wready)
            await self.tick()
            if taken:
                break
        ctx.set(a.awvalid, 0)
        ctx.set(a.wvalid, 0)
        for _ in range(int(self.rng.integers(0, 3))):
            await self.tick()
        ctx.set(a.bready, 1)
        while not ctx.get(a.bvalid):
            await self.tick()
        resp = ctx.get(a.bresp)
        await self.tick()
        ctx.set(a.bready, 0)
        return resp

    async def read(self, addr):
        ctx, a = self.ctx, self.dut.s_axil
        ctx.set(a.araddr, addr)
        ctx.set(a.arvalid, 1)
        ctx.set(a.rready, 0)
        while True:
            taken = ctx.get(a.arready)
            await self.tick()
            if taken:
                break
        self.ar_tick = len(self.trace)   # cycle count at the AR handshake
        ctx.set(a.arvalid, 0)
        for _ in range(int(self.rng.integers(0, 3))):
            await self.tick()
        ctx.set(a.rready, 1)
        while not ctx.get(a.rvalid):
            await self.tick()
        data, resp = ctx.get(a.rdata), ctx.get(a.rresp)
        await self.tick()
        ctx.set(a.rready, 0)
        return data, resp


def simulate(dut, body):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(body)
    sim.run()


def field(reg_value, reg, name):
    f = next(f for f in reg.fields if f.name == name)
    return (reg_value >> f.lsb) & ((1 << f.width) - 1)


@pytest.mark.parametrize("preset", ["tiny", "default", "large"])
def test_constants_describe_the_build(seed, rng, preset):
    cfg = AcceleratorConfig.preset(preset)
    dut = CsrBank(cfg)
    got = {}

    async def body(ctx):
        lite = Lite(ctx, dut, rng)
        for r in registers(cfg):
            if r.kind == "const":
                got[r.name] = await lite.read(r.offset)

    simulate(dut, body)
    assert all(resp == OKAY for _, resp in got.values()), f"seed={seed}: {got}"
    v = {k: d for k, (d, _) in got.items()}
    assert v["ID"] == REGMAP_ID == int.from_bytes(b"SPMC", "little")
    arr, fm, wid = register(cfg, "CFG_ARRAY"), register(cfg, "CFG_FORMATS"), \
        register(cfg, "CFG_WIDTHS")
    assert (field(v["CFG_ARRAY"], arr, "rows"), field(v["CFG_ARRAY"], arr, "cols"),
            field(v["CFG_ARRAY"], arr, "tiles")) == (cfg.rows, cfg.cols, cfg.tiles)
    fmts = field(v["CFG_FORMATS"], fm, "formats")
    assert [f for i, f in enumerate(FORMATS) if fmts >> i & 1] == list(cfg.formats)
    assert field(v["CFG_FORMATS"], fm, "group_size") == cfg.group_size
    assert field(v["CFG_FORMATS"], fm, "nm_max_m") == cfg.nm_max_m
    assert field(v["CFG_FORMATS"], fm, "lut") == int(cfg.lut_enabled)
    assert field(v["CFG_WIDTHS"], wid, "axi_bytes") * 8 == cfg.axi_data_width
    assert field(v["CFG_WIDTHS"], wid, "acc_width") == cfg.acc_width
    buf = register(cfg, "CFG_BUFFERS")
    assert 1 << field(v["CFG_BUFFERS"], buf, "weight_buf_log2") == cfg.weight_buf_depth
    dma = register(cfg, "CFG_DMA")
    assert 1 << field(v["CFG_DMA"], dma, "max_burst_log2") == cfg.axi_max_burst
    assert field(v["CFG_DMA"], dma, "max_outstanding") == cfg.max_outstanding


def test_rw_ro_and_errors(seed, rng):
    cfg = AcceleratorConfig()
    dut = CsrBank(cfg)
    regs = registers(cfg)
    rw = [r for r in regs if r.kind == "rw"]
    ro = [r for r in regs if r.kind == "ro"]
    model = {r.name: 0 for r in rw}
    fails = []

    async def body(ctx):
        lite = Lite(ctx, dut, rng)
        for _ in range(60):
            r = rw[int(rng.integers(len(rw)))]
            val, strb = int(rng.integers(0, 1 << 32)), int(rng.integers(0, 16))
            resp = await lite.write(r.offset, val, strb)
            mask = sum(0xFF << 8 * i for i in range(4) if strb >> i & 1)
            fmask = sum(f.mask for f in r.fields)
            model[r.name] = ((model[r.name] & ~mask) | (val & mask)) & fmask
            port = int(ctx.get(getattr(dut, r.port).as_value()))
            r2 = rw[int(rng.integers(len(rw)))]
            data, resp2 = await lite.read(r2.offset)
            if (resp, resp2, port, data) != (OKAY, OKAY, model[r.name], model[r2.name]):
                fails.append((r.name, r2.name, resp, resp2, hex(port), hex(data),
                              hex(model[r.name]), hex(model[r2.name])))
        for r in ro:
            val = int(rng.integers(0, 1 << 32))
            ctx.set(getattr(dut, r.port).as_value(), val)
            data, resp = await lite.read(r.offset)
            exp = val & sum(f.mask for f in r.fields)
            if (data, resp) != (exp, OKAY):
                fails.append((r.name, hex(data), resp, hex(exp)))
            wresp = await lite.write(r.offset, 0xFFFFFFFF)
            if wresp != SLVERR:
                fails.append((r.name, "RO write answered", wresp))
        snapshot = {r.name: int(ctx.get(getattr(dut, r.port).as_value())) for r in rw}
        past = max(r.offset for r in regs) + 4      # one word past the last register
        for addr in (0x3C, 0x4C, 0x7C, past, 0xFFC, 0x00, 0x80):   # unmapped or read-only
            if await lite.write(addr, 0xFFFFFFFF) != SLVERR:
                fails.append(("write not SLVERR", hex(addr)))
        for addr in (0x3C, 0x4C, 0x7C, past, 0xFFC):
            if (await lite.read(addr)) != (0, SLVERR):
                fails.append(("read not SLVERR", hex(addr)))
        after = {r.name: int(ctx.get(getattr(dut, r.port).as_value())) for r in rw}
        if after != snapshot:
            fails.append(("registers changed by rejected writes", snapshot, after))

    simulate(dut, body)
    assert not fails, f"seed={seed}: {fails[:4]}"


def test_control_pulses_irq_and_w1c(seed, rng):
    cfg = AcceleratorConfig()
    dut = CsrBank(cfg)
    ctl, irs, ire = (register(cfg, n) for n in ("CONTROL", "IRQ_STATUS", "IRQ_ENABLE"))
    fails = []

    async def body(ctx):
        lite = Lite(ctx, dut, rng, watch=(dut.control.start, dut.control.soft_reset, dut.irq))
        for bit, name in ((0, "start"), (1, "soft_reset")):
            lite.trace.clear()
            await lite.write(ctl.offset, 1 << bit)
            col = [t[bit] for t in lite.trace]
            if col.count(1) != 1:
                fails.append((name, "pulse trace", col))
            await lite.write(ctl.offset, 1 << bit, strb=0b0010)  # strobe off: no pulse
            if any(t[bit] for t in lite.trace[len(col):]):
                fails.append((name, "pulsed without its byte strobe"))
        if (await lite.read(ctl.offset)) != (0, OKAY):
            fails.append("CONTROL does not read 0")
        # w1c: set error, read, irq only when enabled, clear
        ctx.set(dut.irq_status_set.error, 1)
        await lite.tick()
        ctx.set(dut.irq_status_set.error, 0)
        await lite.tick()
        if (await lite.read(irs.offset)) != (0b10, OKAY) or ctx.get(dut.irq):
            fails.append("error bit not set or irq without enable")
        await lite.write(ire.offset, 0b10)
        await lite.tick()
        if not ctx.get(dut.irq):
            fails.append("irq not raised after enable")
        # a set pulse in the same cycle as the clear: set wins
        ctx.set(dut.irq_status_set.done, 1)
        await lite.write(irs.offset, 0b01)   # clear done while it is being set
        ctx.set(dut.irq_status_set.done, 0)
        if (await lite.read(irs.offset))[0] & 1 != 1:
            fails.append("a set in the cycle of a clear was lost")
        await lite.write(irs.offset, 0b11)
        await lite.tick()
        if (await lite.read(irs.offset)) != (0, OKAY) or ctx.get(dut.irq):
            fails.append("write-1-to-clear failed")

    simulate(dut, body)
    assert not fails, f"seed={seed}: {fails}"


def test_counters_64bit_atomic_and_clear(seed, rng):
    cfg = AcceleratorConfig()
    dut = CsrBank(cfg)
    br = register(cfg, "BYTES_READ_LO")
    cyc = register(cfg, "CYCLES_LO")
    ctl = register(cfg, "CONTROL")
    fails = []

    async def body(ctx):
        lite = Lite(ctx, dut, rng)
        # force the byte counter close to a 32-bit carry by incrementing fast
        ctx.set(dut.bytes_read_inc, 8)
        total = 0
        for _ in range(40):
            await lite.tick()
        ctx.set(dut.bytes_read_inc, 0)
        await lite.tick()
        total = 8 * 40
        lo, _ = await lite.read(br.offset)
        hi, _ = await lite.read(br.offset + 4)
        if (hi << 32 | lo) != total:
            fails.append(("bytes_read", hi << 32 | lo, total))
        # cycles counts every cycle: two reads some cycles apart differ by the cycles between
        c0, _ = await lite.read(cyc.offset)
        n0 = lite.ar_tick
        c1, _ = await lite.read(cyc.offset)
        if c1 - c0 != lite.ar_tick - n0:
            fails.append(("cycles", c1 - c0, lite.ar_tick - n0))
        await lite.write(ctl.offset, 0b100)
        c2, _ = await lite.read(cyc.offset)
        b2, _ = await lite.read(br.offset)
        if not c2 < 10 or b2 != 0:
            fails.append(("perf_clear", c2, b2))

    simulate(dut, body)
    assert not fails, f"seed={seed}: {fails}"


def test_counter_hi_snapshot(seed, rng):
    """Reading LO snapshots HI: a carry between the two reads does not tear the value."""
    from amaranth.hdl import Fragment

    cfg = AcceleratorConfig()
    dut = CsrBank(cfg)
    frag = Fragment.get(dut, None)   # elaborate once, to reach the counter signal by name
    counter = next(s for s in _lhs_signals(frag) if s.name == "cycles_q")
    cyc = register(cfg, "CYCLES_LO")
    fails = []

    async def body(ctx):
        lite = Lite(ctx, dut, rng)
        ctx.set(counter, (5 << 32) | 0xFFFFFFF0)   # just below a carry
        lo, _ = await lite.read(cyc.offset)
        for _ in range(40):
            await lite.tick()
        hi, _ = await lite.read(cyc.offset + 4)
        now = ctx.get(counter)
        if hi != 5 or lo < 0xFFFFFFF0 or now >> 32 != 6:
            fails.append((hex(hi), hex(lo), hex(now)))

    sim = Simulator(frag)
    sim.add_clock(1e-8)
    sim.add_testbench(body)
    sim.run()
    assert not fails, f"seed={seed}: torn 64-bit read {fails}"


def _lhs_signals(frag):
    for stmts in frag.statements.values():
        for st in stmts:
            yield from st._lhs_signals()
    for sub, *_ in frag.subfragments:
        yield from _lhs_signals(sub)


def test_parameter_errors():
    with pytest.raises(ValueError, match=r"^addr_width must be between 8 and 32, not 4$"):
        CsrBank(AcceleratorConfig(), addr_width=4)
    with pytest.raises(TypeError, match=r"^addr_width must be an integer, not 12.0$"):
        CsrBank(AcceleratorConfig(), addr_width=12.0)


@pytest.mark.parametrize("when", [-1, 0, 1])
def test_w1c_set_and_clear_race(seed, rng, when):
    """Every bit of every w1c register: a one-cycle ``<reg>_set`` pulse in the cycle before
    the clearing write is taken (``when=-1``: the clear wins, the bit reads 0), in exactly that
    cycle (``0``: the set wins, the bit reads 1 and, enabled, raises ``irq``) or in the cycle
    after (``1``: the bit reads 1)."""
    cfg = AcceleratorConfig()
    dut = CsrBank(cfg)
    w1c = [r for r in registers(cfg) if r.kind == "w1c"]
    assert w1c, "the register map has no w1c register"
    fails = []

    async def body(ctx):
        lite = Lite(ctx, dut, rng)
        a = dut.s_axil
        for r in w1c:
            port = getattr(dut, f"{r.port}_set")
            enable = register(cfg, r.name.replace("STATUS", "ENABLE"))
            for f in r.fields:
                # every bit set, then enabled, then the race on bit f
                await lite.write(enable.offset, 0)
                ctx.set(port.as_value(), _all(r))
                await lite.tick()
                ctx.set(port.as_value(), 0)
                await lite.write(enable.offset, f.mask)
                ctx.set(a.awaddr, r.offset)
                ctx.set(a.wdata, f.mask)
                ctx.set(a.wstrb, 0xF)
                ctx.set(a.bready, 1)
                if when == -1:
                    ctx.set(getattr(port, f.name), 1)
                    await lite.tick()
                    ctx.set(getattr(port, f.name), 0)
                ctx.set(a.awvalid, 1)
                ctx.set(a.wvalid, 1)
                assert ctx.get(a.awready) and ctx.get(a.wready), "write not taken at once"
                if when == 0:
                    ctx.set(getattr(port, f.name), 1)     # exactly the cycle of the clear
                await lite.tick()
                ctx.set(getattr(port, f.name), 0)
                ctx.set(a.awvalid, 0)
                ctx.set(a.wvalid, 0)
                if when == 1:
                    ctx.set(getattr(port, f.name), 1)
                    await lite.tick()
                    ctx.set(getattr(port, f.name), 0)
                for _ in range(3):
                    await lite.tick()
                want = 0 if when == -1 else 1
                got = field((await lite.read(r.offset))[0], r, f.name)
                if got != want:
                    fails.append(f"{r.name}.{f.name}: set {when:+d} cycle(s) from the clear: "
                                 f"reads {got}, expected {want}")
                if bool(ctx.get(dut.irq)) != bool(want):
                    fails.append(f"{r.name}.{f.name}: irq {int(ctx.get(dut.irq))} with the "
                                 f"bit at {want} and enabled")
                await lite.write(r.offset, 0xFFFFFFFF)           # clean up

    simulate(dut, body)
    assert not fails, f"seed={seed}: {fails}"


def _all(reg):
    return sum(f.mask for f in reg.fields)
