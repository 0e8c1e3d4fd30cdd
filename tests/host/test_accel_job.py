"""One compiler: the RTL driver's random jobs (`sim.accel_driver.build_job`) are
`host.compiler.compile_network` images; the compiler's job options (several networks in one
window, random requantization, canary outputs) and the tile-buffer rule the driver shares."""

from __future__ import annotations

import numpy as np
import pytest
from sparsemac.golden.descriptors import Flags
from sparsemac.host import network_from_dict
from sparsemac.host.compiler import check_tile_buffers, compile_network, layer_buffer_shortfall
from sparsemac.host.model_engine import run_model
from sparsemac.host.network import NetworkError
from sparsemac.hw.config import AcceleratorConfig

accel_driver = pytest.importorskip("sparsemac.sim.accel_driver")

CFG = AcceleratorConfig.preset("tiny")
BIG = AcceleratorConfig.preset("default")


def _random_layers(rng, cfg, n):
    """As tests/sim/cocotb_accelerator.py's random_networks draws them."""
    layers = []
    for _ in range(n):
        op = str(rng.choice(["matmul", "conv2d"]))
        requant = bool(rng.random() < 0.8)
        lut = str(rng.choice(["relu", "tanh", "sigmoid", "gelu"])) if rng.random() < 0.6 else None
        layers.append(accel_driver.random_layer(rng, cfg, op=op, fmt=str(rng.choice(cfg.formats)),
                                                requant=requant,
                                                lut=lut if cfg.lut_enabled else None))
        layers[-1]["chain"] = bool(rng.random() < 0.6)
    return layers


@pytest.mark.parametrize("cfg", [CFG, BIG], ids=["tiny", "default"])
@pytest.mark.parametrize("seed", range(6))
def test_build_job_is_compile_network(cfg, seed):
    """build_job's window is byte for byte what compile_network makes of the same networks,
    and its expected outputs are the compiler's."""
    layers = _random_layers(np.random.default_rng([seed, 1]), cfg, 4)
    rng = np.random.default_rng([seed, 2])
    job = accel_driver.build_job(rng, cfg, layers)
    rng = np.random.default_rng([seed, 2])
    nets, placed = accel_driver.job_networks(rng, cfg, layers)
    s = int(rng.integers(0, 2**31))
    pick = np.random.default_rng([s, 8])        # build_job's rows / cols per layer
    split = [str(pick.choice(["rows", "cols"])) for _ in placed]
    order = np.random.default_rng([s, 9])       # ... and its tables early / late per layer
    tables = [str(order.choice(["early", "late"])) for _ in placed]
    cn = compile_network([network_from_dict(n) for n in nets], cfg, base=job.base,
                         seed=s, irq_last=False, quant="random", out_fill="random",
                         split=split, tables=tables)
    assert bytes(job.image) == cn.image, f"seed {seed}"
    assert (job.desc_base, job.count, job.limit) == (cn.desc_base, cn.desc_count, cn.mem_limit)
    assert [L["chain"] for L in job.layers] == [L["chain"] for L in placed]
    for (addr, exp), cl in zip(job.outputs, cn.layers, strict=True):
        assert addr == cn.base + cl.regions["out"].offset
        assert exp == cl.expected.astype(np.int8 if cl.spec.requant else "<i4").tobytes()


@pytest.mark.parametrize("seed", range(8))
def test_build_job_runs_on_the_model(seed):
    """The host model runs the job's table to the job's expected outputs, and writes nothing
    else; the canary-filled output buffers differ from the results before the run."""
    rng = np.random.default_rng([seed, 3])
    job = accel_driver.build_job(rng, BIG, _random_layers(rng, BIG, int(rng.integers(2, 6))))
    run = run_model(job.image, base=job.base, desc_base=job.desc_base, desc_count=job.count,
                    cfg=BIG)
    assert run.ok, f"{run.error_code.name}: {run.message} (seed {seed})"
    after, before = bytearray(run.image), bytearray(job.image)
    for addr, exp in job.outputs:
        lo = addr - job.base
        assert bytes(after[lo:lo + len(exp)]) == exp, f"seed {seed}"
        assert bytes(before[lo:lo + len(exp)]) != exp or len(exp) < 4, f"seed {seed}"
        after[lo:lo + len(exp)] = before[lo:lo + len(exp)] = b"\0" * len(exp)
    assert after == before, f"a byte outside the output buffers changed (seed {seed})"


def test_chained_layers_are_one_network():
    """Layers that all chain compile as one plain Network: build_job's image is
    compile_network's of that network (input and weights given as values)."""
    rng = np.random.default_rng(5)
    layers = [dict(accel_driver.random_layer(rng, BIG, op="matmul", fmt=f, requant=True),
                   chain=True) for f in ("dense", "bitmap", "nm", "block")]
    job = accel_driver.build_job(np.random.default_rng(6), BIG, layers, split="rows")
    assert [L["chain"] for L in job.layers] == [False, True, True, True]
    rng = np.random.default_rng(6)
    (net,), _ = accel_driver.job_networks(rng, BIG, layers)
    s = int(rng.integers(0, 2**31))
    order = np.random.default_rng([s, 9])       # build_job's tables early / late per layer
    cn = compile_network(network_from_dict(net), BIG, base=job.base, seed=s, irq_last=False,
                         quant="random", out_fill="random", split="rows",
                         tables=[str(order.choice(["early", "late"])) for _ in layers])
    assert bytes(job.image) == cn.image
    assert [r.name for r in cn.regions][:3] == ["descriptors", "input", "layer0.weights"]


def test_layer_fits_is_the_compilers_rule():
    """layer_fits (driver) and check_tile_buffers (compiler, after packing) agree on dense
    layers, whose estimate is exact."""
    cfg = CFG.replace(act_buf_depth=16, weight_buf_depth=64, out_buf_depth=16)
    rng = np.random.default_rng(11)
    seen = set()
    for _ in range(120):
        L = accel_driver._random_layer(rng, cfg, op=str(rng.choice(["matmul", "conv2d"])),
                                       fmt="dense", requant=True, lut=None, max_dim=20)
        L["density"] = 1.0
        fits = accel_driver.layer_fits(cfg, L)
        nets, _ = accel_driver.job_networks(rng, cfg, [L])
        cn = compile_network(network_from_dict(nets[0]), cfg)
        try:
            check_tile_buffers(cn)
            compiled = True
        except NetworkError:
            compiled = False
        assert fits == compiled, L
        assert fits == (layer_buffer_shortfall(cn.layers[0].spec, cfg) is None)
        seen.add(fits)
    assert seen == {True, False}


# ---- compiler options used by the driver -------------------------------------------------------

def _net(seed=0, **layer):
    d = {"seed": seed, "input": {"shape": [12, 3]},
         "layers": [{"op": "matmul", "out_features": 8, "format": "bitmap", **layer},
                    {"op": "matmul", "out_features": 5, "activation": "gelu"}]}
    return network_from_dict(d)


def test_one_network_in_a_list_is_the_same_compile():
    a, b = compile_network(_net(), BIG), compile_network([_net()], BIG)
    assert a.image == b.image and a.regions == b.regions
    assert b.networks == (b.network,) and len(b.inputs) == 1


def test_several_networks_share_one_table():
    cn = compile_network([_net(1), _net(2)], BIG, irq_last=True)
    names = [r.name for r in cn.regions]
    assert names[:3] == ["descriptors", "net0.input", "net0.layer0.weights"]
    assert "net1.input" in names and cn.desc_count == 4
    assert cn.layers[2].regions["acts"].offset == cn.regions[names.index("net1.input")].offset
    flags = [cl.descriptor.flags & Flags.IRQ for cl in cn.layers]
    assert flags == [0, 0, 0, Flags.IRQ]
    run = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                    cfg=BIG)
    assert run.ok
    for lr, cl in zip(run.layers, cn.layers, strict=True):
        np.testing.assert_array_equal(lr.output, cl.expected)


def test_random_quant_and_canary_options():
    z = compile_network(_net(), BIG)
    r = compile_network(_net(), BIG, quant="random")
    c = compile_network(_net(), BIG, out_fill="random")
    assert [r.name for r in z.regions] == [x.name for x in r.regions]
    # the canary changes the output buffers only
    diff = {i for i, (p, q) in enumerate(zip(z.image, c.image)) if p != q}
    outs = {i for reg in z.regions if reg.name.endswith(".out")
            for i in range(reg.offset, reg.end)}
    assert diff and diff <= outs
    # random requantization: mult of 21..31 bits, shift 1..63, fixed table scales
    for cl in r.layers:
        assert ((1 << 20) <= cl.mult).all() and (cl.mult < (1 << 31)).all()
        assert ((1 <= cl.shift) & (cl.shift <= 63)).all()
    mults = np.concatenate([cl.mult for cl in r.layers])
    assert len({int(m).bit_length() for m in mults}) > 1, mults
    assert r.layers[1].lut is not None and r.layers[1].out_scale == pytest.approx(1 / 50)
    run = run_model(r.image, base=r.base, desc_base=r.desc_base, desc_count=r.desc_count,
                    cfg=BIG)
    assert run.ok and np.array_equal(run.layers[-1].output, r.layers[-1].expected)


@pytest.mark.parametrize("kw, message", [
    (dict(quant="exact"), "quant must be one of calibrate, random, not 'exact'"),
    (dict(out_fill="ones"), "out_fill must be one of zero, random, not 'ones'"),
])
def test_option_errors(kw, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        compile_network(_net(), BIG, **kw)


def test_prune_field_decouples_pruning_from_the_format():
    """A dense layer of 2:4-pruned weights (the dense baseline of an N:M layer)."""
    net = _net(format="dense", prune="nm", nm="2:4")
    cl = compile_network(net, BIG).layers[0]
    assert cl.spec.fmt == "dense" and cl.spec.prune == "nm"
    nz = np.count_nonzero(cl.weights.reshape(8, -1, 4), axis=2)
    assert (nz <= 2).all()
    with pytest.raises(NetworkError, match=r"layers\[0\]\.prune must be auto or nm for format "
                                           r"nm \(the format stores N:M weights only\), not "
                                           r"'block'"):
        _net(format="nm", prune="block")
    with pytest.raises(NetworkError, match=r"layers\[0\]\.density must not be given for prune "
                                           r"none, not 0\.5"):
        _net(prune="none", density=0.5)
