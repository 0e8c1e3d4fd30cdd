"""amaranth.sim tests of DmaWriter against a Python AXI write slave (tests/hw/axi_models.py)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from sparsemac.hw.hub.dma_writer import DmaWriter
from sparsemac.hw.top.regmap import ErrorCode

from tests.hw.axi_models import DECERR, SLVERR, AxiWriteSlave

MEM = 1 << 14


def split_bursts(addr, length, bb, max_burst):
    out = []
    while length:
        beats = min(max_burst, length // bb, (4096 - addr % 4096) // bb)
        out.append((addr, beats))
        addr, length = addr + beats * bb, length - beats * bb
    return out


def check_cmd(cmd, window, bb):
    addr, length = cmd[0], cmd[1]
    if length == 0:
        return ErrorCode.BAD_LENGTH
    if addr % bb or length % bb:
        return ErrorCode.MISALIGNED
    if addr < window[0] or addr + length > window[1]:
        return ErrorCode.OUT_OF_WINDOW
    return ErrorCode.OK


def make_words(rng, cmd, bb, *, strobes=True):
    n = max(cmd[1] // bb, 1)
    data = [int.from_bytes(rng.integers(0, 256, bb, dtype=np.uint8).tobytes(), "little")
            for _ in range(n)]
    full = (1 << bb) - 1
    strb = [int(rng.integers(0, full + 1)) if strobes and rng.random() < 0.3 else full
            for _ in range(n)]
    return list(zip(data, strb))


def apply(mem, addr, words, bb):
    for i, (d, s) in enumerate(words):
        raw = d.to_bytes(bb, "little")
        for j in range(bb):
            if s >> j & 1:
                mem[addr + i * bb + j] = raw[j]


def run(dut, cmds, words, mem, rng, *, window=None, p_valid=1.0, p_status=1.0,
        slave_kw=None, abort_at=None, dead_after_aws=None, hold_b_until_status=False,
        max_cycles=20000):
    bb = dut.beat_bytes
    window = window or (0, len(mem))
    out = {"status": [], "taken": [[] for _ in cmds], "accept": [], "busy_after_abort": None}
    slave = AxiWriteSlave(dut.m_axi, mem, rng, beat_bytes=bb, max_burst=dut.max_burst,
                          **(slave_kw or {}))
    out["slave"] = slave

    async def bench(ctx):
        ctx.set(dut.window_base, window[0])
        ctx.set(dut.window_limit, window[1])
        pending = list(cmds)
        cur = 0          # command whose words the producer offers
        pos = 0
        offered = False
        for cycle in range(max_cycles):
            slave.drive(ctx)
            if pending:
                a, n, t = pending[0]
                ctx.set(dut.cmd.payload.addr, a)
                ctx.set(dut.cmd.payload.length, n)
                ctx.set(dut.cmd.payload.tag, t)
            ctx.set(dut.cmd.valid, int(bool(pending)))
            # producer: a proper stream source (valid stays until taken)
            have = cur < len(cmds) and pos < len(words[cur])
            offered = have and (offered or rng.random() < p_valid)
            if offered:
                ctx.set(dut.data.payload.data, words[cur][pos][0])
                ctx.set(dut.data.payload.strb, words[cur][pos][1])
            ctx.set(dut.data.valid, int(offered))
            ctx.set(dut.status.ready, int(rng.random() < p_status))
            ctx.set(dut.abort, int(abort_at == cycle))
            if pending and ctx.get(dut.cmd.ready):
                pending.pop(0)
                out["accept"].append(cycle)
            if offered and ctx.get(dut.data.ready):
                out["taken"][cur].append((words[cur][pos], cycle))
                pos += 1
                offered = False
            if ctx.get(dut.status.valid) and ctx.get(dut.status.ready):
                p = ctx.get(dut.status.payload)
                out["status"].append((int(p.tag), int(p.code), int(p.addr)))
                cur, pos, offered = cur + 1, 0, False   # the rest of its words is dropped
            slave.observe(ctx)
            if dead_after_aws is not None and len(slave.bursts) >= dead_after_aws:
                if slave.dead and out["status"]:
                    slave.reset()
                slave.dead = not out["status"]
            slave.hold_b = hold_b_until_status and not out["status"]
            await ctx.tick()
            if abort_at is not None and cycle >= abort_at and out["busy_after_abort"] is None \
                    and not ctx.get(dut.busy):
                out["busy_after_abort"] = cycle
                out["in_flight_at_idle"] = len(slave.wq) + len(slave.bq)
                cur, pos, offered = cur + 1, 0, False   # the aborted producer is flushed too
            n_exp = len(cmds) - (abort_at is not None)
            if not pending and len(out["status"]) == n_exp and not ctx.get(dut.busy):
                if dut.posted:
                    out["posted_error"] = (ctx.get(dut.posted_error),
                                           ctx.get(dut.posted_error_addr), cycle)
                return
        raise AssertionError(f"timeout after {max_cycles} cycles: {len(out['status'])} of "
                             f"{len(cmds)} statuses")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


def expected_error(cmd, bb, max_burst, errors):
    for a, beats in split_bursts(cmd[0], cmd[1], bb, max_burst):
        for lo, hi, resp in errors:
            if any(lo <= a + i * bb < hi for i in range(beats)):
                return (ErrorCode.AXI_SLVERR if resp == SLVERR else ErrorCode.AXI_DECERR), a
    return ErrorCode.OK, cmd[0]


@pytest.mark.parametrize("data_width,max_burst,max_outstanding", [
    (64, 16, 4), (32, 4, 1), (128, 256, 3), (64, 1, 2)])
def test_random_transfers(seed, rng, data_width, max_burst, max_outstanding):
    dut = DmaWriter(data_width=data_width, max_burst=max_burst,
                    max_outstanding=max_outstanding, watchdog_cycles=1000)
    bb = dut.beat_bytes
    mem = bytearray(rng.integers(0, 256, MEM, dtype=np.uint8).tobytes())
    ref = bytearray(mem)
    cmds = []
    for i in range(12):
        if rng.random() < 0.5:
            addr = int(rng.integers(1, MEM // 4096)) * 4096 - bb * int(rng.integers(1, 24))
        else:
            addr = bb * int(rng.integers(0, MEM // bb - 1))
        length = min(bb * int(rng.integers(1, 600 // bb + 1)), MEM - addr)
        cmds.append((addr, length, i))
    words = [make_words(rng, c, bb) for c in cmds]
    out = run(dut, cmds, words, mem, rng, p_valid=0.7, p_status=0.6,
              slave_kw=dict(p_addr=0.6, p_data=0.7, latency=(0, 5)))
    for c, w in zip(cmds, words):
        apply(ref, c[0], w, bb)
    slave = out["slave"]
    assert not slave.violations, f"seed={seed}: {slave.violations[:4]}"
    assert out["status"] == [(c[2], 0, c[0]) for c in cmds], f"seed={seed}: {out['status']}"
    diff = [i for i in range(MEM) if mem[i] != ref[i]]
    assert not diff, (f"seed={seed}: {len(diff)} bytes differ, first at 0x{diff[0]:x}: "
                      f"expected 0x{ref[diff[0]]:02x}, got 0x{mem[diff[0]]:02x}")
    exp_bursts = [b for c in cmds for b in split_bursts(c[0], c[1], bb, max_burst)]
    got = [(b.addr, b.beats) for b in slave.bursts]
    assert got == exp_bursts, f"seed={seed}: bursts {got[:6]}, expected {exp_bursts[:6]}"


def test_throughput_and_outstanding(seed, rng):
    dut = DmaWriter(max_burst=16, max_outstanding=4, watchdog_cycles=1000)
    mem = bytearray(MEM)
    cmds = [(0, 8192, 1)]
    words = [make_words(rng, cmds[0], 8, strobes=False)]
    out = run(dut, cmds, words, mem, rng, slave_kw=dict(latency=(6, 6)))
    assert bytes(mem[:8192]) == b"".join(d.to_bytes(8, "little") for d, _ in words[0]), \
        f"seed={seed}: memory mismatch"
    taken = out["taken"][0]
    span = taken[-1][1] - out["accept"][0] + 1
    print(f"[dma_writer] 1024 beats taken in {span} cycles after command accept: "
          f"{1024 / span:.3f} beats/cycle; max bursts in flight {out['slave'].max_in_flight}")
    assert 1024 / span > 0.95, f"seed={seed}: {1024}/{span} beats/cycle"
    assert out["slave"].max_in_flight == 4, f"seed={seed}: {out['slave'].max_in_flight}"


@pytest.mark.parametrize("resp", [SLVERR, DECERR])
def test_bus_errors(seed, rng, resp):
    dut = DmaWriter(max_burst=8, max_outstanding=3, watchdog_cycles=1000)
    mem = bytearray(rng.integers(0, 256, MEM, dtype=np.uint8).tobytes())
    old = bytes(mem)
    err_at = 8 * int(rng.integers(200, 1200))
    errors = [(err_at, err_at + 8, resp)]
    cmds = [(err_at - 8 * int(rng.integers(0, 60)), 800, 1), (0x3000, 256, 2)]
    words = [make_words(rng, c, 8) for c in cmds]
    out = run(dut, cmds, words, mem, rng, p_valid=0.8,
              slave_kw=dict(errors=errors, latency=(0, 4), p_data=0.8))
    slave = out["slave"]
    assert not slave.violations, f"seed={seed}: {slave.violations[:4]}"
    code, addr = expected_error(cmds[0], 8, 8, errors)
    assert out["status"][0] == (1, code, addr), (
        f"seed={seed}: expected {(1, int(code), hex(addr))}, got {out['status'][0]}")
    assert out["status"][1] == (2, 0, 0x3000), f"seed={seed}: {out['status'][1]}"
    # bytes before the failing burst: written; inside the command: old or new; outside: old
    new = bytearray(old)
    apply(new, cmds[0][0], words[0], 8)
    apply(new, 0x3000, words[1], 8)
    lo, hi = cmds[0][0], cmds[0][0] + cmds[0][1]
    for i in range(MEM):
        if i < addr and i >= lo or 0x3000 <= i < 0x3100:
            ok = mem[i] == new[i]
        elif lo <= i < hi:
            ok = mem[i] in (old[i], new[i])
        else:
            ok = mem[i] == old[i]
        assert ok, f"seed={seed}: byte 0x{i:x} is 0x{mem[i]:02x} (old 0x{old[i]:02x}, " \
                   f"new 0x{new[i]:02x})"
    # bursts announced after the error response carry no strobes
    later = [b for b in slave.bursts if b.addr > addr + 8 * 8 * 4 and lo <= b.addr < hi]
    assert all(s == 0 for b in later for _, s in b.wdata), f"seed={seed}: data after error"


def test_window_and_checks_touch_nothing(seed, rng):
    dut = DmaWriter(max_burst=16, max_outstanding=2, watchdog_cycles=1000)
    mem = bytearray(rng.integers(0, 256, MEM, dtype=np.uint8).tobytes())
    old = bytes(mem)
    window = (0x1000, 0x3000)
    cmds = [(0x1000, 0, 1), (0x1004, 64, 2), (0x1000, 60, 3), (0x0FF8, 64, 4),
            (0x2FC0, 72, 5), (0xFFFFFFF8, 16, 6)]
    words = [make_words(rng, c, 8) for c in cmds]
    out = run(dut, cmds, words, mem, rng, window=window)
    exp = [(c[2], check_cmd(c, window, 8), c[0]) for c in cmds]
    assert out["status"] == exp, f"seed={seed}: expected {exp}, got {out['status']}"
    assert bytes(mem) == old, f"seed={seed}: memory changed"
    assert not out["slave"].bursts, f"seed={seed}: bus touched"
    assert not any(out["taken"]), f"seed={seed}: words consumed by rejected commands"


@pytest.mark.parametrize("where", ["w", "b"])
def test_watchdog_then_recovery(seed, rng, where):
    """A slave that stops answering (``w``: no handshakes at all; ``b``: takes AW and W but
    sends no B) ends the command with WATCHDOG.  With ``b`` the late B responses then arrive
    with the old ID and must be ignored; with ``w`` the W channel (no ID in AXI4) needs an
    interconnect reset, modelled by resetting the slave."""
    dut = DmaWriter(max_burst=8, max_outstanding=2, watchdog_cycles=64)
    mem = bytearray(MEM)
    cmds = [(0x100, 512, 1), (0x800, 256, 2)]
    words = [make_words(rng, c, 8, strobes=False) for c in cmds]
    if where == "b":
        out = run(dut, cmds, words, mem, rng, max_cycles=3000, hold_b_until_status=True)
        assert any(b.done == b.beats and b.addr < 0x300 for b in out["slave"].bursts)
    else:
        out = run(dut, cmds, words, mem, rng, dead_after_aws=1, max_cycles=3000)
    assert out["status"][0][:2] == (1, ErrorCode.WATCHDOG), f"seed={seed}: {out['status']}"
    assert out["status"][1] == (2, 0, 0x800), f"seed={seed}: {out['status']}"
    got = bytes(mem[0x800:0x900])
    assert got == b"".join(d.to_bytes(8, "little") for d, _ in words[1]), f"seed={seed}"


@pytest.mark.parametrize("max_outstanding", [1, 4])
def test_abort_mid_burst_then_clean_transfer(seed, rng, max_outstanding):
    dut = DmaWriter(max_burst=16, max_outstanding=max_outstanding, watchdog_cycles=1000)
    mem = bytearray(rng.integers(0, 256, MEM, dtype=np.uint8).tobytes())
    old = bytes(mem)
    abort_at = int(rng.integers(6, 300))
    cmds = [(0, 8192, 1), (0x2000 + 8 * int(rng.integers(0, 64)), 520, 2)]
    words = [make_words(rng, c, 8) for c in cmds]
    out = run(dut, cmds, words, mem, rng, p_valid=0.8, abort_at=abort_at,
              slave_kw=dict(latency=(2, 8), p_data=0.8, p_addr=0.7))
    slave = out["slave"]
    assert not slave.violations, f"seed={seed}: {slave.violations[:4]}"
    assert out["in_flight_at_idle"] == 0, f"seed={seed}: busy fell with bursts in flight"
    assert all(c <= abort_at for _, c in out["taken"][0]), f"seed={seed}: word taken late"
    assert out["status"] == [(2, 0, cmds[1][0])], f"seed={seed}: {out['status']}"
    new = bytearray(old)
    apply(new, 0, words[0][:len(out["taken"][0])], 8)
    lo2 = cmds[1][0]
    apply(new, lo2, words[1], 8)
    # exact: the words taken before the abort are written, the rest of the announced bursts
    # went out with null strobes
    diff = [i for i in range(MEM) if mem[i] != new[i]]
    assert not diff, (f"seed={seed}: {len(diff)} bytes differ, first 0x{diff[0]:x}: expected "
                      f"0x{new[diff[0]]:02x}, got 0x{mem[diff[0]]:02x}")


# -- posted writes (posted=True: the ResultWriter's mode) -----------------------------------

@pytest.mark.parametrize("data_width,max_burst,max_outstanding", [
    (64, 16, 4), (32, 4, 1), (64, 1, 3)])
def test_posted_random_transfers(seed, rng, data_width, max_burst, max_outstanding):
    """Random commands with random stalls on every channel: memory, bursts and statuses as
    without posting; ``busy`` falls only once every B response is in."""
    dut = DmaWriter(data_width=data_width, max_burst=max_burst, posted=True,
                    max_outstanding=max_outstanding, watchdog_cycles=1000)
    bb = dut.beat_bytes
    mem = bytearray(rng.integers(0, 256, MEM, dtype=np.uint8).tobytes())
    ref = bytearray(mem)
    cmds = []
    for i in range(16):
        addr = bb * int(rng.integers(0, MEM // bb - 1))
        beats = 1 if rng.random() < 0.5 else int(rng.integers(1, 40))
        cmds.append((addr, min(bb * beats, MEM - addr), i))
    words = [make_words(rng, c, bb) for c in cmds]
    out = run(dut, cmds, words, mem, rng, p_valid=0.7, p_status=0.6,
              slave_kw=dict(p_addr=0.6, p_data=0.7, latency=(0, 8)))
    for c, w in zip(cmds, words):
        apply(ref, c[0], w, bb)
    slave = out["slave"]
    assert not slave.violations, f"seed={seed}: {slave.violations[:4]}"
    assert out["status"] == [(c[2], 0, c[0]) for c in cmds], f"seed={seed}: {out['status']}"
    assert not slave.bq and not slave.wq, f"seed={seed}: busy fell with writes in flight"
    assert out["posted_error"][0] == 0, out["posted_error"]
    diff = [i for i in range(MEM) if mem[i] != ref[i]]
    assert not diff, f"seed={seed}: {len(diff)} bytes differ, first at 0x{diff[0]:x}"
    exp_bursts = [b for c in cmds for b in split_bursts(c[0], c[1], bb, max_burst)]
    assert [(b.addr, b.beats) for b in slave.bursts] == exp_bursts, f"seed={seed}"
    assert slave.max_in_flight <= max_outstanding


def test_posted_single_beats_overlap_their_responses(seed, rng):
    """64 single-beat commands against a slave answering 6 cycles late: the statuses do not
    wait for the responses, so bursts overlap (up to max_outstanding in flight) and a command
    costs 4 cycles (accept, check, AW with the W burst started, the word; the status in the
    cycle the next command is accepted): at most 4, against a full round trip each without
    posting (13)."""
    cyc = {}
    for posted in (False, True):
        dut = DmaWriter(max_burst=16, max_outstanding=4, watchdog_cycles=1000, posted=posted)
        mem = bytearray(MEM)
        cmds = [(8 * int(a), 8, i) for i, a in enumerate(rng.permutation(MEM // 8)[:64])]
        words = [make_words(rng, c, 8) for c in cmds]
        out = run(dut, cmds, words, mem, rng, slave_kw=dict(latency=(6, 6)))
        ref = bytearray(MEM)
        for c, w in zip(cmds, words):
            apply(ref, c[0], w, 8)
        assert mem == ref, f"seed={seed}: posted={posted}: memory mismatch"
        cyc[posted] = (out["accept"][-1] - out["accept"][0]) / 63
        if posted:
            assert out["slave"].max_in_flight >= 2, f"seed={seed}: no overlap"
    print(f"[dma_writer] single-beat commands: {cyc[False]:.2f} cycles each, posted "
          f"{cyc[True]:.2f}")
    assert cyc[True] <= 4 and cyc[False] >= 12, f"seed={seed}: {cyc}"


@pytest.mark.parametrize("resp", [SLVERR, DECERR])
def test_posted_bus_error_refuses_later_commands(seed, rng, resp):
    """An error response arrives after its command's status: ``posted_error`` /
    ``posted_error_addr`` give the code and the failing burst; announced bursts go out with
    null strobes, every later command is refused with that code before any bus traffic; an
    abort clears it and the next command writes."""
    dut = DmaWriter(max_burst=4, max_outstanding=4, watchdog_cycles=1000, posted=True)
    mem = bytearray(rng.integers(0, 256, MEM, dtype=np.uint8).tobytes())
    old = bytes(mem)
    k = int(rng.integers(2, 6))                  # the failing command
    cmds = [(0x400 * i, 8, i) for i in range(12)]
    errors = [(cmds[k][0], cmds[k][0] + 8, resp)]
    words = [make_words(rng, c, 8, strobes=False) for c in cmds]
    code = ErrorCode.AXI_SLVERR if resp == SLVERR else ErrorCode.AXI_DECERR
    out = run(dut, cmds, words, mem, rng, slave_kw=dict(errors=errors, latency=(3, 3)))
    slave = out["slave"]
    assert not slave.violations, f"seed={seed}: {slave.violations[:4]}"
    st = out["status"]
    first_refused = next(i for i, s in enumerate(st) if s[1] != 0)
    assert first_refused > k, f"seed={seed}: {st}"          # posted: k's own status was OK
    assert all(s == (i, code, cmds[k][0]) for i, s in enumerate(st) if i >= first_refused), st
    written = {b.addr for b in slave.bursts if any(s for _, s in b.wdata)}
    assert max(written) < cmds[first_refused][0], f"seed={seed}: refused command wrote"
    for i, c in enumerate(cmds):                # written up to the error's arrival, then old
        got = bytes(mem[c[0]:c[0] + 8])
        exp = words[i][0][0].to_bytes(8, "little") if c[0] in written and i != k else \
            old[c[0]:c[0] + 8]
        assert got == exp, f"seed={seed}: command {i}"



def test_posted_error_flag_sticky_until_abort(seed, rng):
    """``posted_error`` set by a failing response stays through idle cycles, is cleared by
    ``abort`` (and only then), and the next command writes normally."""
    from tests.hw.axi_models import AxiWriteSlave
    dut = DmaWriter(max_burst=4, max_outstanding=2, watchdog_cycles=1000, posted=True)
    mem = bytearray(MEM)
    slave = AxiWriteSlave(dut.m_axi, mem, rng, beat_bytes=8, max_burst=4,
                          errors=[(0x100, 0x108, SLVERR)], latency=(2, 2))
    seen = {}

    async def bench(ctx):
        ctx.set(dut.window_limit, MEM)
        ctx.set(dut.status.ready, 1)

        async def command(addr, word):
            """One single-beat command; returns its status code."""
            ctx.set(dut.cmd.payload.addr, addr)
            ctx.set(dut.cmd.payload.length, 8)
            ctx.set(dut.data.payload.data, word)
            ctx.set(dut.data.payload.strb, 0xFF)
            cvalid = dvalid = True
            code = None
            for _ in range(200):
                ctx.set(dut.cmd.valid, int(cvalid))
                ctx.set(dut.data.valid, int(dvalid))
                slave.drive(ctx)
                c_hs = cvalid and ctx.get(dut.cmd.ready)
                d_hs = dvalid and ctx.get(dut.data.ready)
                if ctx.get(dut.status.valid):
                    code = ctx.get(dut.status.payload.code)
                slave.observe(ctx)
                await ctx.tick()
                cvalid, dvalid = cvalid and not c_hs, dvalid and not d_hs
                if code is not None:
                    break
            ctx.set(dut.cmd.valid, 0)
            ctx.set(dut.data.valid, 0)
            return code

        async def idle(n):
            for _ in range(n):
                slave.drive(ctx)
                slave.observe(ctx)
                await ctx.tick()

        seen["first"] = await command(0x100, 0x1111)
        await idle(20)
        seen["flag"] = (ctx.get(dut.posted_error), ctx.get(dut.posted_error_addr),
                        ctx.get(dut.busy))
        seen["refused"] = await command(0x200, 0x2222)
        ctx.set(dut.abort, 1)
        await ctx.tick()
        ctx.set(dut.abort, 0)
        await idle(5)
        seen["after_abort"] = ctx.get(dut.posted_error)
        seen["clean"] = await command(0x300, 0x3333)
        await idle(20)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["first"] == 0, seen                       # posted: its status came first
    assert seen["flag"] == (ErrorCode.AXI_SLVERR, 0x100, 0), seen
    assert seen["refused"] == ErrorCode.AXI_SLVERR and seen["after_abort"] == 0, seen
    assert seen["clean"] == 0 and mem[0x300:0x308] == (0x3333).to_bytes(8, "little"), seen
    assert mem[0x200:0x208] == bytes(8), "a refused command wrote"


def test_posted_watchdog_without_responses(seed, rng):
    """A slave that takes AW and W but never answers: the command's status is OK (posted),
    then the watchdog sets ``posted_error = WATCHDOG`` at the stuck burst and ``busy`` falls."""
    dut = DmaWriter(max_burst=8, max_outstanding=2, watchdog_cycles=64, posted=True)
    mem = bytearray(MEM)
    cmds = [(0x100, 64, 1)]
    words = [make_words(rng, c, 8, strobes=False) for c in cmds]
    out = run(dut, cmds, words, mem, rng, max_cycles=3000, hold_b_until_status=False,
              slave_kw=dict(latency=(10_000, 10_000)))
    assert out["status"] == [(1, 0, 0x100)], out["status"]
    code, addr, cycle = out["posted_error"]
    assert (code, addr) == (ErrorCode.WATCHDOG, 0x100), out["posted_error"]
    assert 64 <= cycle < 64 + 40, f"busy fell at cycle {cycle}"


def test_posted_parameter_errors():
    with pytest.raises(TypeError, match="^posted must be a bool, not 1$"):
        DmaWriter(posted=1)
