"""The testbench base class of every cocotb bench, and the one way a bench gets its config.

* :class:`TB` owns the DUT handle, the clock (period :data:`CLK_NS`), the synchronous
  active-high ``rst``, the run's seeded ``random.Random`` and the stall knobs: ``idle`` (the
  probability that a source inserts an idle cycle before a transfer) and ``backpressure`` (the
  probability that a sink holds ``ready`` low in a cycle).  Its :meth:`TB.send` source and
  :class:`StreamSink` sink drive Amaranth stream ports on the flattened Verilog
  (``<port>__valid``, ``<port>__ready``, ``<port>__payload``) by the stream rule: a source's
  ``valid``, once raised, holds with a stable payload until ``ready``; idle cycles come only
  between transfers.  :meth:`TB.check_sinks_empty` ends a test: every beat a sink took was
  consumed by a check.
* :func:`config_from_env` reads the hardware config, ``SPARSEMAC_CFG``
  (``AcceleratorConfig.to_dict()`` as JSON), and :func:`params_from_env` the bench's own
  parameters, ``SPARSEMAC_PARAMS`` (a JSON object: parameters of a block that is not built
  from an ``AcceleratorConfig``, case counts, traffic knobs, result files).  Both are set by
  ``sparsemac.sim.runner.run_cocotb(..., cfg=..., params=...)``.
* :func:`run_seed` is the run's seed: ``SPARSEMAC_SEED`` (set by the runner, equal to cocotb's
  ``COCOTB_RANDOM_SEED``), else ``cocotb.RANDOM_SEED``.

Subclasses, one per DUT family: ``sim.tile_driver.TileDriver`` (compute tile),
``sim.tb.axi.AxiTB`` (DUTs behind cocotbext-axi models: ``sim.accel_driver.AccelDriver``, the
CSR and DMA benches), ``sim.tb.output_pipeline.PipelineTB``, ``sim.tb.ring.RingTB`` and the
PE bench's ``PeTB``.  Nothing here imports cocotb at module level, so the pure-Python halves of
the driver modules stay importable without a simulator.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence

__all__ = ["TB", "StreamSink", "Stream", "CLK_NS", "config_from_env", "params_from_env",
           "run_seed", "CFG_ENV", "PARAMS_ENV", "SEED_ENV"]

#: Clock period of every bench, in ns (cycle counts are sim time divided by this).
CLK_NS = 10
CFG_ENV = "SPARSEMAC_CFG"
PARAMS_ENV = "SPARSEMAC_PARAMS"
SEED_ENV = "SPARSEMAC_SEED"


def run_seed() -> int:
    """The run's seed: ``SPARSEMAC_SEED``, else cocotb's ``RANDOM_SEED``."""
    if os.environ.get(SEED_ENV):
        return int(os.environ[SEED_ENV])
    import cocotb

    return int(cocotb.RANDOM_SEED)


def config_from_env(*, required: bool = True):
    """The ``AcceleratorConfig`` in ``SPARSEMAC_CFG`` (``None`` if absent and not required)."""
    from sparsemac.hw.config import AcceleratorConfig

    text = os.environ.get(CFG_ENV)
    if not text:
        if required:
            raise RuntimeError(f"{CFG_ENV} must hold the AcceleratorConfig as JSON (set by "
                               f"run_cocotb(..., cfg=cfg)), not {text!r}")
        return None
    return AcceleratorConfig.from_dict(json.loads(text), source=CFG_ENV)


def params_from_env(**defaults) -> dict:
    """The bench parameters in ``SPARSEMAC_PARAMS`` over ``defaults``.

    A name without a default must be present; a missing one raises ``KeyError`` naming it.
    """
    given = json.loads(os.environ.get(PARAMS_ENV) or "{}")
    if not isinstance(given, dict):
        raise TypeError(f"{PARAMS_ENV} must be a JSON object, not {given!r}")
    return {**defaults, **given}


def _probability(name: str, p) -> float:
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), not {p!r}")
    return float(p)


class Stream:
    """Handles of one Amaranth stream port of the flattened Verilog: ``<name>__valid``,
    ``<name>__ready`` and (if the stream has one) ``<name>__payload``."""

    def __init__(self, dut, name: str):
        self.name = name
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload", None)


class StreamSink:
    """Takes beats of an output stream; ``ready`` is low with probability ``backpressure``.

    Beats are queued as ``(payload, cycle)`` after ``decode`` (default: the payload integer).
    A check consumes them with :meth:`take`; :meth:`TB.check_sinks_empty` asserts that none is
    left.  Run it in the background (:meth:`start`) or in the foreground (:meth:`collect`).
    """

    def __init__(self, tb: TB, port: str, *, backpressure: float | None = None, rng=None,
                 decode: Callable[[int], object] | None = None):
        self.tb, self.port = tb, Stream(tb.dut, port)
        self.backpressure = tb.backpressure if backpressure is None else \
            _probability("backpressure", backpressure)
        self.rng = tb.rng if rng is None else rng
        self.decode = decode or (lambda v: v)
        self.items: list = []
        self.taken = 0
        self._task = None
        tb.sinks.append(self)

    @property
    def received(self) -> int:
        """Beats taken from the DUT so far."""
        return len(self.items)

    @property
    def pending(self) -> int:
        """Beats taken from the DUT and not yet consumed by :meth:`take`."""
        return len(self.items) - self.taken

    def _not_ready(self) -> bool:
        return self.backpressure > 0 and self.rng.random() < self.backpressure

    def start(self):
        """Take beats in the background, forever (a cocotb task)."""
        import cocotb

        self._task = cocotb.start_soon(self._run())
        return self._task

    async def _run(self):
        from cocotb.triggers import ReadOnly, RisingEdge

        p, clk = self.port, self.tb.dut.clk
        while True:
            rdy = not self._not_ready()
            p.ready.value = int(rdy)
            await ReadOnly()
            if rdy and int(p.valid.value):
                self.items.append((self.decode(int(p.payload.value)), self.tb.cycle))
            await RisingEdge(clk)

    async def collect(self, count: int):
        """Take ``count`` beats in the foreground, then drop ``ready``.  Without backpressure,
        cycles without ``valid`` are skipped at simulator speed (no Python per cycle)."""
        from cocotb.triggers import ReadOnly, RisingEdge

        p, clk = self.port, self.tb.dut.clk
        got = 0
        while got < count:
            stall = self._not_ready()
            p.ready.value = 0 if stall else 1
            await ReadOnly()
            if not stall and not int(p.valid.value) and self.backpressure == 0:
                await RisingEdge(p.valid)
                await ReadOnly()
            if not stall and int(p.valid.value):
                self.items.append((self.decode(int(p.payload.value)), self.tb.cycle))
                got += 1
            await RisingEdge(clk)
        p.ready.value = 0

    async def wait(self, count: int, limit: int = 200000):
        """Wait until ``count`` beats were received in all (at most ``limit`` cycles)."""
        from cocotb.triggers import RisingEdge

        for _ in range(limit):
            if len(self.items) >= count:
                return
            await RisingEdge(self.tb.dut.clk)
        raise AssertionError(f"seed={self.tb.seed}: {self.port.name}: expected {count} beats, "
                             f"got {len(self.items)} within {limit} cycles")

    def take(self, count: int | None = None) -> list:
        """Consume the next ``count`` (default: every pending) ``(payload, cycle)`` beats."""
        count = self.pending if count is None else count
        if count > self.pending:
            raise AssertionError(f"seed={self.tb.seed}: {self.port.name}: expected {count} "
                                 f"beats, only {self.pending} arrived")
        out = self.items[self.taken:self.taken + count]
        self.taken += count
        return out


class TB:
    """Clock, reset, seed, stall knobs and stream helpers of one DUT (a base class).

    Parameters
    ----------
    dut : cocotb handle of the toplevel (``clk`` and ``rst`` ports).
    seed : int, optional
        Default: :func:`run_seed`.  Logged, and quoted by every failure message of the benches.
    salt : int
        ``rng`` is ``random.Random(seed + salt)`` (independent streams for tests of one run).
    idle : float
        Probability of an idle cycle before each transfer of a :meth:`send` source.
    backpressure : float
        Probability of ``ready = 0`` in a cycle of a :class:`StreamSink` (and, on AXI DUTs,
        of a pause cycle on a bus channel).
    clock : bool
        Start the clock now (period :data:`CLK_NS`).

    Members
    -------
    reset_cycles, settle_cycles : int (class attributes)
        :meth:`reset` holds ``rst`` high for ``reset_cycles`` rising edges, then waits
        ``settle_cycles`` more.
    """

    reset_cycles = 3
    settle_cycles = 1
    clk_ns = CLK_NS

    def __init__(self, dut, *, seed: int | None = None, salt: int = 0, idle: float = 0.0,
                 backpressure: float = 0.0, clock: bool = True):
        self.dut = dut
        self.seed = run_seed() if seed is None else int(seed)
        self.rng = random.Random(self.seed + salt)
        self.idle = _probability("idle", idle)
        self.backpressure = _probability("backpressure", backpressure)
        self.sinks: list[StreamSink] = []
        self._t0 = 0.0
        dut._log.info(f"{type(self).__name__}: seed={self.seed} salt={salt} idle={self.idle} "
                      f"backpressure={self.backpressure} (rerun with {SEED_ENV}={self.seed})")
        if clock:
            self.start_clock()

    # -- clock and reset ------------------------------------------------------------------------
    def start_clock(self):
        import cocotb
        from cocotb.clock import Clock
        from cocotb.utils import get_sim_time

        self._t0 = get_sim_time(unit="ns")
        cocotb.start_soon(Clock(self.dut.clk, self.clk_ns, unit="ns").start())

    @property
    def cycle(self) -> int:
        """Rising edges since the clock started (read it in the ``ReadOnly`` phase)."""
        from cocotb.utils import get_sim_time

        return round((get_sim_time(unit="ns") - self._t0) / self.clk_ns)

    def quiet_inputs(self) -> Sequence:
        """Input handles driven to 0 before reset (source valids, sink readies, strobes)."""
        return ()

    async def reset(self, cycles: int | None = None, settle: int | None = None):
        """Drive :meth:`quiet_inputs` low, hold ``rst`` high ``cycles`` rising edges, release
        it and wait ``settle`` more (defaults: the class attributes)."""
        from cocotb.triggers import RisingEdge

        for s in self.quiet_inputs():
            s.value = 0
        self.dut.rst.value = 1
        for _ in range(self.reset_cycles if cycles is None else cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        for _ in range(self.settle_cycles if settle is None else settle):
            await RisingEdge(self.dut.clk)

    async def cycles(self, n: int):
        from cocotb.triggers import ClockCycles

        if n > 0:
            await ClockCycles(self.dut.clk, n)

    # -- stall knobs -----------------------------------------------------------------------------
    def idle_now(self, rng=None, p: float | None = None) -> bool:
        """One source decision: insert an idle cycle (probability ``idle``)?"""
        p = self.idle if p is None else p
        return p > 0 and (rng or self.rng).random() < p

    def pause_pattern(self, p: float | None = None, length: int = 97):
        """A repeating pause pattern for a cocotbext-axi channel (``True`` = pause)."""
        import itertools

        p = self.backpressure if p is None else p
        return itertools.cycle([self.rng.random() < p for _ in range(length)])

    # -- streams ---------------------------------------------------------------------------------
    def stream(self, port: str) -> Stream:
        return Stream(self.dut, port)

    def sink(self, port: str, **kw) -> StreamSink:
        """A :class:`StreamSink` on output stream ``port`` (knobs default to the TB's)."""
        return StreamSink(self, port, **kw)

    async def send(self, port: str | Stream, items: Sequence[int], *, idle: float | None = None,
                   rng=None, on_accept: Callable[[int, int], None] | None = None):
        """Source: drive ``items`` on input stream ``port`` by the stream rule.

        Before each transfer an idle cycle is inserted with probability ``idle`` (default: the
        TB's); once ``valid`` is raised it holds with the same payload until the cycle ``ready``
        is high.  ``on_accept(index, cycle)`` is called for every transfer.  Returns when the
        last item was taken (``valid`` low again).
        """
        from cocotb.triggers import ReadOnly, RisingEdge

        p = port if isinstance(port, Stream) else self.stream(port)
        idle = self.idle if idle is None else _probability("idle", idle)
        clk = self.dut.clk
        i, offered = 0, False
        while i < len(items):
            if not offered:
                if self.idle_now(rng, idle):
                    p.valid.value = 0
                else:
                    p.payload.value = items[i]
                    p.valid.value = 1
                    offered = True
            await ReadOnly()
            fired = offered and int(p.ready.value)
            if fired and on_accept is not None:
                on_accept(i, self.cycle)
            await RisingEdge(clk)
            if fired:
                i, offered = i + 1, False
        p.valid.value = 0

    def check_sinks_empty(self):
        """Every beat any sink took was consumed by a check (nothing extra came out)."""
        left = {s.port.name: s.pending for s in self.sinks if s.pending}
        assert not left, (f"seed={self.seed}: unchecked beats left in sinks {left}: expected "
                          f"none")
