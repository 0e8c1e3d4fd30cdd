"""HeaderPrefetch (hw/hub/header_prefetch.py) under amaranth.sim: random windows, requests and
DMA stalls against a byte memory; the captured header, the read command, failures and aborts."""

import random

import pytest
from amaranth.sim import Simulator
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.hub.header_prefetch import HeaderPrefetch


@pytest.mark.parametrize("width", [32, 64, 256])
def test_header_prefetch_reads_the_header(width, seed):
    """Requests at random addresses (some reads fail, some are aborted by ``clear``): every
    command is one 32-byte read at the requested address with the given tag, offered only
    inside the window; a finished read holds ``ready`` and the 32 bytes from memory in ``hdr``
    (``failed`` with the status's code and address for a failing read) until ``take``; a
    ``clear`` returns to idle at once."""
    rng = random.Random(seed)
    cfg = AcceleratorConfig.preset("tiny").replace(axi_data_width=width,
                                                   ring_payload_width=max(64, width))
    beat = width // 8
    dut = HeaderPrefetch(cfg, tag=5)
    mem = bytes(rng.randrange(256) for _ in range(4096))
    counts = {"ready": 0, "failed": 0, "cleared": 0}

    async def bench(ctx):
        want = None             # (addr, fail code) of the read in flight
        for cyc in range(3000):
            window = rng.random() < 0.8
            ctx.set(dut.window, window)
            idle, ready, failed = (ctx.get(dut.idle), ctx.get(dut.ready), ctx.get(dut.failed))
            if ready or failed:
                assert want is not None, f"seed {seed}, cycle {cyc}: an outcome without a read"
                addr, code = want
                if ready:
                    assert not code
                    got = ctx.get(dut.hdr).as_value().value.to_bytes(32, "little")
                    assert got == mem[addr:addr + 32], f"seed {seed}, cycle {cyc}: header"
                else:
                    assert (ctx.get(dut.code), ctx.get(dut.err_addr)) == (code, addr)
                if rng.random() < 0.5:
                    ctx.set(dut.take, 1)
                    await ctx.tick()
                    ctx.set(dut.take, 0)
                    counts["ready" if ready else "failed"] += 1
                    want = None
                    continue
            req = idle and rng.random() < 0.5
            addr = rng.randrange(0, 4096 - 32, beat)
            ctx.set(dut.request, req)
            ctx.set(dut.addr, addr)
            if req and window:
                want = (addr, rng.choice([0, 0, 0, 33]))
            if want is not None and not req and not (ready or failed) and rng.random() < 0.01:
                # an abort (the sequencer's ABORT: outside the window, no request)
                ctx.set(dut.clear, 1)
                ctx.set(dut.window, 0)
                await ctx.tick()
                ctx.set(dut.clear, 0)
                assert ctx.get(dut.idle), f"seed {seed}, cycle {cyc}: not idle after clear"
                counts["cleared"] += 1
                want = None
                await ctx.tick()
                continue
            await ctx.tick()
            ctx.set(dut.request, 0)
            if want is None or not ctx.get(dut.rcmd.valid):
                assert not ctx.get(dut.rcmd.valid) or want is not None
                continue
            # the DMA stand-in: command, words with stalls, status (inside the window only)
            a, code = want
            assert (ctx.get(dut.rcmd.payload.addr), ctx.get(dut.rcmd.payload.length),
                    ctx.get(dut.rcmd.payload.tag)) == (a, 32, 5), f"seed {seed}, cycle {cyc}"
            ctx.set(dut.rcmd.ready, 1)
            await ctx.tick()
            ctx.set(dut.rcmd.ready, 0)
            for w in range(32 // beat):
                ctx.set(dut.rdata.payload.data,
                        int.from_bytes(mem[a + w * beat:a + (w + 1) * beat], "little"))
                ctx.set(dut.rdata.valid, 1)
                while not ctx.get(dut.rdata.ready):
                    await ctx.tick()
                await ctx.tick()            # taken at this edge
                ctx.set(dut.rdata.valid, 0)
                for _ in range(rng.randrange(3)):
                    await ctx.tick()
            ctx.set(dut.rstatus.valid, 1)
            ctx.set(dut.rstatus.payload.code, code)
            ctx.set(dut.rstatus.payload.addr, a)
            while not ctx.get(dut.rstatus.ready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(dut.rstatus.valid, 0)
        assert counts["ready"] > 20 and counts["failed"] > 3, f"seed {seed}: {counts}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_header_prefetch_rejects_a_bad_tag():
    cfg = AcceleratorConfig.preset("tiny")
    with pytest.raises(ValueError, match=r"tag must be an integer in 0\.\.15, not 16"):
        HeaderPrefetch(cfg, tag_width=4, tag=16)
