"""One multiply-accumulate processing element (docs/spec.md section 1)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """Signed int8 x int8 multiply with a wrapping ``acc_width`` accumulator.

    The multiplication is pipelined ``mul_pipeline`` times before the sum (a pipelined DSP
    multiplier): with 2 or more stages the first registers the operands (so the multiplier is
    fed by flip-flops, not by the activation RAM's output), the others the product.  The
    result of the pair presented at cycle ``t`` is in ``acc`` at cycle ``t + latency``.
    ``clear`` travels down the same pipeline: the pair that carries ``clear`` starts a new sum
    (``acc = product``) instead of adding to the previous one.  ``acc`` and the operand and
    product registers are not reset (data qualified by ``valid``): after a reset ``acc`` keeps
    its value until the next ``clear`` pair (0 after power-up).

    Parameters
    ----------
    data_width : int
        Operand width (signed), 2..18.
    acc_width : int
        Accumulator width; must hold at least one product (``>= 2 * data_width``).
    mul_pipeline : int
        Register stages in the multiplication (0..3): operands once (with 2 or more), then the
        product.

    Members
    -------
    w, x : In(signed(data_width))
        Operands.
    valid : In(1)
        ``w`` and ``x`` form a pair to accumulate this cycle.
    clear : In(1)
        This pair starts a new sum.
    acc : Out(signed(acc_width))
        The running sum.

    Raises
    ------
    TypeError, ValueError
        For impossible parameters.
    """

    def __init__(self, *, data_width: int = 8, acc_width: int = 32, mul_pipeline: int = 2):
        for name, v, lo, hi in (("data_width", data_width, 2, 18),
                                ("mul_pipeline", mul_pipeline, 0, 3)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"{name} must be between {lo} and {hi}, not {v!r}")
        if not isinstance(acc_width, int) or isinstance(acc_width, bool):
            raise TypeError(f"acc_width must be an integer, not {acc_width!r}")
        if not 2 * data_width <= acc_width <= 64:
            raise ValueError(f"acc_width must be between {2 * data_width} and 64, "
                             f"not {acc_width!r}")
        self.data_width = data_width
        self.acc_width = acc_width
        self.mul_pipeline = mul_pipeline
        super().__init__({
            "w": In(signed(data_width)),
            "x": In(signed(data_width)),
            "valid": In(1),
            "clear": In(1),
            "acc": Out(signed(acc_width)),
        })

    @property
    def latency(self) -> int:
        """Cycles from a pair at the inputs to its effect on ``acc``."""
        return self.mul_pipeline + 1

    def elaborate(self, platform):
        m = Module()
        w, x, valid, clear = self.w, self.x, self.valid, self.clear
        stages = self.mul_pipeline
        if stages >= 2:
            # the first stage registers the operands: the multiplier's inputs come from
            # flip-flops, not from the activation RAM's (unregistered) output (same latency)
            # (data registers are qualified by the valid bit: not reset, so the data-plane
            # reset's fan-out stays small)
            w_r = Signal.like(w, name="w_s0", reset_less=True)
            x_r = Signal.like(x, name="x_s0", reset_less=True)
            v_r, c_r = Signal(name="valid_in"), Signal(name="clear_in")
            m.d.sync += [w_r.eq(w), x_r.eq(x), v_r.eq(valid), c_r.eq(clear)]
            w, x, valid, clear = w_r, x_r, v_r, c_r
            stages -= 1
        prod = Signal(signed(2 * self.data_width))
        m.d.comb += prod.eq(w * x)
        for stage in range(stages):
            p_r = Signal.like(prod, name=f"prod_s{stage}", reset_less=True)
            v_r = Signal(name=f"valid_s{stage}")
            c_r = Signal(name=f"clear_s{stage}")
            m.d.sync += [p_r.eq(prod), v_r.eq(valid), c_r.eq(clear)]
            prod, valid, clear = p_r, v_r, c_r
        # the accumulator is not reset either: a row's first pair carries `clear`, and a row
        # without pairs never reads it (the tile substitutes 0)
        acc = Signal.like(self.acc, name="acc_r", reset_less=True)
        m.d.comb += self.acc.eq(acc)
        with m.If(valid):
            with m.If(clear):
                m.d.sync += acc.eq(prod)
            with m.Else():
                m.d.sync += acc.eq(acc + prod)
        return m
