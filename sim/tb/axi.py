"""Testbench base of the DUTs behind cocotbext-axi models (accelerator top, CSR bank, DMA).

:class:`AxiTB` adds to :class:`sparsemac.sim.tb.base.TB` the bus models of ``sim.axi_vip``
(an ``AxiLiteMaster`` on ``s_axil_``, the error-injecting ``FaultyAxiRam`` on ``m_axi_`` with the
AXI rule monitor) and the stall knob of a bus: the TB's ``backpressure`` becomes a seeded,
repeating pause pattern on every channel of those models (:meth:`AxiTB.set_stall`).
:class:`RandomBusErrors`, attached to that RAM, answers SLVERR or DECERR on a random fraction of
read beats and write responses, and makes the RAM forget its outstanding transactions when the
DUT's ``rst`` is asserted (a hard reset mid-burst).
"""

from __future__ import annotations

import logging

from .base import TB

__all__ = ["AxiTB", "RandomBusErrors"]


class AxiTB(TB):
    """:class:`TB` with cocotbext-axi bus models and per-channel pause generators.

    Members
    -------
    lite : AxiLiteMaster or None
        After :meth:`add_axil_master`.
    ram : FaultyAxiRam or None
        After :meth:`add_axi_ram`.
    violations, bursts : list
        AXI rule violations and AR/AW handshakes seen by the monitor of :meth:`add_axi_ram`.
    bus_errors : RandomBusErrors or None
        The random error injection and reset hook of ``ram`` (after :meth:`add_axi_ram`).
    """

    #: Length of the repeating pause pattern of each channel.
    pause_period = 97

    def __init__(self, dut, **kw):
        super().__init__(dut, **kw)
        self.lite = None
        self.ram = None
        self.violations: list[str] = []
        self.bursts: list[tuple[str, int, int]] = []
        self.bus_errors: RandomBusErrors | None = None

    def add_axil_master(self, prefix: str = "s_axil_"):
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster

        d = self.dut
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(d, prefix), d.clk, d.rst)
        for iface in (self.lite.read_if, self.lite.write_if):
            iface.log.setLevel(logging.WARNING)
        return self.lite

    def add_axi_ram(self, *, size: int, beat_bytes: int, max_burst: int,
                    prefix: str = "m_axi_", monitor_bursts: bool = False):
        """An error-injecting ``AxiRam`` on the AXI4 master port ``prefix`` and the monitor of
        the address-channel rules (violations into ``violations``, handshakes into
        ``bursts`` when ``monitor_bursts``)."""
        import cocotb
        from cocotbext.axi import AxiBus

        from ..axi_vip import FaultyAxiRam, axi_rule_monitor

        d = self.dut
        self.ram = FaultyAxiRam(AxiBus.from_prefix(d, prefix), d.clk, d.rst, size=size)
        for iface in (self.ram.read_if, self.ram.write_if):
            iface.log.setLevel(logging.WARNING)
        self.bus_errors = RandomBusErrors(self.ram)
        cocotb.start_soon(axi_rule_monitor(d, prefix=prefix, beat_bytes=beat_bytes,
                                           max_burst=max_burst, violations=self.violations,
                                           bursts=self.bursts if monitor_bursts else None))
        return self.ram

    def channels(self, *, lite_data: bool = False) -> tuple:
        """The channels of the models: AXI4-Lite AW and AR (and W, B, R with ``lite_data``),
        then the RAM's AW, W, B, AR, R."""
        chans = ()
        if self.lite is not None:
            w, r = self.lite.write_if, self.lite.read_if
            chans += ((w.aw_channel, w.w_channel, w.b_channel, r.ar_channel, r.r_channel)
                      if lite_data else (w.aw_channel, r.ar_channel))
        if self.ram is not None:
            w, r = self.ram.write_if, self.ram.read_if
            chans += (w.aw_channel, w.w_channel, w.b_channel, r.ar_channel, r.r_channel)
        return chans

    def set_stall(self, p: float | None = None, *, channels=None, period: int | None = None):
        """Pause each of ``channels`` (default: :meth:`channels`) by its own seeded, repeating
        pattern of ``period`` cycles (probability ``p``, default the TB's ``backpressure``);
        ``p = 0`` removes the pauses."""
        p = self.backpressure if p is None else p
        for ch in self.channels() if channels is None else channels:
            if p > 0:
                ch.set_pause_generator(self.pause_pattern(p, period or self.pause_period))
            else:
                ch.clear_pause_generator()
                ch.pause = False


class RandomBusErrors:
    """Random SLVERR / DECERR answers of a ``FaultyAxiRam``, and its hard-reset hook.

    Attached to a ``FaultyAxiRam`` (cocotbext-axi ``AxiRam``; :meth:`AxiTB.add_axi_ram` does it),
    it wraps the RAM's per-beat read, its write-burst address and its B channel:

    * while armed (:meth:`arm`), each read beat and each write response is answered with an
      error with probability ``rate`` (SLVERR or DECERR, even odds), drawn from the caller's
      seeded ``rng``, until ``budget`` errors were injected; a failed read beat returns zeros,
      a failed write burst has been written (AXI leaves that open; the DUT must not rely on it);
    * every injection is recorded in ``injected`` as ``(kind, address, resp)``: ``kind`` ``"r"``
      with the failing beat's (beat-aligned) address, ``"w"`` with the burst's ``AWADDR``;
    * ``reads`` / ``writes`` count read beats and strobed write segments the RAM served, so a
      bench can check that the bus stays quiet (nothing written after an error);
      ``at_injection`` holds both counts at the first injection;
    * on the DUT's ``rst`` (cocotbext-axi already kills the slave processes and empties the
      channel queues there) it also forgets a pending error conversion, disarms, counts the
      reset in ``resets`` and calls each of ``on_reset``: after a hard reset mid-burst the slave
      holds no outstanding transaction.
    """

    def __init__(self, ram):
        self.ram = ram
        self.rate = 0.0
        self.rng = None
        self.budget = 0
        self.kinds = frozenset()
        self.injected: list[tuple[str, int, int]] = []
        self.reads = 0
        self.writes = 0
        self.resets = 0
        self.at_injection: tuple[int, int] | None = None
        self.on_reset: list = []
        self._aw_addr = None
        rd, wr = ram.read_if, ram.write_if

        async def read(address, length, _orig=rd._read):
            if self._draw("r"):
                resp = self._resp()
                self._record("r", int(address), resp)
                ram._fault["r"] = resp          # FaultyAxiRam turns SLVERR into DECERR
                raise OSError(f"random {('SLVERR', 'DECERR')[resp - 2]} at {address:#x}")
            self.reads += 1
            return await _orig(address, length)
        rd._read = read

        async def write(address, data, _orig=wr._write):
            self.writes += 1
            return await _orig(address, data)
        wr._write = write

        async def recv_aw(_orig=wr.aw_channel.recv):
            aw = await _orig()
            self._aw_addr = int(aw.awaddr)
            return aw
        wr.aw_channel.recv = recv_aw

        async def send_b(t, _orig=wr.b_channel.send):
            if int(t.bresp) == 0 and self._draw("w"):
                resp = self._resp()
                self._record("w", self._aw_addr, resp)
                t.bresp = resp
            await _orig(t)
        wr.b_channel.send = send_b

        def handle_reset(state, _orig=rd._handle_reset):
            _orig(state)
            if state:
                ram._fault.clear()
                self._aw_addr = None
                self.disarm()
                self.resets += 1
                for hook in self.on_reset:
                    hook()
        rd._handle_reset = handle_reset

    def arm(self, rate: float, rng, *, budget: int = 1, reads: bool = True,
            writes: bool = True):
        """Inject errors with probability ``rate`` per read beat (``reads``) and per write
        response (``writes``), drawn from ``rng`` (anything with ``random()``), until
        ``budget`` were injected."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be a probability in [0, 1), not {rate!r}")
        if budget < 0:
            raise ValueError(f"budget must be at least 0, not {budget!r}")
        self.rate, self.rng, self.budget = float(rate), rng, int(budget)
        self.kinds = frozenset(k for k, on in (("r", reads), ("w", writes)) if on)

    def disarm(self):
        """No more injections (the ``injected`` record stays)."""
        self.rate, self.budget = 0.0, 0

    def _draw(self, kind: str) -> bool:
        if kind not in self.kinds or self.budget <= 0 or self.rng.random() >= self.rate:
            return False
        self.budget -= 1
        return True

    def _record(self, kind: str, address: int, resp: int):
        if not self.injected:
            self.at_injection = (self.reads, self.writes)
        self.injected.append((kind, address, resp))

    def _resp(self) -> int:
        return 2 if self.rng.random() < 0.5 else 3
