"""Host-side driver of the accelerator top (docs/accelerator.md).

Two halves:

* pure Python (no cocotb import): :func:`random_layer` (a random layer that fits the tile
  buffers), :func:`build_job` (random layers compiled by `sparsemac.host.compiler` into one
  memory window: descriptor table, every buffer, the golden outputs) and :func:`layer_fits`;
* :class:`AccelDriver` (cocotb): loads a job into a cocotbext-axi ``AxiRam`` on ``m_axi_``,
  programs the registers with ``AxiLiteMaster`` on ``s_axil_``, waits for the interrupt and
  reads the results back.

A driver layer is a short dict translated by :func:`network_layer` into the layer schema of
`sparsemac.host.network` (which validates it): ``op`` (``matmul`` / ``conv2d``), ``fmt``,
``density`` or ``nm``, ``requant``, ``lut`` (an activation or None), the shape (matmul ``m``,
``k``, ``n``; conv2d ``c``, ``h``, ``w``, ``kout``, ``kh``, ``kw``, ``stride``, ``pad``,
``dilation``) and ``chain`` (read the previous layer's output instead of a fresh input).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sparsemac.host.compiler import compile_network, layer_buffer_shortfall
from sparsemac.host.compiler import split_weights as _split_weights
from sparsemac.host.network import network_from_dict

__all__ = ["split_weights", "random_layer", "layer_fits", "build_job", "job_networks",
           "network_layer", "Job", "AccelDriver"]

CLK_NS = 10


def split_weights(W, fmt: str, cfg, *, nm=(2, 4)) -> bytes:
    """The weight images of ``W[M, K]`` for ``cfg.tiles`` tiles, back to back
    (`sparsemac.host.compiler.split_weights`, docs/spec.md section 8.1)."""
    return b"".join(bytes(pw.image) for pw in _split_weights(np.asarray(W), fmt, cfg,
                                                             nm=tuple(nm)))


def network_layer(L: dict) -> tuple[tuple, dict]:
    """``(input shape, layer)`` of the driver layer ``L`` in the `sparsemac.host.network`
    schema (the input shape is what the layer reads when it starts a chain)."""
    e = {"op": L["op"], "format": L["fmt"], "requant": bool(L.get("requant", True)),
         "activation": (L.get("lut") or "none") if L.get("requant", True) else "none"}
    if L["fmt"] == "nm":
        e["nm"] = list(L.get("nm", (2, 4)))
    elif L.get("density") is not None:
        e["density"] = float(L["density"])
    if L["op"] == "matmul":
        e["out_features"] = L["m"]
        return (L["k"], L["n"]), e
    e.update(out_channels=L["kout"], kernel=[L["kh"], L["kw"]], stride=list(L["stride"]),
             padding=list(L["pad"]), dilation=list(L["dilation"]))
    return (L["c"], L["h"], L["w"]), e


def _spec(L: dict):
    shape, e = network_layer(L)
    return network_from_dict({"input": {"shape": list(shape)}, "layers": [e]}).layers[0]


def layer_fits(cfg, L: dict) -> bool:
    """The layer fits the tile buffers, its weights estimated as dense (the compiler's rule,
    `sparsemac.host.compiler.layer_buffer_shortfall`)."""
    return layer_buffer_shortfall(_spec(L), cfg) is None


def random_layer(rng, cfg, *, op: str, fmt: str, requant: bool = True, lut: str | None = None,
                 max_dim: int = 12) -> dict:
    """A random layer (driver dict) whose shapes fit the tile buffers of ``cfg``
    (`layer_fits`)."""
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


def _chain(cfg, L: dict, prev) -> dict:
    """``L`` reading the output of ``prev`` (the `LayerSpec` of the previous layer when it is
    requantized, else None) as its input, when the ops match and the shapes fit (``chain`` =
    False otherwise)."""
    if prev is None or prev.op != L["op"]:
        return dict(L, chain=False)
    if L["op"] == "matmul":
        M, N = prev.out_shape
        C = dict(L, k=M, n=N, chain=True)
    else:
        M, oh, ow = prev.out_shape
        C = dict(L, c=M, h=oh, w=ow, kh=min(L["kh"], oh), kw=min(L["kw"], ow), chain=True)
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


def job_networks(rng, cfg, layers: list[dict]) -> tuple[list, list[dict]]:
    """The network-schema dicts of ``layers`` and the layers as placed (``chain`` resolved).

    Consecutive layers with ``chain`` (when `_chain` accepts them) form one network; every
    other layer starts a network with a random int8 input.  Weights and inputs are random
    int8 over the whole range (-128..127), drawn from ``rng`` and given to the compiler as
    values.
    """
    nets, placed, prev = [], [], None
    for L in layers:
        L = _chain(cfg, L, prev) if L.get("chain") else dict(L, chain=False)
        shape, e = network_layer(L)
        if not L["chain"]:
            nets.append({"input": {"values": rng.integers(-128, 128, size=shape)
                                   .astype(np.int8)}, "layers": []})
        nets[-1]["layers"].append(e)
        spec = network_from_dict(nets[-1]).layers[-1]
        e["weights"] = rng.integers(-128, 128, size=spec.weight_shape).astype(np.int8)
        placed.append(L)
        prev = spec if L["requant"] else None
    return nets, placed


def build_job(rng, cfg, layers: list[dict], *, base: int = 0x1000, split=None) -> Job:
    """Compile ``layers`` (driver dicts) into one window with `sparsemac.host.compiler`:
    `job_networks`, then `compile_network` with random requantization parameters
    (``quant="random"``), canary-filled output buffers and no IRQ flag.

    ``split``: `compile_network`'s work split; default: ``rows`` or ``cols`` drawn per layer
    (from a generator of its own, so the other draws do not depend on it); the tables'
    order (``early`` / ``late``) is drawn per layer the same way."""
    nets, placed = job_networks(rng, cfg, layers)
    seed = int(rng.integers(0, 2**31))
    if split is None:
        pick = np.random.default_rng([seed, 8])
        split = [str(pick.choice(["rows", "cols"])) for _ in placed]
    # the tables before the activations or after the bodies (LATE_TABLES), drawn per layer
    order = np.random.default_rng([seed, 9])
    tables = [str(order.choice(["early", "late"])) for _ in placed]
    cn = compile_network([network_from_dict(n) for n in nets], cfg, base=base, seed=seed,
                         irq_last=False, quant="random", out_fill="random", split=split,
                         tables=tables)
    job = Job(base=base, image=bytearray(cn.image), desc_base=cn.desc_base,
              count=cn.desc_count)
    for L, cl in zip(placed, cn.layers, strict=True):
        job.layers.append(dict(L, desc=cl.descriptor, shape=cl.expected.shape))
        y = cl.expected.astype(np.int8 if cl.spec.requant else "<i4")
        job.outputs.append((base + cl.regions["out"].offset, y.tobytes()))
    return job


def _pool_expected(x, P: dict) -> np.ndarray:
    from sparsemac.golden.pool import avgpool2d, global_avgpool, maxpool2d

    if P["op"] == "maxpool2d":
        return maxpool2d(x, P["kernel"], P["stride"], P["pad"])
    if P["op"] == "avgpool2d":
        return avgpool2d(x, P["kernel"], P["stride"], P["pad"],
                         count_include_pad=P["include_pad"])
    return global_avgpool(x)


def pool_descriptor(P: dict, *, acts: int, out: int):
    """The descriptor of pool layer ``P`` (a dict: ``op`` maxpool2d / avgpool2d /
    global_avgpool, ``c``, ``h``, ``w``; the windowed ones ``kernel``, ``stride``, ``pad``,
    avgpool ``include_pad``)."""
    from sparsemac.golden import descriptors as gd

    if P["op"] == "global_avgpool":
        return gd.global_avgpool_descriptor(c=P["c"], h=P["h"], w=P["w"], acts=acts, out=out)
    kw = dict(c=P["c"], h=P["h"], w=P["w"], kernel=P["kernel"], stride=P["stride"],
              pad=P["pad"], acts=acts, out=out)
    if P["op"] == "maxpool2d":
        return gd.maxpool2d_descriptor(**kw)
    return gd.avgpool2d_descriptor(count_include_pad=P["include_pad"], **kw)


def pool_fits(cfg, P: dict) -> bool:
    """Whether pool layer ``P`` fits the tiles' buffers (`golden.tiling.pool_buffer_fits`)."""
    from sparsemac.golden.tiling import pool_buffer_fits

    if P["op"] == "global_avgpool":     # one H x W window: each at most 15 (4-bit fields)
        return (P["h"] <= 15 and P["w"] <= 15
                and pool_buffer_fits(cfg, c=P["c"], h=P["h"], w=P["w"], kh=P["h"], kw=P["w"]))
    (kh, kw), (sh, sw), (ph, pw) = P["kernel"], P["stride"], P["pad"]
    return pool_buffer_fits(cfg, c=P["c"], h=P["h"], w=P["w"], kh=kh, kw=kw, sh=sh, sw=sw,
                            ph=ph, pw=pw)


def random_pool(rng, cfg, *, op: str | None = None, max_hw: int = 8, chain: bool = False,
                planes: bool | None = None, **geometry) -> dict:
    """A random pool layer (for `add_pool_layers`) that fits ``cfg``'s tile buffers: kernel,
    stride and padding within the hardware's limits, an average counting its padding or not
    (``include_pad``, at random).
    ``geometry`` (``kernel``, ``stride``, ``pad``, ``include_pad``) fixes those fields; the
    shape is drawn until the pool fits.  ``planes``: True for an ``H x W`` plane of whole bus
    words (the image sent plane by plane to the tiles, `golden.net_pool.pool_unicast`), False
    for one that is not (multicast), None for either (a chained pool takes the layer's)."""
    from sparsemac.golden.net_pool import pool_unicast

    for _ in range(500):
        o = op or str(rng.choice(["maxpool2d", "avgpool2d", "global_avgpool"]))
        c = int(rng.integers(1, 2 * cfg.tiles + 3))
        h, w = (int(v) for v in rng.integers(1, max_hw + 1, size=2))
        if planes is not None and pool_unicast(h * w, cfg.axi_bytes) != planes:
            continue
        P = dict(op=o, c=c, h=h, w=w, chain=chain)
        if o != "global_avgpool":
            kh, kw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(1, min(w, 4) + 1))
            ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
            P.update(kernel=(kh, kw), stride=tuple(int(v) for v in rng.integers(1, 4, size=2)),
                     pad=(ph, pw))
            if o == "avgpool2d":
                P["include_pad"] = bool(rng.integers(0, 2))
            P.update(geometry)
            (kh, kw), (ph, pw) = P["kernel"], P["pad"]
            if h + 2 * ph < kh or w + 2 * pw < kw:
                continue
        if pool_fits(cfg, P):
            return P
    raise AssertionError(f"no {op or 'pool'} with {geometry} fits {cfg}")


def planes_only_pool(cfg) -> dict:
    """A 2x2 / 2 max pool (for `add_pool_layers`) whose image fits the tiles only because
    its planes go each to its own tile (`golden.net_pool.pool_unicast`): ``C*H*W`` above one
    tile's image buffer (``act_buf_depth * cols`` bytes), every tile's ``ceil(C / tiles)``
    planes inside it.  Needs two or more tiles."""
    cap = cfg.act_buf_depth * cfg.cols
    for h, w in ((8, 8), (4, 8), (4, 4), (2, 4), (2, 2)):
        if (h * w) % cfg.axi_bytes:
            continue
        for rows in range(min(cap // (h * w), cfg.out_buf_depth), 0, -1):
            c = rows * cfg.tiles
            if c * h * w <= cap:
                break
            P = dict(op="maxpool2d", c=c, h=h, w=w, kernel=(2, 2), stride=(2, 2), pad=(0, 0),
                     chain=False)
            if pool_fits(cfg, P):
                return P
    raise AssertionError(f"no pool fits {cfg} only plane by plane")


def add_pool_layers(rng, cfg, job: Job, pools: list[dict]) -> Job:
    """``job`` with pool layers appended to its table (docs/spec.md section 8.2).

    A pool with ``chain`` reads the int8 output of the job's last layer when that is a
    requantized conv2d or pool (``c``, ``h``, ``w`` taken from it), else a random int8 input
    placed in the window; its output buffer is appended (canary-filled).  The descriptor
    table is rewritten after the buffers.  Expected outputs: golden's pool of the input."""
    from sparsemac.golden.descriptors import Opcode, pack_descriptor, unpack_descriptor

    align = max(64, cfg.axi_bytes)
    image = bytearray(job.image)
    descs = [bytes(image[job.desc_base - job.base + 64 * i:][:64]) for i in range(job.count)]
    layers, outputs = list(job.layers), list(job.outputs)

    def put(data: bytes) -> int:
        image.extend(bytes(-len(image) % align))
        off = len(image)
        image.extend(data)
        return off

    for P in pools:
        P = dict(P)
        src = None
        if P.get("chain") and layers:
            d = unpack_descriptor(descs[-1])
            last = layers[-1]
            if d.opcode in (Opcode.CONV2D, Opcode.MAXPOOL2D, Opcode.AVGPOOL2D) and last[
                    "requant"]:
                oh, ow = ((d.oh, d.ow) if d.opcode == Opcode.CONV2D
                          else (last["shape"][1], last["shape"][2]))
                P.update(c=d.m, h=oh, w=ow)
                if P["op"] != "global_avgpool":
                    kh, kw = P["kernel"]
                    P["kernel"] = (min(kh, oh), min(kw, ow))
                    P["pad"] = tuple(min(p, k - 1) for p, k in zip(P["pad"], P["kernel"]))
                addr, data = outputs[-1]
                if pool_fits(cfg, P):
                    src = (addr - job.base,
                           np.frombuffer(data, np.int8).reshape(1, d.m, oh, ow))
                else:
                    P = dict(pools[len(layers) - len(job.layers)])
        if src is None:
            x = rng.integers(-128, 128, size=(1, P["c"], P["h"], P["w"])).astype(np.int8)
            src = (put(x.tobytes()), x)
        y = _pool_expected(src[1].astype(np.int64), P)[0].astype(np.int8)
        out = put(rng.integers(0, 256, size=y.size, dtype=np.uint8).tobytes())
        d = pool_descriptor(P, acts=src[0], out=out)
        descs.append(pack_descriptor(d))
        kk = d.h * d.w if d.opcode == Opcode.GLOBAL_AVGPOOL else d.kh * d.kw
        gather = -(-y.shape[1] * y.shape[2] // cfg.cols) * -(-d.m // cfg.tiles) * kk
        layers.append(dict(P, fmt="-", requant=True, desc=d, shape=y.shape, chain=bool(
            P.get("chain")), gather=gather))
        outputs.append((job.base + out, y.tobytes()))
    table = put(b"".join(descs))
    image.extend(bytes(-len(image) % align))
    return Job(base=job.base, image=image, desc_base=job.base + table, count=len(descs),
               layers=layers, outputs=outputs)


from .tb.axi import AxiTB  # noqa: E402  (the cocotb half below)


class AccelDriver(AxiTB):
    """cocotb driver: memory model, register access, run and check (the accelerator's
    :class:`sparsemac.sim.tb.axi.AxiTB`).

    Parameters
    ----------
    dut : the accelerator toplevel (ports ``m_axi__*``, ``s_axil__*``, ``irq``, ``clk``, ``rst``)
    cfg : AcceleratorConfig
    mem_size : int
        Bytes of the ``AxiRam``.
    stall : float
        Probability of a pause cycle on each of the five AXI channels (and the AXI4-Lite
        address channels): the base's ``backpressure``.
    seed, salt : int
        ``rng`` is ``random.Random(seed + salt)``; ``seed`` defaults to the run's seed.
    ram : bool
        Attach a ``FaultyAxiRam`` to ``m_axi_`` (else the memory is inside the toplevel,
        sim/sram_top.py).
    """

    reset_cycles = 4
    settle_cycles = 2

    def __init__(self, dut, cfg, *, mem_size: int = 1 << 20, stall: float = 0.0,
                 seed: int | None = None, salt: int = 0, ram: bool = True):
        super().__init__(dut, seed=seed, salt=salt, backpressure=stall)
        self.cfg = cfg
        self.add_axil_master("s_axil_")
        if ram:
            self.add_axi_ram(size=mem_size, beat_bytes=cfg.axi_bytes,
                             max_burst=cfg.axi_max_burst, prefix="m_axi_")
        self.set_stall(stall)

    @property
    def faults(self) -> list[tuple[int, int, int]]:
        """``(lo, hi, resp)`` ranges answered SLVERR (2) or DECERR (3) by the memory."""
        return self.ram.faults

    @faults.setter
    def faults(self, value):
        self.ram.faults = value

    def reg(self, name: str) -> int:
        from sparsemac.hw.top.regmap import register

        return register(self.cfg, name).offset

    async def read(self, name: str) -> int:
        return await self.lite.read_dword(self.reg(name))

    async def write(self, name: str, value: int):
        await self.lite.write_dword(self.reg(name), value)

    async def counter(self, name: str) -> int:
        lo = await self.read(f"{name.upper()}_LO")
        hi = await self.read(f"{name.upper()}_HI")
        return lo | hi << 32

    def mem_read(self, addr: int, length: int) -> bytes:
        """``length`` bytes of the memory at bus address ``addr`` (the ``AxiRam`` answers
        address ``a`` from byte ``a % size``, so a window high in the address space sits
        at its low bits)."""
        return self.ram.read(addr % self.ram.size, length)

    def mem_write(self, addr: int, data: bytes):
        self.ram.write(addr % self.ram.size, data)

    def load(self, job: Job):
        if self.ram is not None:    # an in-design memory was preloaded at elaboration
            self.mem_write(job.base, bytes(job.image))

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
        return round((get_sim_time("ns") - t0) / self.clk_ns) - 1

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
            got = self.mem_read(addr, len(exp))
            if got != exp:
                L = job.layers[i]
                e = np.frombuffer(exp, dtype=np.int8 if L["requant"] else "<i4")
                g = np.frombuffer(got, dtype=np.int8 if L["requant"] else "<i4")
                bad = np.flatnonzero(e != g)
                errs.append(f"layer {i} ({L['op']} {L['fmt']} shape {L['shape']}, seed {seed}): "
                            f"{len(bad)} wrong, first at {bad[:5].tolist()}: expected "
                            f"{e[bad[:5]].tolist()} got {g[bad[:5]].tolist()}")
        outs = sorted((a - job.base, a - job.base + len(e)) for a, e in job.outputs)
        got = self.mem_read(job.base, len(job.image))
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
