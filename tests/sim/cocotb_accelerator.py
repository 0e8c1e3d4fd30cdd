"""cocotb tests of the accelerator top (hw/accelerator.py) through sim/accel_driver.py.

The config comes from ``SPARSEMAC_CFG`` (``sim.tb.base.config_from_env``), the seed from the
run, ``nets`` (random networks per run) from ``SPARSEMAC_PARAMS``.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge
from sparsemac.golden.desc_rules import validate_descriptor
from sparsemac.golden.descriptors import DESC_BYTES, ErrorCode, Flags
from sparsemac.golden.formats import FORMAT_CODES
from sparsemac.sim.accel_driver import (
    AccelDriver,
    add_pool_layers,
    build_job,
    layer_fits,
    planes_only_pool,
    random_layer,
    random_pool,
)
from sparsemac.sim.coverage_bins import BinsRecorder
from sparsemac.sim.tb.base import config_from_env, params_from_env, run_seed

SEED = run_seed()
CFG = config_from_env()
NETS = int(params_from_env(nets=2)["nets"])
#: largest M / K / N (conv: output channels) of ``random_networks``' layers
MAX_DIM = int(params_from_env(max_dim=12)["max_dim"])
E = ErrorCode
#: functional coverage bins (sim/coverage_bins.py): written only on coverage runs
FCOV = BinsRecorder(f"accelerator-{CFG.name}")


class _Driver(AccelDriver):
    """`AccelDriver` that records the functional bins of every job it runs."""

    def set_stall(self, p=None, *, channels=None, period=None):
        if channels is None:
            self.stall_p = self.backpressure if p is None else p
        super().set_stall(p, channels=channels, period=period)

    async def run(self, job, **kw):
        res = await super().run(job, **kw)
        FCOV.record(job, tiles=CFG.tiles, stall=self.stall_p,
                    code=res["code"] if res["error"] else 0, index=res["index"])
        return res


async def _tb(dut, stall=0.0, salt=0):
    tb = _Driver(dut, CFG, stall=stall, seed=SEED, salt=salt)
    await tb.reset()
    return tb


def _rng(salt):
    return np.random.default_rng([SEED, salt])


def _built(fmt: str) -> str:
    """``fmt`` if the build has it, else N:M, else dense (every build has dense)."""
    return fmt if fmt in CFG.formats else "nm" if "nm" in CFG.formats else "dense"


def _check_ok(tb, job, res, what):
    bad = job.layers[min(res["index"], len(job.layers) - 1)]
    assert res["done"] == 1 and res["error"] == 0, (
        f"{what}: expected done without error, got {res}; layer "
        f"{ {k: v for k, v in bad.items() if k != 'desc'} } (seed {SEED})")
    errs = tb.mismatches(job, SEED)
    assert not errs, f"{what}: " + "; ".join(errs)


@cocotb.test()
async def matmul_dense_and_nm(dut):
    """(a) one matmul per format family, descriptors from memory, interrupt, bit-exact; the
    descriptor IRQ flag of one layer of two."""
    tb = await _tb(dut)
    rng = _rng(1)
    for fmt in ("dense", "nm"):
        for requant in (True, False):
            job = build_job(rng, CFG, [random_layer(rng, CFG, op="matmul", fmt=fmt,
                                                    requant=requant)])
            d = _desc_at(job, 0)
            _put_desc(job, 0, d.replace(flags=d.flags | (8 if requant else 0)))
            res = await tb.run(job)
            _check_ok(tb, job, res, f"matmul {fmt} requant={requant}")
            assert res["irq_status"] & 1, f"IRQ_STATUS.done not set: {res}"
            assert bool(res["irq_status"] & 4) == requant, (
                f"IRQ_STATUS.desc_done {res['irq_status']:#x} for IRQ flag {requant}")
    # two layers, the IRQ flag on the first only or on neither: desc_done follows the layer
    # that ran, not the next descriptor (prefetched into the sequencer while the first waits)
    for flagged in (True, False):
        job = _two_layers(rng)
        d = _desc_at(job, 0)
        _put_desc(job, 0, d.replace(flags=d.flags | (Flags.IRQ if flagged else 0)))
        res = await tb.run(job)
        _check_ok(tb, job, res, f"two layers, IRQ flag on the first: {flagged}")
        assert bool(res["irq_status"] & 4) == flagged, (
            f"IRQ_STATUS.desc_done {res['irq_status']:#x}, IRQ flag on descriptor 0 only: "
            f"{flagged} (seed {SEED})")


@cocotb.test(skip=not CFG.pool_enabled)
async def pools(dut):
    """Max, average (padding counted or not) and global average pools on the tiles (docs/spec.md
    sections 2.3, 8.2): chained after a conv2d's int8 output and on random inputs of random
    geometry, mixed with conv / matmul layers in one table and run back to back, random AXI
    stalls; bit-exact with golden, nothing written outside the outputs."""
    tb = await _tb(dut, stall=0.2, salt=40)
    rng = _rng(40)
    for rnd in range(3):
        conv = random_layer(rng, CFG, op="conv2d", fmt=_built("dense"), requant=True)
        job = build_job(rng, CFG, [conv])
        pools = [random_pool(rng, CFG, op="maxpool2d", kernel=(2, 2), stride=(2, 2),
                             pad=(0, 0), chain=True),
                 random_pool(rng, CFG, op="avgpool2d", kernel=(3, 3), stride=(1, 1),
                             pad=(1, 1), include_pad=True, chain=True),
                 # count_include_pad 0 (ONNX's default): counts 4, 6, 9 of a 3x3 / 1 pad 1,
                 # and 1 at the corners of a 2x2 / 2 pad 1
                 random_pool(rng, CFG, op="avgpool2d", kernel=(3, 3), stride=(1, 1),
                             pad=(1, 1), include_pad=False, chain=True),
                 random_pool(rng, CFG, op="avgpool2d", kernel=(2, 2), stride=(2, 2),
                             pad=(1, 1), include_pad=False),
                 random_pool(rng, CFG, op="global_avgpool", chain=True)]
        # the image plane by plane to the tiles (H*W whole bus words) and multicast
        pools += [random_pool(rng, CFG, planes=True), random_pool(rng, CFG, planes=False)]
        pools += [random_pool(rng, CFG) for _ in range(2)]
        if CFG.tiles > 1 and rnd == 0:  # an image larger than a tile's buffer: planes only
            pools.append(planes_only_pool(CFG))
        job = add_pool_layers(rng, CFG, job, pools)
        before = [await tb.counter(n) for n in ("pool_active_cycles", "busy_cycles")]
        res = await tb.run(job)
        _check_ok(tb, job, res, f"round {rnd}: conv2d then pools "
                  f"{[(P['op'], P.get('kernel'), P.get('chain')) for P in job.layers[1:]]}")
        pooled = await tb.counter("pool_active_cycles") - before[0]
        busy = await tb.counter("busy_cycles") - before[1]
        # at least one window position per cycle of the pools' gathers, inside the run
        least = max(P.get("gather", 1) for P in job.layers[1:])
        assert least <= pooled < busy, (
            f"round {rnd}: POOL_ACTIVE_CYCLES grew by {pooled} over a run of {busy} busy "
            f"cycles (seed {SEED})")
        # a matmul / conv table right after a pool table: the tiles leave the pool mode
        job = build_job(rng, CFG, [random_layer(rng, CFG, op=op, fmt=_built("nm"),
                                                requant=True) for op in ("conv2d", "matmul")])
        before = await tb.counter("pool_active_cycles")
        _check_ok(tb, job, await tb.run(job), f"round {rnd}: conv2d + matmul after the pools")
        assert await tb.counter("pool_active_cycles") == before, (
            f"round {rnd}: POOL_ACTIVE_CYCLES counted during a table without pools")


@cocotb.test()
async def random_networks(dut):
    """(b, c) random multi-layer networks: every format, matmul + conv2d, requant, LUTs;
    the AXI pauses cycle through none / light / heavy per network and half the layers take a
    weight sparsity from the ends random_layer does not draw (functional coverage bins,
    sim/coverage_bins.py)."""
    tb = await _tb(dut, salt=2)
    rng = _rng(2)
    fmts = list(CFG.formats)
    # N:M patterns random_layer does not draw (the hardware takes N a power of two)
    nms = [nm for nm in ((2, 2), (4, 4), (1, 8), (1, 16)) if nm[1] <= CFG.nm_max_m]
    for net in range(NETS):
        tb.set_stall((0.0, 0.1, 0.4)[net % 3])
        layers = []
        for _ in range(int(rng.integers(2, 5))):
            op = str(rng.choice(["matmul", "conv2d"]))
            requant = bool(rng.random() < 0.8)
            lut = str(rng.choice(["relu", "tanh", "sigmoid", "gelu"])) if rng.random() < 0.6 \
                else None
            L = random_layer(rng, CFG, op=op, fmt=str(rng.choice(fmts)), requant=requant,
                             lut=lut if CFG.lut_enabled else None, max_dim=MAX_DIM)
            if rng.random() < 0.5:          # sparsity ~0 %, 25 %, 82 %, >= 90 %
                if L["fmt"] == "nm":
                    L["nm"] = nms[int(rng.integers(0, len(nms)))]
                else:
                    L["density"] = float(rng.choice([1.0, 0.75, 0.18, 0.05]))
            L["chain"] = bool(rng.random() < 0.6)   # read the previous output
            layers.append(L)
        job = build_job(rng, CFG, layers)
        res = await tb.run(job, max_cycles=150_000)
        _check_ok(tb, job, res, f"network {net} "
                  f"{[(L['op'], L['fmt'], L['chain']) for L in job.layers]}")


@cocotb.test()
async def stalls_on_all_channels(dut):
    """Random pauses on all five AXI channels (and the register port): still bit-exact."""
    tb = await _tb(dut, stall=0.4, salt=3)
    rng = _rng(3)
    layers = [random_layer(rng, CFG, op=op, fmt=f, lut="relu" if CFG.lut_enabled else None)
              for op, f in (("matmul", "bitmap"), ("conv2d", "nm"), ("matmul", "block"))
              if f in CFG.formats]
    job = build_job(rng, CFG, layers)
    res = await tb.run(job, max_cycles=150_000)
    _check_ok(tb, job, res, "stalled network")


@cocotb.test()
async def performance_counters(dut):
    """(d) counters: cycles, busy, MAC-active, bytes read / written against the job."""
    tb = await _tb(dut, salt=4)
    rng = _rng(4)
    job = build_job(rng, CFG, [random_layer(rng, CFG, op="matmul", fmt="dense")])
    await tb.write("CONTROL", 4)     # perf_clear
    res = await tb.run(job)
    _check_ok(tb, job, res, "counters job")
    c = {n: await tb.counter(n) for n in ("cycles", "busy_cycles", "mac_active_cycles",
                                          "bytes_read", "bytes_written", "stall_desc_cycles")}
    exp_written = sum(len(e) for _, e in job.outputs)
    assert c["bytes_written"] == exp_written, f"bytes_written {c} vs {exp_written} (seed {SEED})"
    L = job.layers[0]
    d = L["desc"]
    assert c["bytes_read"] >= 64 + d.k * d.n, f"bytes_read too small: {c} (seed {SEED})"
    assert 0 < c["mac_active_cycles"] <= c["busy_cycles"] <= res["cycles"] + 10 < c["cycles"], (
        f"counter relations broken: {c}, run {res['cycles']} cycles (seed {SEED})")
    assert c["stall_desc_cycles"] > 0, f"descriptor fetch not counted: {c}"


def _desc_at(job, i):
    from sparsemac.golden.descriptors import unpack_descriptor

    off = job.desc_base - job.base + 64 * i
    return unpack_descriptor(bytes(job.image[off:off + 64]))


def _put_desc(job, i, d):
    off = job.desc_base - job.base + 64 * i
    job.image[off:off + 64] = d.pack()


def _two_layers(rng):
    layers = [random_layer(rng, CFG, op="matmul", fmt="dense"),
              random_layer(rng, CFG, op="conv2d", fmt=_built("nm"), requant=True)]
    return build_job(rng, CFG, layers)


def _only_first_written(tb, job, what):
    """Layer 0 is bit-exact, every other byte of the window is unchanged."""
    first = [job.outputs[0]]
    keep = job.outputs
    job.outputs = first
    errs = tb.mismatches(job, SEED)
    job.outputs = keep
    assert not errs, f"{what}: " + "; ".join(errs)


async def _expect_error(tb, job, code, what, *, index=1, **prog):
    res = await tb.run(job, **prog)
    assert res["error"] == 1 and res["done"] == 0 and res["code"] == code, (
        f"{what}: expected error code {int(code)} ({ErrorCode(code).name}), got {res} "
        f"(seed {SEED})")
    assert res["irq_status"] & 2, f"{what}: IRQ_STATUS.error not set: {res}"
    got_index = await tb.read("ERROR_DESC")
    assert got_index == index, f"{what}: ERROR_DESC {got_index}, expected {index}"
    return res


@cocotb.test()
async def bad_descriptors(dut):
    """(d) every descriptor error class: documented code (golden order), interrupt, no write."""

    tb = await _tb(dut, salt=5)
    rng = _rng(5)
    window = None
    cases = {
        "magic": dict(magic=0x12345678), "opcode": dict(opcode=7), "format": dict(format=9),
        "param": dict(param_a=3, param_b=3, format=0), "flags": dict(flags=0x80),
        "accumulate": dict(flags=0x5),
        "lut_without_requant": dict(flags=2), "zero_m": dict(m=0), "zero_k": dict(k=0),
        "conv_n": "conv_n", "misaligned": "misaligned", "out_of_window": "oow",
        "negative_n": dict(n=0x80000000),
    }
    for f in ("dense", "bitmap", "block", "nm"):     # a format the build leaves out
        if f not in CFG.formats:
            cases[f"unsupported_{f}"] = dict(format=FORMAT_CODES[f])
    for name, change in cases.items():
        job = _two_layers(rng)
        window = len(job.image)
        d = _desc_at(job, 1)
        if change == "conv_n":
            change = dict(n=d.n + 1)
        elif change == "misaligned":
            change = dict(acts=d.acts + 1)
        elif change == "oow":
            change = dict(out=window)
        bad = d.replace(**change)
        _put_desc(job, 1, bad)
        exp = validate_descriptor(bad, CFG, window_bytes=window)
        if name == "accumulate":      # hardware limit beyond golden (docs/accelerator.md)
            assert exp == E.OK
            exp = E.BAD_FLAGS
        assert exp != E.OK, f"{name}: golden accepts {bad}"
        res = await _expect_error(tb, job, exp, f"descriptor {name}")
        assert res["error_addr"] == job.desc_base + 64, f"{name}: ERROR_ADDR {res}"
        _only_first_written(tb, job, f"descriptor {name}")


@cocotb.test()
async def bad_tables_and_images(dut):
    """(d) table registers and weight-image headers: documented code, memory untouched."""
    from sparsemac.golden.format_check import parse_weights
    from sparsemac.golden.formats import FormatError

    tb = await _tb(dut, salt=6)
    rng = _rng(6)
    # descriptor table registers
    for what, prog, code in (("count 0", dict(count=0), E.DESC_COUNT),
                             ("count past window", dict(count=1 << 20), E.DESC_COUNT),
                             ("base misaligned", "mis", E.MISALIGNED),
                             ("base outside", "out", E.OUT_OF_WINDOW)):
        job = _two_layers(rng)
        if prog == "mis":
            prog = dict(desc_base=job.desc_base + 1)
        elif prog == "out":
            prog = dict(desc_base=job.limit)
        await _expect_error(tb, job, code, what, index=0, **prog)
        job.outputs = []
        errs = tb.mismatches(job, SEED)
        assert not errs, f"{what}: memory changed: {errs}"
    # weight image header of layer 1 (golden parse_weights gives the code)
    for what, off, value in (("image magic", 0, 0x11), ("image format", 4, 2),
                             ("image total", 28, 40), ("image section", 16, 16)):
        job = _two_layers(rng)
        w0 = _desc_at(job, 1).weights
        job.image[w0 + off] = value
        if what == "image format":      # a format other than the descriptor's (spec 8.1)
            exp = E.BAD_FORMAT
        else:                           # the image alone is broken: golden's code
            try:
                total = int.from_bytes(job.image[w0 + 28:w0 + 32], "little")
                parse_weights(bytes(job.image[w0:w0 + max(32, total)]))
                raise AssertionError(f"{what}: golden accepts the image")
            except FormatError as exc:
                exp = E(int(exc.code))
        await _expect_error(tb, job, exp, what)
        _only_first_written(tb, job, what)
    # section sizes (golden BAD_SECTION beyond offsets and order): layer 1's nm image with
    # section A emptied, or with its unused section C before total
    for what in ("image section A too small", "image unused section C"):
        job = _two_layers(rng)
        w0 = _desc_at(job, 1).weights
        hdr = [int.from_bytes(job.image[w0 + o:w0 + o + 4], "little") for o in range(0, 32, 4)]
        at, value = (20, hdr[4]) if what.endswith("small") else (24, hdr[5])
        job.image[w0 + at:w0 + at + 4] = value.to_bytes(4, "little")
        try:
            parse_weights(bytes(job.image[w0:w0 + hdr[7]]))
            raise AssertionError(f"{what}: golden accepts the image")
        except FormatError as exc:
            assert exc.code == E.BAD_SECTION, f"{what}: golden says {exc}"
        res = await _expect_error(tb, job, E.BAD_SECTION, what)
        assert res["error_addr"] == job.base + w0, f"{what}: ERROR_ADDR {res}"
        _only_first_written(tb, job, what)
    # a layer too big for the tile buffers: the tile's error flag -> BAD_SHAPE, and writes
    # (if any) stay inside its output buffer
    big = dict(op="matmul", fmt="dense", requant=True, lut=None, density=0.5,
               m=2, k=CFG.act_buf_depth + 1, n=CFG.cols)
    job = build_job(rng, CFG, [random_layer(rng, CFG, op="matmul", fmt="dense"), big])
    await _expect_error(tb, job, E.BAD_SHAPE, "tile buffer overflow")
    keep = job.outputs
    job.outputs = [keep[0]]
    errs = tb.mismatches(job, SEED)
    job.outputs = keep
    errs = [e for e in errs if "outside" not in e] + [
        e for e in tb.mismatches(job, SEED) if "outside" in e]
    assert not errs, f"tile overflow: {errs}"
    assert not tb.violations, f"AXI rule violations: {tb.violations[:5]}"


def _act_needs(L):
    """(image entries, im2col entries, flag words) of a layer dict: docs/accelerator.md."""
    if L["op"] == "matmul":
        k, n, img = L["k"], L["n"], L["k"] * L["n"]
    else:
        (sh, sw), (ph, pw) = L["stride"], L["pad"]
        oh = (L["h"] + 2 * ph - L["kh"]) // sh + 1
        ow = (L["w"] + 2 * pw - L["kw"]) // sw + 1
        k, n, img = L["c"] * L["kh"] * L["kw"], oh * ow, L["c"] * L["h"] * L["w"]
    ncg = -(-n // CFG.cols)
    return -(-img // CFG.cols), ncg * k, ncg * -(-k // CFG.axi_data_width)


def _conv(**kw):
    L = dict(op="conv2d", fmt="dense", requant=True, lut=None, density=0.5, c=1, kout=2,
             kh=1, kw=1, stride=(1, 1), pad=(0, 0), dilation=(1, 1))
    L.update(kw)
    return L


def _over_buffer_layers():
    """Layers that exceed exactly one tile activation limit each (and the demo's conv1)."""
    depth, nz = CFG.act_buf_depth, max(2, CFG.act_buf_depth // 8)
    h = next(h for h in range(1, 200) if -(-h * h // CFG.cols) > depth)
    s = min(15, h)
    image = _conv(h=h, w=h, stride=(s, s))
    gather = next(L for c in range(1, 16) for h in range(2, 64)
                  for L in [_conv(c=c, h=h, w=h, kh=3, kw=3, pad=(1, 1))]
                  if [n > lim for n, lim in zip(_act_needs(L), (depth, depth, nz))]
                  == [False, True, False])
    flags = dict(op="matmul", fmt="dense", requant=True, lut=None, density=0.5, m=2, k=1,
                 n=CFG.cols * (nz + 1))
    layers = {"image entries": (image, 0), "im2col entries": (gather, 1),
              "flag words": (flags, 2)}
    demo = _conv(c=3, h=12, w=12, kh=3, kw=3, pad=(1, 1), kout=8, fmt=_built("bitmap"))
    if any(n > lim for n, lim in zip(_act_needs(demo), (depth, depth, nz))):
        layers["demo conv1 (counters wrap)"] = (demo, None)     # too big for small configs only
    return layers


@cocotb.test()
async def tile_buffer_limits(dut):
    """A layer beyond the tile's activation buffers (image, im2col entries, flag words) is
    refused at its descriptor with BAD_SHAPE and the interrupt, before any output byte is
    written, and never hangs; the largest layer that fits runs bit-exact."""
    tb = await _tb(dut, salt=8)
    rng = _rng(8)
    depth, nz = CFG.act_buf_depth, max(2, CFG.act_buf_depth // 8)
    for what, (L, which) in _over_buffer_layers().items():
        needs = _act_needs(L)
        limits = (depth, depth, nz)
        over = [i for i in range(3) if needs[i] > limits[i]]
        assert over and (which is None or over == [which]), (
            f"{what}: test layer needs {needs}, limits {limits}")
        assert not layer_fits(CFG, L), f"{what}: sim.accel_driver.layer_fits accepts {L}"
        # split by rows: the whole layer's columns in every tile (a column split shares
        # out the im2col entries and flag words; compile_network takes it only where it fits)
        job = build_job(rng, CFG, [random_layer(rng, CFG, op="matmul", fmt="dense"), L],
                        split="rows")
        res = await _expect_error(tb, job, E.BAD_SHAPE, f"{what} {needs} > {limits}",
                                  max_cycles=4 * CFG.watchdog_cycles + 20_000)
        assert res["error_addr"] == job.desc_base + 64, f"{what}: ERROR_ADDR {res}"
        _only_first_written(tb, job, f"{what} (seed {SEED})")
        job = _two_layers(rng)
        _check_ok(tb, job, await tb.run(job), f"job after {what}")
    # exactly full: image and im2col entries == act_buf_depth
    full = dict(op="matmul", fmt="dense", requant=True, lut=None, density=0.5, m=2,
                k=depth, n=CFG.cols)
    assert _act_needs(full)[:2] == (depth, depth) and layer_fits(CFG, full), full
    job = build_job(rng, CFG, [random_layer(rng, CFG, op="conv2d", fmt="nm"), full])
    _check_ok(tb, job, await tb.run(job), "layer filling the activation buffer")
    assert not tb.violations, f"AXI rule violations: {tb.violations[:5]}"


def _pad_last_image(job, i: int, total: int) -> int:
    """Move descriptor ``i``'s weight images (dense or nm) to the end of the window, the last
    one padded with zero bytes to ``total`` bytes (header ``total`` and the unused section
    offsets follow it; the extra bytes are room at the end of its last section, which the
    format allows); returns the padded image's window offset."""
    d = _desc_at(job, i)
    blob, last, slices = bytearray(), 0, _slices(job, d)
    for j, (off, _rows, tot) in enumerate(slices):
        img = bytearray(job.image[off:off + tot])
        if j == len(slices) - 1:
            assert img[4] in (0, 3) and total >= tot, (img[4], total, tot)
            img += bytes(total - tot)
            t4 = total.to_bytes(4, "little")
            img[28:32] = img[24:28] = t4        # total, sec_c (unused by dense and nm)
            if img[4] == 0:
                img[20:24] = t4                 # sec_b, unused by dense
            last = len(blob)
        blob += img
    start = -(-len(job.image) // 64) * 64
    job.image += bytes(start - len(job.image)) + blob
    _put_desc(job, i, d.replace(weights=start))
    return start + last


@cocotb.test()
async def weight_image_buffer_bound(dut):
    """The weight-buffer bound of an image (docs/accelerator.md: ``total`` at most
    weight_buf_depth x bus bytes, else BAD_SIZE at the image): an image padded to exactly
    the tile's weight buffer runs bit-exact; one bus word (and one 32-byte unit) more is
    refused with BAD_SIZE, ERROR_ADDR = that image, nothing of the layer written."""
    tb = await _tb(dut, salt=18)
    rng = _rng(18)
    limit = CFG.weight_buf_depth * CFG.axi_bytes
    for fmt in ("dense", "nm"):
        for extra in (0, 32, CFG.axi_bytes):
            layers = [random_layer(rng, CFG, op="conv2d", fmt="nm"),
                      random_layer(rng, CFG, op="matmul", fmt=fmt)]
            job = build_job(rng, CFG, layers)
            at = _pad_last_image(job, 1, limit + extra)
            what = f"{fmt} image of {limit + extra} bytes, weight buffer {limit} (seed {SEED})"
            if extra == 0:
                _check_ok(tb, job, await tb.run(job), what)
                continue
            res = await _expect_error(tb, job, E.BAD_SIZE, what)
            assert res["error_addr"] == job.base + at, (
                f"{what}: ERROR_ADDR {res['error_addr']:#x}, image at {job.base + at:#x}")
            _only_first_written(tb, job, what)
    assert not tb.violations, f"AXI rule violations: {tb.violations[:5]}"


@cocotb.test()
async def bus_errors_watchdog_soft_reset(dut):
    """(d) SLVERR / DECERR stop the job with the faulting address; a stuck R channel trips
    the watchdog; soft reset mid-layer returns to idle; every following job is bit-exact.
    A fault on descriptor 1 (read by the prefetch while layer 0 waits for its results) is
    reported after layer 0 has ended, whole and bit-exact, with ERROR_DESC 1."""
    tb = await _tb(dut, salt=7)
    rng = _rng(7)
    for resp, code, kind in ((2, E.AXI_SLVERR, "acts"), (3, E.AXI_DECERR, "acts"),
                             (2, E.AXI_SLVERR, "out"), (3, E.AXI_DECERR, "out"),
                             (2, E.AXI_SLVERR, "desc"), (3, E.AXI_DECERR, "desc")):
        job = _two_layers(rng)
        d = _desc_at(job, 1)
        lo = job.desc_base + DESC_BYTES if kind == "desc" else job.base + getattr(d, kind)
        tb.faults = [(lo, lo + 1, resp)]
        res = await _expect_error(tb, job, code, f"{kind} fault {resp}")
        beat = CFG.axi_bytes
        assert lo & ~(beat - 1) <= res["error_addr"] < lo + 64 + beat, (
            f"{kind} fault: ERROR_ADDR {res['error_addr']:#x}, fault at {lo:#x}")
        tb.faults = []
        job.outputs = job.outputs[:1]
        errs = [e for e in tb.mismatches(job, SEED) if kind != "out" or "outside" not in e]
        assert not errs, f"{kind} fault: {errs}"
        job = _two_layers(rng)
        _check_ok(tb, job, await tb.run(job), f"job after a {kind} fault")
    # watchdog: the R channel stops answering in the middle of a run (on the builds with a
    # short watchdog: the default build's 65,536 cycles took 90 s of the regression to wait
    # out, and its watchdog is the same counter with a wider compare)
    if CFG.watchdog_cycles <= WATCHDOG_WAIT_MAX:
        await _stuck_read_trips_the_watchdog(tb, rng)
    else:
        dut._log.info(f"watchdog {CFG.watchdog_cycles} cycles > {WATCHDOG_WAIT_MAX}: the "
                      "stuck-read round runs on the configs with a short watchdog")
    # soft reset at random points of a running job
    for _ in range(3):
        job = build_job(rng, CFG, [random_layer(rng, CFG, op="conv2d", fmt=_built("bitmap")),
                                   random_layer(rng, CFG, op="matmul", fmt=_built("block"))])
        tb.load(job)
        await tb.program(job)
        await tb.start()
        for _ in range(int(rng.integers(10, 400))):
            await RisingEdge(dut.clk)
        await tb.write("CONTROL", 2)
        for _ in range(2000):
            st = await tb.read("STATUS")
            if not st & 1:
                break
        assert st & 7 == 0, f"soft reset: STATUS {st:#x}, expected idle without error"
        await tb.write("IRQ_STATUS", 7)
        job = _two_layers(rng)
        _check_ok(tb, job, await tb.run(job), "job after a soft reset")
    assert not tb.violations, f"AXI rule violations: {tb.violations[:5]}"


#: The longest watchdog the stuck-read round of `bus_errors_watchdog_soft_reset` waits out.
WATCHDOG_WAIT_MAX = 8192


async def _stuck_read_trips_the_watchdog(tb, rng):
    """The R channel stops answering in the middle of a run: the job ends with WATCHDOG."""
    dut = tb.dut
    job = _two_layers(rng)
    tb.load(job)
    await tb.program(job)
    await tb.start()
    for _ in range(int(rng.integers(5, 40))):
        await RisingEdge(dut.clk)
    tb.ram.read_if.r_channel.set_pause_generator(iter(lambda: True, False))
    cycles = await tb.wait_irq(4 * CFG.watchdog_cycles + 20_000)
    st = await tb.read("STATUS")
    assert st >> 8 & 0xFF == E.WATCHDOG, f"stuck R: STATUS {st:#x} after {cycles} (seed {SEED})"
    FCOV.record_error(E.WATCHDOG, tiles=CFG.tiles)
    tb.ram.read_if.r_channel.clear_pause_generator()
    tb.ram.read_if.r_channel.pause = False
    await tb.write("IRQ_STATUS", 7)


def _slices(job, d):
    """(window offset, rows, total) of each weight image of descriptor ``d`` (spec 8.1)."""
    out, off, rows = [], d.weights, 0
    while rows < d.m:
        r = int.from_bytes(job.image[off + 8:off + 12], "little")
        total = int.from_bytes(job.image[off + 28:off + 32], "little")
        out.append((off, r, total))
        rows, off = rows + r, off + total
    return out


def _break_body(img: bytearray, cls: str, rng) -> bool:
    """Break one body rule of a (canonical) weight image in place; False if it has no spot."""
    u32 = lambda o: int.from_bytes(img[o:o + 4], "little")  # noqa: E731
    fmt, a, b, rows, cols = img[4], img[5], img[6], u32(8), u32(12)
    sa, sb, sc = u32(16), u32(20), u32(24)
    if cls == "ptr":                                    # last pointer past the stored data
        n = rows if fmt == 1 else -(-rows // a)
        img[sa + 4 * n:sa + 4 * n + 4] = (u32(sa + 4 * n) + 1000).to_bytes(4, "little")
        return True
    if fmt == 1:
        rb = -(-cols // a) * a // 8
        r = int(rng.integers(0, rows))
        c = int(rng.integers(0, cols)) if cls == "count" else cols
        if cls == "pad" and cols == 8 * rb:
            return False
        img[sb + r * rb + c // 8] ^= 1 << (c % 8)       # inside K: count; past K: padding
        return True
    if fmt == 2:
        nbr, nbc = -(-rows // a), -(-cols // a)
        ptr = [u32(sa + 4 * j) for j in range(nbr + 1)]
        col = [int.from_bytes(img[sb + 2 * i:sb + 2 * i + 2], "little") for i in range(ptr[-1])]
        if cls == "index":
            if not col:
                return False
            i = int(rng.integers(0, len(col)))
            img[sb + 2 * i:sb + 2 * i + 2] = nbc.to_bytes(2, "little")
            return True
        spots = [sc + i * a * a + rr * a + cc for i in range(len(col))
                 for br in [int(np.searchsorted(ptr, i, side="right")) - 1]
                 for rr in range(a) for cc in range(a)
                 if br * a + rr >= rows or col[i] * a + cc >= cols]
        if not spots:
            return False
        img[int(rng.choice(spots))] = 0x5A
        return True
    ng = -(-cols // b)
    if cls == "index":
        img[sb + int(rng.integers(0, rows * ng * a))] = b
        return True
    spots = [(r * ng + ng - 1) * a + s for r in range(rows) for s in range(a)
             if (ng - 1) * b + img[sb + (r * ng + ng - 1) * a + s] >= cols]
    if not spots:
        return False
    img[sa + int(rng.choice(spots))] = 0x5A
    return True


def _body_cases():
    """(format, rule class, layer K that makes the class possible, nm pattern)."""
    G, B = CFG.group_size, CFG.block_size
    cases = [("bitmap", "ptr", G + 3, None), ("bitmap", "count", G + 3, None),
             ("bitmap", "pad", G + 3, None), ("block", "ptr", B + 1, None),
             ("block", "index", 2 * B + 1, None), ("block", "pad", B + 1, None),
             ("nm", "index", 9, (2, 4)), ("nm", "pad", 9, (2, 4))]
    return [c for c in cases if c[0] in CFG.formats]


@cocotb.test()
async def bad_image_bodies(dut):
    """Inconsistent sparse metadata in a layer's weight image (codes 7..10, per format):
    golden's code, the interrupt, ERROR_ADDR = that image, nothing written outside the layer's
    output buffer, the host model agrees, and the next job (same format) is bit-exact.  With
    several tiles also: two broken images (the first in memory counts) and a broken body
    followed by a broken header (the header counts)."""
    from sparsemac.golden.format_check import parse_weights
    from sparsemac.golden.formats import FormatError
    from sparsemac.host.model_engine import run_model

    tb = await _tb(dut, salt=9)
    rng = _rng(9)
    cases = [(f, c, k, nm, None) for f, c, k, nm in _body_cases()]
    if CFG.tiles > 1 and "bitmap" in CFG.formats:
        G = CFG.group_size
        # two broken bodies: the first image counts; a broken body and a later broken header:
        # the header counts (every header is checked before any body is sent)
        cases += [("bitmap", "count", G + 3, None, "two"), ("bitmap", "count", G + 3, None, "hdr")]
    for fmt, cls, k, nm, mode in cases:
        for _ in range(20):
            layer = dict(op="matmul", fmt=fmt, requant=True, lut=None, density=0.6,
                         m=int(rng.integers(CFG.tiles + 1, 2 * CFG.tiles + 3)), k=k, n=3)
            if nm:
                layer["nm"] = nm
            job = build_job(rng, CFG, [random_layer(rng, CFG, op="matmul", fmt="dense",
                                                    max_dim=6), layer])
            d = _desc_at(job, 1)
            sl = _slices(job, d)
            pick = [0, len(sl) - 1] if mode else [int(rng.integers(0, len(sl)))]
            if mode and len(sl) < 2:
                continue
            exp = []
            for t in pick:
                off, _, total = sl[t]
                img = bytearray(job.image[off:off + total])
                if mode == "hdr" and t:
                    img[0] ^= 0xFF                      # magic
                elif not _break_body(img, "ptr" if mode and t else cls, rng):
                    break
                job.image[off:off + total] = img
                try:
                    parse_weights(bytes(img))
                    raise AssertionError(f"{fmt} {cls}: golden accepts the broken image")
                except FormatError as exc:
                    exp.append((E(int(exc.code)), job.base + off))
            else:
                break
        else:
            raise AssertionError(f"{fmt} {cls}: no layer with a spot for the rule (seed {SEED})")
        if mode == "hdr":
            exp = exp[1:]
            assert exp[0][0] == E.BAD_MAGIC, exp
        code, addr = exp[0]
        assert mode == "hdr" or code in (E.BAD_PTR, E.BAD_MASK_COUNT, E.BAD_INDEX, E.BAD_PAD), (
            fmt, cls, code)
        what = f"{fmt} {cls} {mode or ''} image(s) {pick} of {len(sl)}"
        res = await _expect_error(tb, job, code, what)
        assert res["error_addr"] == addr, (
            f"{what}: ERROR_ADDR {res['error_addr']:#x}, expected the image at {addr:#x} "
            f"(seed {SEED})")
        errs = [e for e in tb.mismatches(job, SEED) if not e.startswith("layer 1 ")]
        assert not errs, f"{what}: {errs}"
        model = run_model(job.image, base=job.base, desc_base=job.desc_base,
                          desc_count=job.count, cfg=CFG)
        assert (model.error_code, model.error_desc) == (code, 1), (
            f"{what}: host model {model.error_code.name} at {model.error_desc}: "
            f"{model.message}, hardware {code.name} (seed {SEED})")
        # the next job, a valid image of the same format: bit-exact (the checkers restarted)
        job = build_job(rng, CFG, [random_layer(rng, CFG, op="matmul", fmt=fmt, max_dim=8)])
        _check_ok(tb, job, await tb.run(job), f"job after {what}")
    assert not tb.violations, f"AXI rule violations: {tb.violations[:5]}"



#: A grown layer moves at most this many bytes of weights, activations or outputs each
#: (simulation time: the benches run at a few thousand cycles per second).
LARGE_BYTES = 8192


def _bytes(X) -> int:
    """The largest of the layer's weight, activation and output sizes in bytes (dense)."""
    if X["op"] == "matmul":
        return max(X["m"] * X["k"], X["k"] * X["n"], X["m"] * X["n"])
    return max(X["kout"] * X["c"] * X["kh"] * X["kw"], X["c"] * X["h"] * X["w"],
               X["kout"] * X["h"] * X["w"])


def _grown(rng, L, dims):
    """``L`` with each of ``dims`` doubled while the layer fits the tile buffers (at most
    1024 and `LARGE_BYTES`), then drawn in [3/4 max, max]."""
    def ok(X):
        return layer_fits(CFG, X) and _bytes(X) <= LARGE_BYTES

    L = dict(L)
    for d in dims:
        v = L[d]
        while v < 1024 and ok(dict(L, **{d: 2 * v})):
            v *= 2
        hi = v
        while hi < 2 * v - 1 and ok(dict(L, **{d: hi + 1})):   # past the last power of two
            hi += 1
        L[d] = int(rng.integers(max(1, hi - hi // 4), hi + 1))
    assert ok(L), f"grown layer does not fit: {L}"
    return L


def _grown_together(rng, L, dims):
    """``L`` with ``dims`` doubled in turn while the layer fits (as `_grown`), so that every
    one of them ends large at once; then each drawn in [3/4 v, v] (halved back while the
    drawn layer does not fit)."""
    def ok(X):
        return layer_fits(CFG, X) and _bytes(X) <= LARGE_BYTES

    L, grew = dict(L), True
    while grew:
        grew = False
        for d in dims:
            if L[d] < 1024 and ok(dict(L, **{d: 2 * L[d]})):
                L[d], grew = 2 * L[d], True
    top = dict(L)
    for d in dims:
        L[d] = int(rng.integers(max(1, top[d] - top[d] // 4), top[d] + 1))
    while not ok(L):
        d = max(dims, key=lambda x: L[x])
        L[d] = max(1, L[d] // 2)
    return L


def _large_layers(rng):
    """Layers at the config's limits, one dimension grown per layer: many output rows (the
    tiles' row and column-group counters, result flits), a long reduction (lane decoder
    windows, flag words), many columns, a large conv image (im2col counters); then a matmul
    and a strided conv grown in every dimension at once; random formats and tables, the
    compiler's random multipliers (up to 31 bits)."""
    fmts = list(CFG.formats)
    lut = "gelu" if CFG.lut_enabled else None
    base = dict(op="matmul", requant=True, lut=None, density=0.5, m=2, k=2, n=CFG.cols)
    out = []
    for dims in (("m",), ("k",), ("n",), ("k", "m"), ("n", "m")):
        L = dict(base, fmt=str(rng.choice(fmts)), lut=lut if rng.random() < 0.5 else None)
        out.append(_grown(rng, L, dims))
    conv = dict(op="conv2d", fmt=str(rng.choice(fmts)), requant=True, lut=lut, density=0.5,
                c=int(rng.integers(1, 4)), kout=2, kh=3, kw=3, h=3, w=3, stride=(1, 1),
                pad=(1, 1), dilation=(1, 1))
    while not layer_fits(CFG, conv):    # the tiny builds' im2col buffer takes few taps
        conv = (dict(conv, c=conv["c"] - 1) if conv["c"] > 1 else
                dict(conv, kh=conv["kh"] - 1, kw=conv["kw"] - 1, pad=(0, 0)))
    out.append(_grown(rng, conv, ("h", "w", "kout")))
    # large in every dimension at once (products and counters of several large sizes)
    out.append(_grown_together(rng, dict(base, fmt=str(rng.choice(fmts))), ("m", "k", "n")))
    out.append(_grown_together(rng, dict(conv, fmt=str(rng.choice(fmts)), kh=2, kw=2,
                                         pad=(1, 1), stride=(1, 2), c=1),
                               ("c", "h", "w", "kout")))
    for L in out:
        if L["fmt"] == "nm":
            L["nm"] = (1, min(4, CFG.nm_max_m))
    return out


def _high_bases(size):
    """Two window bases whose address bits 12 and up are complements of each other above
    the 1 MiB the memory model keeps (0xAAA.. / 0x555.. patterns), the low 20 bits chosen so
    the ``size``-byte window fits below the memory's end."""
    aw = CFG.axi_addr_width
    top = (1 << aw) - 1
    out = []
    for pat in (0xAAAAAAAAAAAAAAAA, 0x5555555555555555):
        hi = pat & top & ~((1 << 20) - 1)
        lo = pat & ((1 << 20) - 1) & ~0xFFF
        while lo and lo + size > (1 << 20):
            lo = (lo >> 1) & ~0xFFF
        out.append(hi | lo)
    return out


@cocotb.test()
async def large_layers_high_windows(dut):
    """Layers at the configuration's buffer limits (rows, reduction, columns, conv image
    grown until the next step would not fit), full-range data and 21..31-bit requantization
    multipliers, in windows high in the address space (bits 12+ of the two bases are
    complements: every window, descriptor and DMA address bit is driven both ways): every
    output bit-exact, nothing written outside the output buffers."""
    tb = await _tb(dut, salt=14)
    rng = _rng(14)
    layers = _large_layers(rng)
    dut._log.info("large layers: " + "; ".join(
        f"{L['op']} {L['fmt']} " + ("x".join(str(L[d]) for d in "mkn") if L["op"] == "matmul"
                                    else f"{L['kout']}x{L['c']}x{L['h']}x{L['w']}")
        for L in layers))
    half = (len(layers) + 1) // 2
    parts = (layers[:half], layers[half:])
    # the same draws at any base give the same image: its size places the window
    size = max(len(build_job(_rng(140 + i), CFG, ls).image) for i, ls in enumerate(parts))
    for i, (base, ls) in enumerate(zip(_high_bases(size), parts, strict=True)):
        job = build_job(_rng(140 + i), CFG, ls, base=base)
        assert job.limit < 1 << CFG.axi_addr_width, (hex(job.base), hex(job.limit))
        res = await tb.run(job, max_cycles=2_000_000)
        _check_ok(tb, job, res, f"large layers at {base:#x}")
        job = _two_layers(rng)          # and back at the bottom of the address space
        _check_ok(tb, job, await tb.run(job), f"small job after the window at {base:#x}")
    assert not tb.violations, f"AXI rule violations: {tb.violations[:5]}"


@cocotb.test()
async def register_patterns(dut):
    """Every read/write register takes all-ones, 0xA5.., 0x5A.. and zero patterns (each
    reading back the written value within its fields, the other registers untouched);
    IRQ_STATUS written all-ones clears and reads 0; every readable register is read after
    each pattern; then a job runs bit-exact."""
    from sparsemac.hw.top.regmap import registers

    tb = await _tb(dut, salt=15)
    regs = registers(CFG)
    rw = [r for r in regs if r.kind == "rw"]
    for pat in (0xFFFFFFFF, 0xA5A5A5A5, 0x5A5A5A5A, 0):
        for r in rw:
            await tb.lite.write_dword(r.offset, pat)
        await tb.write("IRQ_STATUS", 0xFFFFFFFF)
        bad = []
        for r in regs:
            if r.kind == "pulse":
                continue
            got = await tb.lite.read_dword(r.offset)
            mask = sum(f.mask for f in r.fields)
            exp = (pat & mask if r.kind == "rw" else 0 if r.kind == "w1c"
                   else r.value if r.kind == "const" else None)
            if exp is not None and got != exp:
                bad.append(f"{r.name} {got:#x}, expected {exp:#x}")
        assert not bad, f"pattern {pat:#010x}: {bad} (seed {SEED})"
        assert int(dut.irq.value) == 0, f"irq high with no cause after pattern {pat:#x}"
    rng = _rng(15)
    job = _two_layers(rng)
    _check_ok(tb, job, await tb.run(job), "job after the register patterns")


#: Descriptor fields `random_descriptor_fields` draws, with their widths in bits (docs/spec.md
#: section 8: the packed 64-byte layout).
DESC_FIELDS = {"opcode": 8, "format": 8, "param_a": 8, "param_b": 8, "flags": 16,
               "reserved0": 16, "weights": 32, "acts": 32, "out": 32, "quant": 32, "lut": 32,
               "m": 32, "k": 32, "n": 32, "c": 16, "h": 16, "w": 16, "kh": 8, "kw": 8,
               "stride_h": 8, "stride_w": 8, "pad_h": 8, "pad_w": 8, "dil_h": 8, "dil_w": 8,
               "col_split": 16, "reserved2": 32}
#: cases per run of `random_descriptor_fields`
FUZZ_CASES = int(params_from_env(fuzz=24)["fuzz"])
#: the fields past the early checks (magic, opcode, format, parameters, flags): shapes and
#: buffer offsets, drawn alone in two cases of three
DEEP_FIELDS = [f for f in DESC_FIELDS if f not in ("opcode", "format", "param_a", "param_b",
                                                    "flags", "reserved0",
                                                    "reserved2")]


def _window_matches_model(tb, job, model, skip: range, what: str):
    """Every byte of the job's window after the RTL run equals the model engine's window,
    except the offsets in ``skip`` (a failing layer's output buffer)."""
    got = tb.mem_read(job.base, len(job.image))
    bad_at = [i for i in range(len(job.image)) if got[i] != model.image[i] and i not in skip]
    assert not bad_at, (f"{what}: {len(bad_at)} bytes differ from the model's window, first "
                        f"at offset {bad_at[0]:#x}: RTL {got[bad_at[0]]}, model "
                        f"{model.image[bad_at[0]]} ({model.message or 'ok'})")


@cocotb.test()
async def random_descriptor_fields(dut):
    """Descriptor 1 of a valid two-layer job with 1..3 fields set to random values of random
    bit widths (every bit of every field driven; two cases in three draw shape and offset
    fields only, which pass the early checks): STATUS (done / error, code, ERROR_DESC)
    equals the model engine's (`host.model_engine.run_model`, the hardware's reference) and
    every byte of the window equals the model's window after the run, except the failing
    layer's output buffer (a layer stopped by an image check may have written part of it)."""
    from sparsemac.host.model_engine import run_model

    tb = await _tb(dut, salt=16)
    rng = _rng(16)
    codes = []
    for case in range(FUZZ_CASES):
        job = _two_layers(rng)
        d = _desc_at(job, 1)
        change = {}
        names = list(DESC_FIELDS) if case % 3 == 0 else DEEP_FIELDS
        for f in rng.choice(names, size=int(rng.integers(1, 4)), replace=False):
            f = str(f)
            bits = int(rng.integers(1, DESC_FIELDS[f] + 1))
            change[f] = int(rng.integers(0, 1 << bits))
            if rng.random() < 0.5 and f in ("weights", "acts", "out", "quant", "lut"):
                # an aligned offset inside the window: past the buffer checks, into the
                # image, record and table checks (or another buffer's bytes)
                beat = CFG.axi_bytes
                change[f] = beat * int(rng.integers(0, len(job.image) // beat))
            elif rng.random() < 0.5 and f in ("m", "k", "n", "c", "h", "w"):
                change[f] = int(rng.integers(1, 2 * max(1, getattr(d, f)) + 2))
        bad = d.replace(**change)
        _put_desc(job, 1, bad)
        model = run_model(job.image, base=job.base, desc_base=job.desc_base,
                          desc_count=job.count, cfg=CFG)
        what = f"case {case}: descriptor 1 with {change} (seed {SEED})"
        res = await tb.run(job, max_cycles=4 * CFG.watchdog_cycles + 200_000)
        exp = (0, 1, 0) if model.ok else (1, 0, int(model.error_code))
        got = (res["error"], res["done"], res["code"])
        # requant records outside section 1's ranges (mult < 1, shift 0 or > 63, padding):
        # the model refuses them (BAD_PARAM, docs/host.md), the hardware does not check them
        # and computes: only "ends, nothing written outside the layer's output" is checked
        records = model.error_code == E.BAD_PARAM and "quant record" in model.message
        assert got == exp or (records and got[:2] in ((0, 1), (1, 0))), (
            f"{what}: (error, done, code) {got}, the model engine {exp} "
            f"({model.message or 'ok'})")
        if not model.ok and not records:
            desc = await tb.read("ERROR_DESC")
            assert desc == model.error_desc, f"{what}: ERROR_DESC {desc}, model {model}"
        codes.append(model.error_code.name)
        skip = range(0)
        if (not model.ok and model.error_desc == 1) or records:
            esize = 1 if bad.flags & Flags.REQUANT else 4
            skip = range(bad.out, bad.out + bad.m * bad.n * esize)
        _window_matches_model(tb, job, model, skip, what)
    dut._log.info(f"random descriptor fields: {len(codes)} cases, codes {sorted(set(codes))}")
    assert not tb.violations, f"AXI rule violations: {tb.violations[:5]}"


#: Weight-image header fields `random_header_fields` draws: (byte offset, bytes) in the
#: 32-byte header (docs/spec.md section 3).
HDR_FIELDS = {"magic": (0, 4), "format": (4, 1), "param_a": (5, 1), "param_b": (6, 1),
              "reserved": (7, 1), "rows": (8, 4), "cols": (12, 4), "sec_a": (16, 4),
              "sec_b": (20, 4), "sec_c": (24, 4), "total": (28, 4)}
#: the header fields past the early checks (shape, sections, total), drawn alone in two
#: cases of three
HDR_DEEP = ["rows", "cols", "sec_a", "sec_b", "sec_c", "total"]
_HEADER_CODES = {E.BAD_MAGIC, E.BAD_FORMAT, E.BAD_PARAM, E.BAD_SHAPE, E.BAD_SIZE,
                 E.BAD_SECTION, E.OUT_OF_WINDOW}
_BODY_CODES = {E.BAD_PTR, E.BAD_MASK_COUNT, E.BAD_INDEX, E.BAD_PAD}


def _image_offsets(job, d):
    """Window offsets of the weight images of descriptor ``d``, walked by their ``total``
    fields as the sequencer does (spec 8.1), as many as the job's tiles can take."""
    offs, off = [], d.weights
    for _ in range(CFG.tiles):
        offs.append(off)
        if off + 32 > len(job.image):
            break
        off += int.from_bytes(job.image[off + 28:off + 32], "little")
    return offs


@cocotb.test()
async def random_header_fields(dut):
    """The first weight image of descriptor 1 with header fields changed.  First six
    directed cases, each header-against-descriptor rule of the sequencer at its bound (N:M
    layer: rows = M + 1, cols = K +- 1, another valid N, another valid M, another built
    format); then random cases (every format, matmul and conv2d) with 1..3 fields changed:
    random values of random bit widths (every bit of every field driven), values next to the
    right one (+-1 row / column, +-32 bytes of a section or the total; another format code,
    another power-of-two parameter) or one flipped bit; two random cases in three change the
    shape and section fields only, which pass the early checks.  STATUS (done / error, code,
    ERROR_DESC) and, for a header or body error, ERROR_ADDR = the failing image equal the
    model engine's (`host.model_engine.run_model`, the hardware's order of the header rules);
    every byte of the window equals the model's after the run, the failing layer's output
    buffer included for a header error (nothing of the layer is written before its headers
    pass)."""
    import re

    from sparsemac.host.model_engine import run_model

    tb = await _tb(dut, salt=17)
    rng = _rng(17)
    fmts = [f for f in ("dense", "bitmap", "block", "nm") if f in CFG.formats]
    codes = []
    # directed first: each header-against-descriptor rule of the sequencer at its bound
    # (an N:M layer: rows just past M, cols K +- 1, another valid N or M, another format)
    nm_ms = [x for x in (2, 4, 8, 16, 32) if x <= CFG.nm_max_m]
    directed = [lambda d, h: {"rows": d.m + 1}, lambda d, h: {"cols": d.k + 1},
                lambda d, h: {"cols": d.k - 1},
                lambda d, h: {"param_b": next(x for x in nm_ms if x != h[6] and x >= h[5])},
                lambda d, h: {"param_a": next(x for x in (1, 2, 4) if x != h[5] and x <= h[6])},
                lambda d, h: {"format": next(c for f, c in FORMAT_CODES.items()
                                             if f in CFG.formats and c != h[4])}]
    if "nm" not in CFG.formats:
        directed = []
    for case in range(len(directed) + FUZZ_CASES):
        fuzz = case - len(directed)
        if fuzz < 0:
            layers = [random_layer(rng, CFG, op="matmul", fmt="dense", max_dim=MAX_DIM),
                      random_layer(rng, CFG, op="matmul", fmt="nm", max_dim=MAX_DIM)]
        else:
            layers = [random_layer(rng, CFG, op="matmul", fmt="dense", max_dim=MAX_DIM),
                      random_layer(rng, CFG, op=("matmul", "conv2d")[fuzz % 2],
                                   fmt=fmts[fuzz % len(fmts)], requant=True,
                                   max_dim=MAX_DIM)]
        job = build_job(rng, CFG, layers)
        d = _desc_at(job, 1)
        w, change = d.weights, {}
        if fuzz < 0:
            if case == 2 and d.k == 1:
                continue
            change = directed[case](d, bytes(job.image[w:w + 32]))
        for f in ([] if fuzz < 0 else
                  rng.choice(list(HDR_FIELDS) if fuzz % 3 == 0 else HDR_DEEP,
                             size=int(rng.integers(1, 4)), replace=False)):
            f = str(f)
            o, nb = HDR_FIELDS[f]
            old = int.from_bytes(job.image[w + o:w + o + nb], "little")
            draw = rng.random()
            if draw < 0.4:
                v = int(rng.integers(0, 1 << int(rng.integers(1, 8 * nb + 1))))
            elif draw < 0.7 and f in ("format", "param_a", "param_b"):
                # another code or parameter a header may carry (a valid header that differs
                # from its descriptor: N:M with another N or M, another format)
                v = int(rng.choice([0, 1, 2, 3, 4, 8, 16, CFG.group_size, CFG.block_size]))
            elif draw < 0.7:
                step = 32 if f.startswith("sec") or f == "total" else 1
                v = min(max(0, old + step * int(rng.integers(-2, 3))), (1 << 8 * nb) - 1)
            else:
                v = old ^ (1 << int(rng.integers(0, 8 * nb)))
            change[f] = v
        for f, v in change.items():
            o, nb = HDR_FIELDS[f]
            job.image[w + o:w + o + nb] = v.to_bytes(nb, "little")
        model = run_model(job.image, base=job.base, desc_base=job.desc_base,
                          desc_count=job.count, cfg=CFG)
        what = (f"case {case}: {layers[1]['fmt']} {layers[1]['op']}, image header of "
                f"descriptor 1 with {change} (seed {SEED})")
        res = await tb.run(job, max_cycles=4 * CFG.watchdog_cycles + 200_000)
        exp = (0, 1, 0) if model.ok else (1, 0, int(model.error_code))
        got = (res["error"], res["done"], res["code"])
        assert got == exp, (f"{what}: (error, done, code) {got}, the model engine {exp} "
                            f"({model.message or 'ok'})")
        codes.append(model.error_code.name)
        body = model.error_code in _BODY_CODES
        if not model.ok:
            desc = await tb.read("ERROR_DESC")
            assert desc == model.error_desc, f"{what}: ERROR_DESC {desc}, model {model}"
            t = re.match(r"weight image (\d+):", model.message)
            if t and (body or model.error_code in _HEADER_CODES):
                addr = job.base + _image_offsets(job, d)[int(t.group(1))]
                assert res["error_addr"] == addr, (
                    f"{what}: ERROR_ADDR {res['error_addr']:#x}, the failing image is at "
                    f"{addr:#x} ({model.message})")
        skip = range(d.out, d.out + d.m * d.n) if body else range(0)
        _window_matches_model(tb, job, model, skip, what)
    dut._log.info(f"random header fields: {len(codes)} cases, codes {sorted(set(codes))}")
    assert not tb.violations, f"AXI rule violations: {tb.violations[:5]}"


# -- hard resets and random bus errors (docs/verification.md, "Resets and bus errors") -------

_SOAK = params_from_env(hard_resets=3, error_nets=4, stats=None)
#: rounds of ``hard_resets_mid_job`` and random networks of ``random_bus_errors`` (0: skipped)
RESET_ROUNDS = int(_SOAK["hard_resets"])
ERROR_NETS = int(_SOAK["error_nets"])
#: the run's ``[soak]`` totals, written to ``params["stats"]`` (JSON) for the pytest side
SOAK_STATS: dict[str, int] = {}


def _soak_stat(**counts):
    """Add to the run's ``[soak]`` totals and write them to the ``stats`` file, which
    tests/sim/test_accelerator.py prints as ``[soak] key=value`` lines (cocotb's own stdout
    goes to the simulator log, which bench/soak.py does not read)."""
    import json
    from pathlib import Path

    for k, v in counts.items():
        SOAK_STATS[k] = SOAK_STATS.get(k, 0) + int(v)
    if _SOAK["stats"]:
        Path(_SOAK["stats"]).write_text(json.dumps(SOAK_STATS, sort_keys=True))


def _random_net(rng):
    """A random 2-4 layer network as in ``random_networks`` (every format, matmul and conv2d,
    requant with and without tables, most layers chained)."""
    layers = []
    for _ in range(int(rng.integers(2, 5))):
        op = str(rng.choice(["matmul", "conv2d"]))
        requant = bool(rng.random() < 0.8)
        lut = str(rng.choice(["relu", "tanh", "sigmoid", "gelu"])) if rng.random() < 0.6 \
            else None
        layers.append(random_layer(rng, CFG, op=op, fmt=str(rng.choice(list(CFG.formats))),
                                   requant=requant, lut=lut if CFG.lut_enabled else None))
        layers[-1]["chain"] = bool(rng.random() < 0.6)
    return build_job(rng, CFG, layers)


def _net_name(job):
    return [(L["op"], L["fmt"], L["chain"]) for L in job.layers]


async def _check_reset_values(tb, what, released_at):
    """Every readable register holds its documented reset value (docs/registers.md): STATUS
    idle, no IRQ cause or enable, the table registers 0, every counter 0 except the
    free-running CYCLES, which counts from the reset on."""
    from sparsemac.hw.top.regmap import registers

    assert int(tb.dut.irq.value) == 0, f"{what}: irq pin high after reset (seed {SEED})"
    bad = []
    for r in registers(CFG):
        if r.kind == "pulse":
            continue
        got = await tb.lite.read_dword(r.offset)
        if r.counter == "cycles":
            since = tb.cycle - released_at
            if r.kind == "cnt_lo" and not 0 < got <= since + 2:
                bad.append(f"{r.name} {got}, expected 1..{since + 2} (cycles since the reset)")
            elif r.kind == "cnt_hi" and got != 0:
                bad.append(f"{r.name} {got:#x}, expected 0")
        elif got != r.reset:
            bad.append(f"{r.name} {got:#x}, expected {r.reset:#x}")
    assert not bad, f"{what}: registers not at their reset values: {bad} (seed {SEED})"


@cocotb.test(skip=RESET_ROUNDS < 1)
async def hard_resets_mid_job(dut):
    """``rst`` (the synchronous hard reset, not CONTROL.soft_reset) asserted for 1..4 cycles
    at a random cycle of a running random network (uniform over the job's length, measured
    by running the same job to completion first), ``hard_resets`` times: the registers are at
    their reset values, the memory model forgets its outstanding bursts, and the next random
    network (reprogrammed from scratch) is bit-exact with no AXI rule violation."""
    tb = await _tb(dut, salt=12)
    rng = _rng(12)
    job = _random_net(rng)
    res = await tb.run(job)
    _check_ok(tb, job, res, f"network {_net_name(job)}")
    # directed round first: a one-cycle reset while the MACs are busy (the data plane leaves
    # a board reset a cycle after the registers, so its outputs are masked in that cycle)
    job, res = await _reset_while_computing(tb, rng, job)
    for r in range(RESET_ROUNDS):
        length = res["cycles"]
        at, hold = int(rng.integers(1, length + 1)), int(rng.integers(1, 5))
        what = (f"hard reset {r}: rst for {hold} cycles at cycle {at} of {length} of network "
                f"{_net_name(job)}")
        tb.load(job)                        # the same job again (fresh canaries)
        await tb.program(job)
        await tb.start()
        await tb.cycles(at)
        busy = _bus_busy(dut)
        await tb.reset(cycles=hold, settle=2)
        dut._log.info(f"{what}: AXI channels with VALID at the reset: {busy or 'none'}")
        served = (tb.bus_errors.reads, tb.bus_errors.writes)
        await _check_reset_values(tb, what, tb.cycle - 2)
        assert served == (tb.bus_errors.reads, tb.bus_errors.writes), (
            f"{what}: the memory served (read beats, write segments) {served} at the reset, "
            f"{(tb.bus_errors.reads, tb.bus_errors.writes)} after the register reads: bus "
            f"traffic without a job (seed {SEED})")
        job = _random_net(rng)
        res = await tb.run(job)
        _check_ok(tb, job, res, f"network {_net_name(job)} after {what}")
        assert not tb.violations, f"{what}: AXI rule violations {tb.violations[:5]} (seed {SEED})"
        _soak_stat(hard_resets=1, hard_resets_bus_busy=int(bool(busy)))
    dut._log.info(f"totals: hard_resets={SOAK_STATS.get('hard_resets', 0)}")


async def _reset_while_computing(tb, rng, job):
    """A one-cycle ``rst`` raced against a MAC-active tile, cycle-exact (issue 19).

    The data plane's reset is the register ``plane_reset``, a cycle late: in the cycle after a
    board reset's edge the registers are reset but the plane still computes, and every plane
    output the registers act on must be masked (``live``).  Rerun ``job`` once recording, per
    cycle after the start, whether a tile node is ``mac_active``; pick one of those cycles
    (at random), rerun the job (the bench runs without stalls: cycle for cycle the same) and
    hold ``rst`` for exactly the rising edge that ends the cycle before, so the cycle after
    the edge has ``plane_reset`` high and a MAC-active tile.  The race is checked to have
    happened (another cycle is tried, up to three, if not), then the registers are at their
    reset values (MAC_ACTIVE_CYCLES 0: no stale MAC cycle counted) and a fresh network runs
    bit-exact.  Returns that network and its result."""
    from cocotb.triggers import FallingEdge, ReadOnly

    dut = tb.dut
    nodes = [getattr(dut, f"tile{t}") for t in range(CFG.tiles)]

    def active() -> bool:
        return any(int(n.mac_active.value) for n in nodes)

    async def rerun():
        tb.load(job)
        await tb.program(job)
        await tb.start()

    await rerun()
    trace = []                              # trace[i]: MAC-active after edge i + 1
    while not int(dut.irq.value) and len(trace) < 60_000:
        await RisingEdge(dut.clk)
        await ReadOnly()
        trace.append(active())
    busy_at = [i + 1 for i, a in enumerate(trace) if a]
    assert busy_at, f"directed hard reset: network {_net_name(job)} never MAC-active (seed {SEED})"
    raced, log = False, []
    for at in rng.permutation(busy_at)[:3]:
        await tb.cycles(2)
        await rerun()
        for _ in range(at - 1):
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 1
        await RisingEdge(dut.clk)           # edge `at`: the registers' reset
        await ReadOnly()
        raced = int(dut.plane_reset.value) == 1 and active()
        log.append(f"rst at edge {at} after the start"
                   f"{'' if raced else ' (the tiles were not MAC-active after it)'}")
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        await tb.cycles(2)
        what = (f"directed hard reset: rst for 1 cycle, {log[-1]}, of {len(busy_at)} "
                f"MAC-active cycles of network {_net_name(job)}")
        dut._log.info(what)
        await _check_reset_values(tb, what, tb.cycle - 2)
        if raced:
            break
    assert raced, (f"directed hard reset: no reset edge with a MAC-active tile in the cycle "
                   f"after it ({'; '.join(log)}; network {_net_name(job)}, seed {SEED})")
    _soak_stat(directed_resets_busy=1)
    job = _random_net(rng)
    res = await tb.run(job)
    _check_ok(tb, job, res, f"network {_net_name(job)} after {what}")
    return job, res


def _bus_busy(dut) -> list[str]:
    """The AXI4 channels of ``m_axi`` whose VALID is high now (a burst is in flight)."""
    return [ch for ch in ("ar", "r", "aw", "w", "b")
            if int(getattr(dut, f"m_axi__{ch}valid").value)]


def _diffs_after_error(tb, job, failing: int) -> list[str]:
    """Memory after an error in layer ``failing``: earlier layers' outputs bit-exact, the
    failing layer's output buffer free, every later layer's output buffer still holding its
    canary bytes, every other byte of the window unchanged."""
    exp = np.frombuffer(bytes(job.image), dtype=np.uint8).copy()
    got = np.frombuffer(tb.ram.read(job.base, len(job.image)), dtype=np.uint8).copy()
    where = np.full(len(exp), -1)
    for i, (addr, y) in enumerate(job.outputs):
        lo = addr - job.base
        where[lo:lo + len(y)] = i
        if i < failing:
            exp[lo:lo + len(y)] = np.frombuffer(y, dtype=np.uint8)
        elif i == failing:
            got[lo:lo + len(y)] = exp[lo:lo + len(y)]
    bad = np.flatnonzero(exp != got)
    if not len(bad):
        return []
    regions = sorted({int(where[b]) for b in bad})
    names = [f"layer {i}'s output ({'before' if i < failing else 'after'} the failing layer)"
             if i >= 0 else "outside every output buffer" for i in regions]
    b = int(bad[0])
    return [f"{len(bad)} bytes wrong in {names}; first at {job.base + b:#x}: expected "
            f"{int(exp[b])} got {int(got[b])}"]


async def _bus_counts_at_irq(dut, be, out: list):
    """Append ``(read beats, write segments)`` served by the memory when ``irq`` rises."""
    await RisingEdge(dut.irq)
    out.append((be.reads, be.writes))


@cocotb.test(skip=ERROR_NETS < 1)
async def random_bus_errors(dut):
    """Random networks with the memory answering SLVERR or DECERR on a random 1-3 % of read
    beats and write responses (the first error of a job ends it; no second one is injected):
    either the job completes bit-exact (no error was drawn), or it stops with the injected
    code, ERROR_ADDR = the failing read beat / the failing write burst (docs/dma.md), the
    error interrupt, ERROR_DESC = the layer, no bus traffic after the interrupt, earlier
    layers bit-exact, nothing written outside the failing layer's output buffer (later output
    buffers keep their canaries); the next job, without injection, is bit-exact."""
    tb = await _tb(dut, salt=13)
    rng = _rng(13)
    be = tb.bus_errors
    fails = []
    for net in range(2 * ERROR_NETS):
        job = _random_net(rng)
        inject = net % 2 == 0
        what = f"network {net} {_net_name(job)}"
        if inject:      # a third of the jobs on write responses only (fewer than beats)
            rate = float(rng.uniform(0.01, 0.03))
            reads = bool(rng.random() < 2 / 3)
            what += (f" with {100 * rate:.1f} % bus errors on "
                     f"{'read beats and ' if reads else ''}write responses")
            be.injected.clear()
            be.arm(rate, rng, reads=reads)
        at_irq = []
        watch = cocotb.start_soon(_bus_counts_at_irq(dut, be, at_irq))
        res = await tb.run(job)
        be.disarm()
        if not watch.done():
            watch.cancel()
        _soak_stat(jobs=1, layers=len(job.layers))
        errs = []
        if at_irq and at_irq[0] != (be.reads, be.writes):
            errs.append(f"bus traffic after the interrupt: (read beats, write segments) "
                        f"{at_irq[0]} at irq, {(be.reads, be.writes)} after the status reads")
        if not inject or not be.injected:
            if res["done"] != 1 or res["error"] != 0:
                errs.append(f"expected done without error, got {res}")
            errs += tb.mismatches(job, SEED)
        else:
            kind, addr, resp = be.injected[0]
            _soak_stat(errors_injected=len(be.injected))
            code = E.AXI_SLVERR if resp == 2 else E.AXI_DECERR
            what += (f": {code.name} injected on the "
                     f"{'read beat' if kind == 'r' else 'write burst'} at {addr:#x}")
            got = (res["error"], res["done"], res["code"], res["error_addr"])
            if got != (1, 0, int(code), addr) or not res["irq_status"] & 2:
                errs.append(f"expected (error, done, code, ERROR_ADDR) = (1, 0, {int(code)}, "
                            f"{addr:#x}) and IRQ_STATUS.error, got ({got[0]}, {got[1]}, "
                            f"{got[2]}, {got[3]:#x}), IRQ_STATUS {res['irq_status']:#x}")
            failing = res["index"]
            desc = await tb.read("ERROR_DESC")
            if desc != failing or failing >= len(job.layers):
                errs.append(f"ERROR_DESC {desc}, STATUS.desc_index {failing}, "
                            f"{len(job.layers)} layers")
            if kind == "w" and failing < len(job.outputs):
                lo, y = job.outputs[failing]
                if not lo <= addr < lo + len(y):
                    errs.append(f"failing write burst {addr:#x} outside layer {failing}'s "
                                f"output buffer [{lo:#x}, {lo + len(y):#x})")
            errs += _diffs_after_error(tb, job, min(failing, len(job.layers) - 1))
            late = be.writes - be.at_injection[1]
            dut._log.info(f"{what}: stopped in layer {failing} with code {res['code']} "
                          f"at {res['error_addr']:#x} after {res['cycles']} cycles; "
                          f"{late} strobed write segment(s) reached the memory after the "
                          f"injection (already on the bus)")
            _soak_stat(**{f"errors_{kind}": 1, "writes_after_error": late})
        if errs:
            _soak_stat(mismatches=1)
            fails.append(f"{what}: " + "; ".join(errs))
            dut._log.error(fails[-1])
        else:
            _soak_stat(mismatches=0)
        if tb.violations:
            fails.append(f"{what}: AXI rule violations {tb.violations[:5]}")
            break
    dut._log.info("totals: " + " ".join(f"{k}={SOAK_STATS.get(k, 0)}" for k in
                                       ("jobs", "layers", "errors_injected", "mismatches")))
    assert not fails, f"{len(fails)} bad job(s) (seed {SEED}):\n" + "\n".join(fails)
