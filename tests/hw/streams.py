"""Stream helpers for amaranth.sim testbenches (the stream rule: valid holds until ready)."""

from __future__ import annotations

__all__ = ["stream_put"]


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
