"""Formal proof (SymbiYosys, k-induction: unbounded) of the descriptor checker's window rule.

The DescChecker of the default build runs with every input free: all 512 bits of the
descriptor, ``window_bytes`` (``MEM_LIMIT - MEM_BASE``), ``start`` and the reset, at any time.
Assumed, as its handshake documents: from the cycle after ``start`` until ``valid`` (while
``busy``) the descriptor and the window hold still; a new ``start`` may come at any time.
Proved for every reachable state, once ``valid`` is high and until the next ``start``:

* ``code == OK`` implies every used buffer lies inside the window, and
  ``code == OUT_OF_WINDOW`` implies some used buffer does not,

where the window rule is written here from docs/spec.md section 8 (rule 9), independently of
the checker: buffer ``[off, off + size)`` is inside ``[0, window)`` when ``off + size <=
window`` in exact (unbounded) arithmetic; ``acts`` and ``out`` are always used; an opcode
with a weight image (matmul, conv2d) uses ``weights``, ``quant`` with REQUANT and ``lut`` with
LUT, a pool none of them (section 8.2); sizes: ``weights`` its 32-byte image header,
``quant`` ``m`` records of 16 bytes, ``lut`` 256 bytes (the spec's constants, from
``golden``), ``acts`` and ``out`` the sizes the checker reports (``act_bytes``,
``out_bytes``).  Those two products come from the checker's serial shift-and-add multiplier;
proving them would need the multiplier's loop invariant (``macc + ma * mb`` is the product), a
wide non-linear identity that bit-blasting solvers handle badly (not attempted), so here they
are taken as the checker computes them (tests/hw/test_desc_checker.py compares the codes
they lead to with golden.validate_descriptor in simulation, window edges included).  The
rules before the window (magic .. alignment) are out of scope: the proof is about the
decision between ``OK`` and ``OUT_OF_WINDOW`` once they pass.

Supporting invariants (proved too; they make the induction go through): ``valid`` is never
high during a check; the multiplier and divider states only run arithmetic ops, which all
come before the last three (buffer ends, rules, code); after op 0 the checker's latched
window equals ``window_bytes``.  With them the induction goes through once it spans the last
three ops (ends, rules, code) and the two cycles before them (the buffer ends and their
compares with the window are registered every cycle, from sizes written before): depth 5 is
the least that passes, the test runs 6.  Without
them it fails at any depth (a multiplier state may sit on the last ops' ``pc``, the latched
window may be anything).  The harness reads those internal registers (``pc``, ``window``, the
``check`` FSM) from the elaborated module by name, so a renamed register fails the test
instead of weakening it.

A mutant with the inclusive-end bug (``off + size - 1``, bench/mutate.py's
WINDOW-INCLUSIVE-END) must give a real counterexample from reset (BMC deep enough for a whole
minimal check).  Files in ``build/formal/desc_checker*``.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Module, Signal
from amaranth.hdl._ast import Assign, Switch
from amaranth.lib import wiring
from sparsemac.golden.descriptors import LUT_BYTES, QUANT_RECORD_BYTES, ErrorCode, Flags, Opcode
from sparsemac.golden.formats import HEADER_BYTES
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.hub import desc_checker as desc_checker_module

from tests.formal.sby import mutated, run_sby

#: k-induction depth: the last three ops (ends, rules, code), the cycle ``valid`` shows, and
#: the two cycles before the ends op in which the buffer ends and their window compares are
#: registered (5 is the least that passes).
PROOF_DEPTH = 6
#: BMC depth of the mutant: a minimal check (matmul 1x1x1) ended 30 cycles after ``start``
#: (first counterexample at step 31); the column split added four ops (a cycle each when
#: skipped), so 32 no longer reaches one and 36 does.
MUTANT_DEPTH = 36


def _internals(m: Module) -> dict:
    """The checker's registers the invariants need, from its elaborated (not yet lowered)
    module ``m``: ``pc`` (op counter), ``window`` (window latched by op 0), ``state`` and
    ``encoding`` of the ``check`` FSM, and ``ops`` (the number of ops: the cases of the LOAD
    state's switch on ``pc``).  Amaranth has no public way to reach a module's internals, so
    this walks ``Module._statements``; a missing name raises."""
    named, pc_switches = {}, []

    def walk(stmts):
        for st in stmts:
            if isinstance(st, Assign) and isinstance(st.lhs, Signal):
                named.setdefault(st.lhs.name, []).append(st.lhs)
            elif isinstance(st, Switch):
                pc_switches.append(st)
                for _patterns, body, *_ in st.cases:
                    walk(body)

    for stmts in m._statements.values():
        walk(stmts)
    found = {}
    for name in ("pc", "window"):
        sigs = {id(s): s for s in named.get(name, [])}
        assert len(sigs) == 1, f"the checker must have one register {name!r}, not {len(sigs)}"
        found[name] = next(iter(sigs.values()))
    fsm = m._generated["check"]
    found["state"], found["encoding"] = fsm._data["signal"], dict(fsm.encoding)
    found["ops"] = max(len(s.cases) for s in pc_switches if s.test is found["pc"])
    return found


class FormalDescChecker(wiring.Component):
    """The checker with its ports free and the window rule asserted against a reference."""

    def __init__(self, dut):
        self.dut = dut
        super().__init__(dut.signature)

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        m.submodules.dut = inner = dut.elaborate(platform)
        wiring.connect(m, wiring.flipped(self), dut)
        d, wb = dut.desc, dut.window_bytes
        # assumption (the handshake): desc and window hold still during a check
        q_busy, q_start = Signal(), Signal()
        q_desc, q_wb = Signal.like(d.as_value()), Signal.like(wb)
        m.d.sync += [q_busy.eq(dut.busy), q_start.eq(dut.start), q_desc.eq(d.as_value()),
                     q_wb.eq(wb)]
        m.d.comb += Assume(~(dut.busy & q_busy & ~q_start)
                           | ((d.as_value() == q_desc) & (wb == q_wb)))
        # ghost copy of what the last check read (desc may change once valid is high)
        g_wb = Signal.like(wb)
        g = {name: Signal(len(getattr(d, name)), name=f"g_{name}")
             for name in ("weights", "acts", "out", "quant", "lut", "m", "flags", "opcode")}
        with m.If(dut.busy):
            m.d.sync += g_wb.eq(wb)
            m.d.sync += [g[name].eq(getattr(d, name)) for name in g]

        # the reference (docs/spec.md section 8, rule 9): every used buffer inside the window
        weighted = g["opcode"] <= Opcode.CONV2D         # matmul, conv2d: a weight image
        requant = weighted & ((g["flags"] & int(Flags.REQUANT)) != 0)
        lut = weighted & ((g["flags"] & int(Flags.LUT)) != 0)
        buffers = [(weighted, g["weights"], HEADER_BYTES), (1, g["acts"], dut.act_bytes),
                   (1, g["out"], dut.out_bytes),
                   (requant, g["quant"], g["m"] * QUANT_RECORD_BYTES),
                   (lut, g["lut"], LUT_BYTES)]
        ref_outside = Signal()
        m.d.comb += ref_outside.eq(Cat(*[used & (off + size > g_wb)
                                         for used, off, size in buffers]).any())
        m.d.comb += Assert(~(dut.valid & (dut.code == ErrorCode.OK)) | ~ref_outside,
                           "code OK with a buffer outside the window")
        m.d.comb += Assert(~(dut.valid & (dut.code == ErrorCode.OUT_OF_WINDOW)) | ref_outside,
                           "code OUT_OF_WINDOW with every buffer inside the window")

        # supporting invariants
        r = _internals(inner)
        pc, st, enc, last = r["pc"], r["state"], r["encoding"], r["ops"] - 1
        m.d.comb += Assert(~(dut.busy & dut.valid), "valid during a check")
        arith = (st == enc["MUL"]) | (st == enc["DIV"])
        m.d.comb += Assert(~arith | ((pc >= 1) & (pc < last - 2)),
                           "multiplier or divider running outside the arithmetic ops")
        m.d.comb += Assert(~(dut.busy & (pc >= 1)) | (r["window"] == wb),
                           "latched window differs from window_bytes")
        return m


def prove(formal_env, module, name: str, *, depth: int, mode: str = "prove"
          ) -> tuple[bool, str]:
    dut = module.DescChecker(AcceleratorConfig())
    return run_sby(formal_env, FormalDescChecker(dut), name, depth=depth, mode=mode)


def test_window_rule_proof(formal_env):
    ok, out = prove(formal_env, desc_checker_module, "desc_checker_window", depth=PROOF_DEPTH)
    assert ok, "expected the proof to PASS, got:\n" + "\n".join(out.splitlines()[-40:])


def test_mutant_inclusive_end_fails(formal_env):
    """The inclusive-end bug accepts a buffer that ends one byte past the window."""
    mutant = mutated(desc_checker_module, "ends.append(end.eq(off + size))",
                      "ends.append(end.eq(off + size - 1))")
    ok, out = prove(formal_env, mutant, "desc_checker_mutant_inclusive_end",
                    depth=MUTANT_DEPTH, mode="bmc")
    assert not ok and "DONE (FAIL" in out, (f"no counterexample for the mutant within "
                                             f"{MUTANT_DEPTH} cycles:\n" + out[-2000:])
