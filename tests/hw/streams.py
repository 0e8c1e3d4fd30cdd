"""Stream helpers for amaranth.sim testbenches (the stream rule: valid holds until ready)."""

from __future__ import annotations

__all__ = ["stream_put", "run_stream_stage"]


async def stream_put(ctx, port, fields: dict, *, prng, stall: float = 0.0) -> None:
    """Offer one transfer on ``port`` (an ``In(stream.Signature)`` of the DUT) and wait for it.

    Before the transfer, idle cycles are inserted while ``prng.random() < stall``; once valid is
    raised it holds with the same ``fields`` (``{payload field name: value}``; a plain value
    sets the whole payload under the key ``""``) until ``ready``.  ``valid`` is left high: the
    caller lowers it after its last transfer.
    """
    while prng.random() < stall:
        ctx.set(port.valid, 0)
        await ctx.tick()
    ctx.set(port.valid, 1)
    for name, value in fields.items():
        ctx.set(getattr(port.payload, name) if name else port.payload, value)
    while True:
        _, _, rdy = await ctx.tick().sample(port.ready)
        if rdy:
            return


def run_stream_stage(dut, n: int, p_valid: float, p_ready: float, prng):
    """Push ``n`` 16-bit beats through a one-in one-out stream stage (``dut.i`` -> ``dut.o``)
    with random valid (``p_valid``, held until taken) and random ``o.ready`` (``p_ready``).

    Returns ``(sent, got, trace)``: the beats taken at ``i``, the beats delivered at ``o`` (in
    order), and per cycle ``(i.valid, i.ready, o.valid, o.ready)``; stops once ``n`` beats are
    out (or after ``20 * n + 50`` cycles).
    """
    from amaranth.sim import Simulator

    sent, got, trace = [], [], []

    async def bench(ctx):
        i = 0
        ctx.set(dut.i.valid, 0)
        for _ in range(20 * n + 50):
            if i < n and (ctx.get(dut.i.valid) or prng.random() < p_valid):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, (i * 40503 + 7) & 0xFFFF)
            else:
                ctx.set(dut.i.valid, 0)
            ctx.set(dut.o.ready, int(prng.random() < p_ready))
            _, _, iv, ir, ov, orr, op = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload)
            trace.append((iv, ir, ov, orr))
            if iv and ir:
                sent.append((i * 40503 + 7) & 0xFFFF)
                i += 1
            if ov and orr:
                got.append(op)
            if len(got) == n:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return sent, got, trace
