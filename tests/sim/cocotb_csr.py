"""cocotb tests of CsrBank through cocotbext-axi's AxiLiteMaster (random pauses on all channels).

The config comes from ``SPARSEMAC_CFG`` (``sim.tb.base.config_from_env``), the seed from the
run.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge
from sparsemac.hw.config import FORMATS
from sparsemac.hw.top.regmap import REGMAP_ID, REGMAP_VERSION, register, registers
from sparsemac.sim.tb.axi import AxiTB
from sparsemac.sim.tb.base import config_from_env, run_seed

SEED = run_seed()
CFG = config_from_env()
REGS = registers(CFG)
OKAY, SLVERR = 0, 2


class TB(AxiTB):
    """CsrBank behind an ``AxiLiteMaster`` with pauses (30 %) on all five channels."""

    pause_period = 53

    def __init__(self, dut):
        super().__init__(dut, seed=SEED, backpressure=0.3)
        self.m = self.add_axil_master("s_axil_")
        self.set_stall(channels=self.channels(lite_data=True))
        self.pulses = {"start": 0, "soft_reset": 0, "perf_clear": 0}
        cocotb.start_soon(self._count_pulses())

    async def _count_pulses(self):
        ctl = register(CFG, "CONTROL")
        while True:
            await RisingEdge(self.dut.clk)
            await ReadOnly()
            v = int(self.dut.control.value)
            for f in ctl.fields:
                self.pulses[f.name] += v >> f.lsb & 1

    def quiet_inputs(self):
        d = self.dut
        out = []
        for r in REGS:
            if r.kind == "ro":
                out.append(getattr(d, r.port))
            if r.kind == "w1c":
                out.append(getattr(d, f"{r.port}_set"))
            if r.kind == "cnt_lo" and r.inc_width:
                out.append(getattr(d, f"{r.counter}_inc"))
        return out

    async def read(self, addr):
        r = await self.m.read(addr, 4)
        return int.from_bytes(r.data, "little"), int(r.resp)

    async def write(self, addr, value, nbytes=4):
        r = await self.m.write(addr, value.to_bytes(nbytes, "little"))
        return int(r.resp)


def fields_of(reg, value):
    return {f.name: value >> f.lsb & ((1 << f.width) - 1) for f in reg.fields}


@cocotb.test()
async def identity_and_build_parameters(dut):
    tb = TB(dut)
    await tb.reset()
    v = {}
    for r in REGS:
        if r.kind == "const":
            v[r.name], resp = await tb.read(r.offset)
            assert resp == OKAY, f"{r.name}: resp {resp}"
    assert v["ID"] == REGMAP_ID
    ver = fields_of(register(CFG, "VERSION"), v["VERSION"])
    assert (ver["major"], ver["minor"], ver["patch"]) == REGMAP_VERSION
    arr = fields_of(register(CFG, "CFG_ARRAY"), v["CFG_ARRAY"])
    assert (arr["rows"], arr["cols"], arr["tiles"]) == (CFG.rows, CFG.cols, CFG.tiles), arr
    fm = fields_of(register(CFG, "CFG_FORMATS"), v["CFG_FORMATS"])
    assert tuple(f for i, f in enumerate(FORMATS) if fm["formats"] >> i & 1) == CFG.formats
    assert (fm["group_size"], fm["block_size"], fm["nm_max_m"], fm["lut"]) == (
        CFG.group_size, CFG.block_size, CFG.nm_max_m, int(CFG.lut_enabled))
    wd = fields_of(register(CFG, "CFG_WIDTHS"), v["CFG_WIDTHS"])
    assert (wd["acc_width"], wd["axi_bytes"] * 8, wd["axi_addr_width"]) == (
        CFG.acc_width, CFG.axi_data_width, CFG.axi_addr_width)


@cocotb.test()
async def rw_registers_with_byte_writes(dut):
    tb = TB(dut)
    await tb.reset()
    rw = [r for r in REGS if r.kind == "rw"]
    model = {r.name: 0 for r in rw}
    for _ in range(80):
        r = tb.rng.choice(rw)
        nbytes = tb.rng.choice([1, 2, 4])
        off = tb.rng.randrange(0, 5 - nbytes) if nbytes < 4 else 0
        val = tb.rng.randrange(1 << 8 * nbytes)
        assert await tb.write(r.offset + off, val, nbytes) == OKAY
        mask = ((1 << 8 * nbytes) - 1) << 8 * off
        fmask = sum(f.mask for f in r.fields)
        model[r.name] = ((model[r.name] & ~mask) | (val << 8 * off & mask)) & fmask
        assert int(getattr(dut, r.port).value) == model[r.name], (
            f"seed={SEED}: {r.name} port 0x{int(getattr(dut, r.port).value):x}, expected "
            f"0x{model[r.name]:x}")
        r2 = tb.rng.choice(rw)
        got = await tb.read(r2.offset)
        assert got == (model[r2.name], OKAY), (
            f"seed={SEED}: read {r2.name}: expected 0x{model[r2.name]:x}, got {got}")


@cocotb.test()
async def ro_registers_and_slverr(dut):
    tb = TB(dut)
    await tb.reset()
    for r in REGS:
        if r.kind != "ro":
            continue
        val = tb.rng.randrange(1 << 32)
        getattr(dut, r.port).value = val
        exp = val & sum(f.mask for f in r.fields)
        got = await tb.read(r.offset)
        assert got == (exp, OKAY), f"seed={SEED}: {r.name}: expected 0x{exp:x}, got {got}"
        assert await tb.write(r.offset, 0xFFFFFFFF) == SLVERR, f"{r.name} write not SLVERR"
    mapped = {r.offset for r in REGS}
    for addr in [a for a in range(0, 0x100, 4) if a not in mapped][:10]:
        assert await tb.read(addr) == (0, SLVERR), f"unmapped 0x{addr:x}"
        assert await tb.write(addr, 0x12345678) == SLVERR, f"unmapped 0x{addr:x}"


@cocotb.test()
async def control_pulses_and_interrupts(dut):
    tb = TB(dut)
    await tb.reset()
    ctl, irs, ire = (register(CFG, n) for n in ("CONTROL", "IRQ_STATUS", "IRQ_ENABLE"))
    for name, bit in (("start", 0), ("soft_reset", 1), ("start", 0)):
        before = dict(tb.pulses)
        assert await tb.write(ctl.offset, 1 << bit) == OKAY
        for _ in range(3):
            await RisingEdge(dut.clk)
        gained = {k: tb.pulses[k] - before[k] for k in before}
        assert gained[name] == 1 and sum(gained.values()) == 1, f"seed={SEED}: {gained}"
    fields = {f.name: f.lsb for f in irs.fields}
    for cause in ("done", "error", "desc_done"):
        dut.irq_status_set.value = 1 << fields[cause]
        await RisingEdge(dut.clk)
        dut.irq_status_set.value = 0
        await RisingEdge(dut.clk)
        assert (await tb.read(irs.offset)) == (1 << fields[cause], OKAY)
        await RisingEdge(dut.clk)
        assert int(dut.irq.value) == 0, f"seed={SEED}: irq without enable ({cause})"
        assert await tb.write(ire.offset, 1 << fields[cause]) == OKAY
        for _ in range(2):
            await RisingEdge(dut.clk)
        assert int(dut.irq.value) == 1, f"seed={SEED}: no irq for {cause}"
        assert await tb.write(irs.offset, 1 << fields[cause]) == OKAY
        for _ in range(2):
            await RisingEdge(dut.clk)
        assert int(dut.irq.value) == 0 and (await tb.read(irs.offset)) == (0, OKAY)
        assert await tb.write(ire.offset, 0) == OKAY


@cocotb.test()
async def performance_counters(dut):
    tb = TB(dut)
    await tb.reset()
    ctl = register(CFG, "CONTROL")
    assert await tb.write(ctl.offset, 0b100) == OKAY
    counters = [r for r in REGS if r.kind == "cnt_lo" and r.inc_width]
    totals = {r.counter: 0 for r in counters}
    await RisingEdge(dut.clk)
    for _ in range(300):
        for r in counters:
            inc = tb.rng.randrange(1 << r.inc_width)
            getattr(dut, f"{r.counter}_inc").value = inc
            totals[r.counter] += inc
        await RisingEdge(dut.clk)
    for r in counters:
        getattr(dut, f"{r.counter}_inc").value = 0
    await RisingEdge(dut.clk)
    for r in counters:
        lo, _ = await tb.read(r.offset)
        hi, _ = await tb.read(r.offset + 4)
        assert hi << 32 | lo == totals[r.counter], (
            f"seed={SEED}: {r.counter}: expected {totals[r.counter]}, got {hi << 32 | lo}")
    cyc = register(CFG, "CYCLES_LO")
    c, _ = await tb.read(cyc.offset)
    assert c >= 300, f"cycles counter {c}"
