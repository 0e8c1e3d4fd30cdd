"""Host-side driver of the accelerator top (docs/accelerator.md).

Two halves:

* pure Python (no cocotb import): :func:`split_weights` (the per-tile weight images of
  docs/spec.md section 8.1), :func:`random_layer` and :func:`build_job` (a memory image with the
  descriptor table, every buffer and the golden outputs);
* :class:`AccelDriver` (cocotb): loads a job into a cocotbext-axi ``AxiRam`` on ``m_axi_``,
  programs the registers with ``AxiLiteMaster`` on ``s_axil_``, waits for the interrupt and
  reads the results back.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field

import numpy as np
from sparsemac.golden.descriptors import (
    QUANT_RECORD_BYTES,
    Flags,
    Opcode,
    conv2d_descriptor,
    matmul_descriptor,
)
from sparsemac.golden.tiling import tile_buffer_shortfall, tile_row_split

from sparsemac import golden

__all__ = ["split_weights", "random_layer", "layer_fits", "build_job", "Job", "AccelDriver",
           "ALIGN"]

ALIGN = 64
CLK_NS = 10
LUT_FUNCS = ("relu", "tanh", "sigmoid", "gelu", "silu", "exp")


def split_weights(W, fmt: str, cfg, *, nm=(2, 4)) -> bytes:
    """The weight images of ``W[M, K]`` for ``cfg.tiles`` tiles, back to back.

    Tile ``t`` gets rows ``[t * c, min(M, (t + 1) * c))`` with ``c = ceil(M / tiles)``; tiles
    past the last row get no image (docs/spec.md section 8.1).
    """
    W = np.asarray(W)
    out = b""
    for r0, r1 in tile_row_split(W.shape[0], cfg.tiles):
        pw = golden.pack_weights(W[r0:r1], fmt, group_size=cfg.group_size,
                                 block_size=cfg.block_size, nm=tuple(nm))
        out += bytes(pw.image)
    return out


def _align(x: int, a: int = ALIGN) -> int:
    return -(-x // a) * a


def layer_fits(cfg, L: dict) -> bool:
    """The layer fits the tile buffers (activation entries, image, flags, weight image, rows;
    `sparsemac.golden.tiling.tile_buffer_shortfall`), its weights estimated as dense."""
    if L["op"] == "matmul":
        k, n, img = L["k"], L["n"], L["k"] * L["n"]
    else:
        oh, ow = golden.conv_output_shape((L["h"], L["w"]), (L["kh"], L["kw"]), L["stride"],
                                          L["pad"], L["dilation"])
        k, n, img = L["c"] * L["kh"] * L["kw"], oh * ow, L["c"] * L["h"] * L["w"]
    mt = max(r1 - r0 for r0, r1 in tile_row_split(L.get("m", L.get("kout", 1)), cfg.tiles))
    wbytes = golden.packed_size("dense", (mt, k))
    return tile_buffer_shortfall(cfg, k=k, n=n, weight_bytes=wbytes, rows=mt,
                                 image_bytes=img) is None


def random_layer(rng, cfg, *, op: str, fmt: str, requant: bool = True, lut: str | None = None,
                 max_dim: int = 12) -> dict:
    """A random layer spec whose shapes fit the tile buffers of ``cfg`` (`layer_fits`)."""
    while True:
        L = _random_layer(rng, cfg, op=op, fmt=fmt, requant=requant, lut=lut, max_dim=max_dim)
        if layer_fits(cfg, L):
            return L


def _random_layer(rng, cfg, *, op, fmt, requant, lut, max_dim):
    L = {"op": op, "fmt": fmt, "requant": requant, "lut": lut if requant else None}
    if fmt == "nm":
        mm = int(rng.choice([x for x in (2, 4, 8, 16) if x <= cfg.nm_max_m]))
        nn = int(rng.choice([x for x in (1, 2, 4) if x <= mm]))
        L["nm"] = (nn, mm)
    L["density"] = float(rng.uniform(0.2, 0.8))
    if op == "matmul":
        L.update(m=int(rng.integers(1, max_dim + 1)), k=int(rng.integers(1, max_dim + 1)),
                 n=int(rng.integers(1, max_dim + 1)))
    else:
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        L.update(c=int(rng.integers(1, 4)), kout=int(rng.integers(1, max_dim + 1)),
                 kh=kh, kw=kw, h=int(rng.integers(kh, kh + 5)), w=int(rng.integers(kw, kw + 5)),
                 stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
                 pad=(int(rng.integers(0, 2)), int(rng.integers(0, 2))),
                 dilation=(1, 1))
    return L


def _weights(rng, L, shape, cfg):
    W = rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)
    fmt = L["fmt"]
    if fmt == "bitmap" or fmt == "dense":
        W, _ = golden.prune(W, "unstructured", density=L["density"])
    elif fmt == "block":
        W, _ = golden.prune(W, "block", density=L["density"], block_size=cfg.block_size)
    else:
        W, _ = golden.prune(W, "nm", nm=L["nm"])
    return np.asarray(W, dtype=np.int8)


def _chain(cfg, L: dict, prev) -> dict:
    """``L`` reading the previous layer's int8 output as its input, when the ops match and the
    shapes fit (``chain`` = False otherwise)."""
    if prev is None or prev[0] != L["op"]:
        return dict(L, chain=False)
    M, N = prev[3]
    if L["op"] == "matmul":
        C = dict(L, k=M, n=N, chain=True)
    else:
        oh, ow = prev[4]
        kh, kw = min(L["kh"], oh), min(L["kw"], ow)
        C = dict(L, c=M, h=oh, w=ow, kh=kh, kw=kw, chain=True)
    return C if layer_fits(cfg, C) else dict(L, chain=False)


@dataclass
class Job:
    """A memory window image, its registers and the expected outputs."""

    base: int
    image: bytearray
    desc_base: int
    count: int
    layers: list = field(default_factory=list)
    outputs: list = field(default_factory=list)     # (absolute address, expected bytes)

    @property
    def limit(self) -> int:
        return self.base + len(self.image)


def build_job(rng, cfg, layers: list[dict], *, base: int = 0x1000) -> Job:
    """Place descriptors and buffers of ``layers`` in one window and compute golden outputs."""
    img = bytearray()

    def alloc(data: bytes, fill=None) -> int:
        off = _align(len(img))
        img.extend(b"\0" * (off - len(img)))
        img.extend(data)
        return off

    table = alloc(b"\0" * (64 * len(layers)))
    job = Job(base=base, image=img, desc_base=base + table, count=len(layers))
    prev = None         # (op, Y int8, out offset) of a requantized previous layer
    for i, L in enumerate(layers):
        conv = L["op"] == "conv2d"
        L = _chain(cfg, L, prev) if L.get("chain") else dict(L, chain=False)
        if conv:
            x = (prev[1].reshape(L["c"], L["h"], L["w"]) if L["chain"] else
                 rng.integers(-128, 128, size=(L["c"], L["h"], L["w"])).astype(np.int8))
            w = _weights(rng, L, (L["kout"], L["c"] * L["kh"] * L["kw"]), cfg)
            M, K = w.shape
            acts = x.tobytes()
        else:
            M, K, N = L["m"], L["k"], L["n"]
            X = (prev[1] if L["chain"] else
                 rng.integers(-128, 128, size=(K, N)).astype(np.int8))
            w = _weights(rng, L, (M, K), cfg)
            acts = X.tobytes()
        nm = L.get("nm", (2, 4))
        wo = alloc(split_weights(w, L["fmt"], cfg, nm=nm))
        ao = prev[2] if L["chain"] else alloc(acts)
        kw = dict(bias=None, mult=None, shift=None, lut=None, acc_width=cfg.acc_width)
        flags, qo, lo = 0, 0, 0
        if L["requant"]:
            if conv:
                acc = golden.conv2d(x[None], w.reshape(M, L["c"], L["kh"], L["kw"]),
                                    stride=L["stride"], padding=L["pad"],
                                    dilation=L["dilation"], acc_width=cfg.acc_width)
            else:
                acc = golden.matmul(w, X, acc_width=cfg.acc_width)
            amax = int(np.abs(np.asarray(acc, dtype=np.int64)).max(initial=1)) + 1
            bias = rng.integers(-amax // 4 - 1, amax // 4 + 1, size=M).astype(np.int64)
            mult = rng.integers(1 << 20, 1 << 22, size=M).astype(np.int64)
            shift = np.full(M, max(1, min(63, amax.bit_length() + 22 - 7)), dtype=np.int64)
            shift -= rng.integers(0, 3, size=M)
            shift = np.maximum(shift, 1)
            rec = b"".join(int(b).to_bytes(4, "little", signed=True)
                           + int(mu).to_bytes(4, "little") + bytes([int(s)]) + b"\0" * 7
                           for b, mu, s in zip(bias, mult, shift))
            assert len(rec) == M * QUANT_RECORD_BYTES
            qo = alloc(rec)
            kw.update(bias=bias, mult=mult, shift=shift)
            flags |= Flags.REQUANT
            if L["lut"]:
                table_ = golden.build_lut(L["lut"], 0.05, 0.02)
                lo = alloc(np.asarray(table_, dtype=np.int8).tobytes())
                kw["lut"] = table_
                flags |= Flags.LUT
        if conv:
            y = golden.conv2d(x[None], w.reshape(M, L["c"], L["kh"], L["kw"]),
                              stride=L["stride"], padding=L["pad"], dilation=L["dilation"], **kw)
            Y = np.asarray(y).reshape(M, -1)
        else:
            Y = np.asarray(golden.matmul(w, X, **kw))
        exp = (Y.astype(np.int8).tobytes() if L["requant"]
               else Y.astype(np.int64).astype("<i4").tobytes())
        oo = alloc(bytes(rng.integers(0, 256, size=len(exp), dtype=np.uint8)))   # canary
        common = dict(fmt=L["fmt"], weights=wo, acts=ao, out=oo, quant=qo, lut=lo,
                      flags=int(flags), group_size=cfg.group_size, block_size=cfg.block_size,
                      nm=tuple(nm))
        if conv:
            d = conv2d_descriptor(c=L["c"], h=L["h"], w=L["w"], kout=M, kh=L["kh"], kw=L["kw"],
                                  stride=L["stride"], pad=L["pad"], dilation=L["dilation"],
                                  **common)
        else:
            d = matmul_descriptor(m=M, k=K, n=N, **common)
        assert d.opcode == (Opcode.CONV2D if conv else Opcode.MATMUL)
        img[table + 64 * i: table + 64 * i + 64] = d.pack()
        job.layers.append(dict(L, desc=d, shape=Y.shape))
        job.outputs.append((base + oo, exp))
        geo = tuple(np.asarray(y).shape[2:]) if conv else None
        prev = (L["op"], Y.astype(np.int8), oo, Y.shape, geo) if L["requant"] else None
    img.extend(b"\0" * (_align(len(img), 4096) - len(img)))
    return job


class AccelDriver:
    """cocotb driver: memory model, register access, run and check.

    Parameters
    ----------
    dut : the accelerator toplevel (ports ``m_axi__*``, ``s_axil__*``, ``irq``, ``clk``, ``rst``)
    cfg : AcceleratorConfig
    mem_size : int
        Bytes of the ``AxiRam``.
    stall : float
        Probability of a pause cycle on each of the five AXI channels (and the AXI4-Lite ones).
    """

    def __init__(self, dut, cfg, *, mem_size: int = 1 << 20, stall: float = 0.0, seed: int = 1,
                 ram: bool = True):
        import random

        import cocotb
        from cocotb.clock import Clock
        from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster

        from .axi_vip import FaultyAxiRam, axi_rule_monitor

        self.dut, self.cfg = dut, cfg
        self.rng = random.Random(seed)
        cocotb.start_soon(Clock(dut.clk, CLK_NS, unit="ns").start())
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
        ifaces = [self.lite.read_if, self.lite.write_if]
        self.violations: list[str] = []
        self.ram = None
        if ram:     # else the memory is inside the toplevel (sim/sram_top.py)
            self.ram = FaultyAxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst,
                                    size=mem_size)
            ifaces += [self.ram.read_if, self.ram.write_if]
            cocotb.start_soon(axi_rule_monitor(dut, prefix="m_axi_", beat_bytes=cfg.axi_bytes,
                                               max_burst=cfg.axi_max_burst,
                                               violations=self.violations))
        for iface in ifaces:
            iface.log.setLevel(logging.WARNING)
        self.set_stall(stall)

    @property
    def faults(self) -> list[tuple[int, int, int]]:
        """``(lo, hi, resp)`` ranges answered SLVERR (2) or DECERR (3) by the memory."""
        return self.ram.faults

    @faults.setter
    def faults(self, value):
        self.ram.faults = value

    def set_stall(self, p: float):
        ram, lite = self.ram, self.lite
        chans = (lite.write_if.aw_channel, lite.read_if.ar_channel)
        if ram is not None:
            chans += (ram.write_if.aw_channel, ram.write_if.w_channel, ram.write_if.b_channel,
                      ram.read_if.ar_channel, ram.read_if.r_channel)
        for ch in chans:
            if p > 0:
                pat = [self.rng.random() < p for _ in range(97)]
                ch.set_pause_generator(itertools.cycle(pat))
            else:
                ch.clear_pause_generator()
                ch.pause = False

    def reg(self, name: str) -> int:
        from sparsemac.hw.top.regmap import register

        return register(self.cfg, name).offset

    async def reset(self):
        from cocotb.triggers import RisingEdge

        self.dut.rst.value = 1
        for _ in range(4):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        for _ in range(2):
            await RisingEdge(self.dut.clk)

    async def read(self, name: str) -> int:
        return await self.lite.read_dword(self.reg(name))

    async def write(self, name: str, value: int):
        await self.lite.write_dword(self.reg(name), value)

    async def counter(self, name: str) -> int:
        lo = await self.read(f"{name.upper()}_LO")
        hi = await self.read(f"{name.upper()}_HI")
        return lo | hi << 32

    def load(self, job: Job):
        if self.ram is not None:    # an in-design memory was preloaded at elaboration
            self.ram.write(job.base, bytes(job.image))

    async def program(self, job: Job, *, desc_base=None, count=None, limit=None):
        await self.write("MEM_BASE_LO", job.base)
        await self.write("MEM_LIMIT_LO", job.limit if limit is None else limit)
        await self.write("DESC_BASE_LO", job.desc_base if desc_base is None else desc_base)
        await self.write("DESC_COUNT", job.count if count is None else count)
        await self.write("IRQ_STATUS", 7)
        await self.write("IRQ_ENABLE", 3)

    async def start(self):
        await self.write("CONTROL", 1)

    async def wait_irq(self, max_cycles: int) -> int:
        """Wait for ``irq``; returns the cycles waited (raises on timeout)."""
        from cocotb.triggers import ClockCycles, First, RisingEdge
        from cocotb.utils import get_sim_time

        # Wait on the edge of ``irq`` itself (no Python work per clock cycle: long benchmark
        # layers run at Verilator speed), then align to the next clock edge.
        t0 = get_sim_time("ns")
        if self.dut.irq.value != 1:
            await First(RisingEdge(self.dut.irq), ClockCycles(self.dut.clk, max_cycles))
        await RisingEdge(self.dut.clk)
        if self.dut.irq.value != 1:
            raise AssertionError(f"no interrupt within {max_cycles} cycles")
        return round((get_sim_time("ns") - t0) / CLK_NS) - 1

    async def run(self, job: Job, *, max_cycles: int = 60_000, **prog) -> dict:
        """Load, program, start, wait; returns STATUS fields and the cycles."""
        self.load(job)
        await self.program(job, **prog)
        await self.start()
        cycles = await self.wait_irq(max_cycles)
        st = await self.read("STATUS")
        res = {"cycles": cycles, "busy": st & 1, "done": st >> 1 & 1, "error": st >> 2 & 1,
               "code": st >> 8 & 0xFF, "index": st >> 16,
               "error_addr": await self.read("ERROR_ADDR_LO"),
               "irq_status": await self.read("IRQ_STATUS")}
        await self.write("IRQ_STATUS", 7)
        return res

    def mismatches(self, job: Job, seed) -> list[str]:
        """Compare every output buffer with golden (a message per wrong layer)."""
        errs = []
        for i, (addr, exp) in enumerate(job.outputs):
            got = self.ram.read(addr, len(exp))
            if got != exp:
                L = job.layers[i]
                e = np.frombuffer(exp, dtype=np.int8 if L["requant"] else "<i4")
                g = np.frombuffer(got, dtype=np.int8 if L["requant"] else "<i4")
                bad = np.flatnonzero(e != g)
                errs.append(f"layer {i} ({L['op']} {L['fmt']} shape {L['shape']}, seed {seed}): "
                            f"{len(bad)} wrong, first at {bad[:5].tolist()}: expected "
                            f"{e[bad[:5]].tolist()} got {g[bad[:5]].tolist()}")
        outs = sorted((a - job.base, a - job.base + len(e)) for a, e in job.outputs)
        got = self.ram.read(job.base, len(job.image))
        pos = 0
        for lo, hi in outs + [(len(job.image), len(job.image))]:
            if got[pos:lo] != bytes(job.image[pos:lo]):
                bad = next(i for i in range(pos, lo) if got[i] != job.image[i])
                errs.append(f"byte outside every output buffer changed at window offset "
                            f"{bad:#x}: expected {job.image[bad]} got {got[bad]} (seed {seed})")
                break
            pos = hi
        return errs


def log2(x: int) -> int:
    return int(math.log2(x))
