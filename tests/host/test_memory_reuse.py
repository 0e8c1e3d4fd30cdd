"""Liveness-based reuse of activation buffers (issue 16; `compile_network(...,
reuse_buffers=True)`, host/placement.py `MemoryPlan.arena`, docs/host.md section 3).

The plan is checked here independently of `MemoryPlan.check`: from the descriptors and the
layer graph alone (`_buffers`), every pair of activation buffers sharing a byte has disjoint
live ranges (writer .. last reader, inclusive), no output overlaps its own inputs or a
buffer its descriptor still reads, no activation buffer touches the weights, records, tables
or the descriptor table, and a byte-owner replay of the table (`_replay`) finds every input a
descriptor reads still written by its producer.  Random DAG networks (chains, pools,
residual graphs with both limits, several networks in one window, a batch of images) run
bit-exact on the model engine: every layer as it is written, and every buffer that survives
the table read back after it."""

from __future__ import annotations

import numpy as np
import pytest
from sparsemac.golden.descriptors import DESC_BYTES, Opcode, buffer_sizes
from sparsemac.host import compile_network, network_from_dict
from sparsemac.host.model_engine import read_output, run_model
from sparsemac.host.placement import MemoryPlan, Region, check_regions, plan_live
from sparsemac.host.run import JobResult, model_job, run
from sparsemac.hw.config import AcceleratorConfig

from .nets import random_pool_network, valid_network
from .test_residual import _random_residual, _reference

CFG = AcceleratorConfig()


def _live(a, b) -> bool:
    """Inclusive ranges ``a`` and ``b`` share a descriptor."""
    return not (a[1] < b[0] or b[1] < a[0])


def _meet(a, b) -> bool:
    """Byte ranges ``(offset, size)`` share a byte."""
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def _buffers(cn) -> dict:
    """Every activation buffer from the descriptors and the graph (not the plan):
    ``{(network, tensor): [offset, size, writer, last reader]}``, tensor -1 the network's
    input (written by the host: -1), the last layer's output read by the host after the
    table (the descriptor count)."""
    bufs, pos = {}, {id(cl): g for g, cl in enumerate(cn.layers)}
    for j, _ in enumerate(cn.networks):
        chain = cn.chain(j)
        name = f"net{j}.input" if len(cn.networks) > 1 else "input"
        bufs[(j, -1)] = [next(r.offset for r in cn.regions if r.name == name),
                         int(cn.inputs[j].size), -1, -1]
        for cl in chain:
            g = pos[id(cl)]
            d = cl.descriptor
            bufs[(j, cl.spec.index)] = [d.out, buffer_sizes(d)["out"], g, g]
        for cl in chain:
            g = pos[id(cl)]
            for src in cl.spec.sources:
                bufs[(j, src)][3] = max(bufs[(j, src)][3], g)
        bufs[(j, chain[-1].spec.index)][3] = cn.desc_count
    return bufs


def _params(cn) -> list[tuple[int, int]]:
    """Byte ranges that must never meet an activation buffer: the descriptor table and every
    layer's weight images, records and table."""
    out = [(cn.desc_offset, DESC_BYTES * cn.desc_count)]
    for cl in cn.layers:
        d, sizes = cl.descriptor, buffer_sizes(cl.descriptor)
        if d.opcode != Opcode.ADD and cl.slices:
            out.append((d.weights, sum(int(pw.image.nbytes) for pw in cl.slices)))
        out += [(getattr(d, k), sizes[k]) for k in ("quant", "lut") if sizes[k]]
    return out


def _reads(cl) -> list[tuple[int, int]]:
    """The activation bytes descriptor ``cl`` reads: ``acts`` (an add as a matmul: both
    inputs and the rows between them) and an add's second input at ``weights``."""
    d, sizes = cl.descriptor, buffer_sizes(cl.descriptor)
    return [(d.acts, sizes["acts"])] + ([(d.weights, sizes["weights"])]
                                        if d.opcode == Opcode.ADD else [])


def check_plan(cn) -> dict:
    """Assert the reuse invariants from the descriptors and the graph; returns `_buffers`."""
    bufs = _buffers(cn)
    items = list(bufs.items())
    for i, (ka, a) in enumerate(items):
        assert a[0] % 32 == 0 and a[0] + a[1] <= cn.window_bytes, ka
        for kb, b in items[i + 1:]:
            if _meet(a[:2], b[:2]):
                assert not _live(a[2:], b[2:]), f"{ka} {a} and {kb} {b} share bytes while live"
        for p in _params(cn):
            assert not _meet(a[:2], p), f"{ka} {a} meets parameters at {p}"
    for g, cl in enumerate(cn.layers):
        out = (cl.descriptor.out, buffer_sizes(cl.descriptor)["out"])
        for r in _reads(cl):
            assert not _meet(out, r), f"descriptor {g} writes over its own input {r}"
        for k, b in bufs.items():       # nothing still to be read at descriptor g or later
            if b[3] >= g and b[2] < g:
                assert not _meet(out, b[:2]), f"descriptor {g} writes over {k} {b}"
    _replay(cn, bufs)
    assert cn.window_bytes % 4096 == 0
    check_regions(cn.regions, cn.window_bytes)
    return bufs


def _replay(cn, bufs) -> None:
    """Byte owners through the table: every tensor a descriptor reads is still owned by its
    writer, no output lands on a parameter byte, the networks' outputs survive the table."""
    PARAM, FREE = -1000, -2000
    owner = np.full(cn.window_bytes, FREE, dtype=np.int64)
    for off, size in _params(cn):
        owner[off:off + size] = PARAM
    for j, _ in enumerate(cn.networks):
        off, size = bufs[(j, -1)][:2]
        assert np.all(owner[off:off + size] == FREE)
        owner[off:off + size] = -1 - j
    for g, cl in enumerate(cn.layers):
        j = cl.chain
        for src in cl.spec.sources:
            off, size, w, _ = bufs[(j, src)]
            want = -1 - j if src == -1 else w
            assert np.all(owner[off:off + size] == want), \
                f"descriptor {g} ({cl.spec.name}) reads tensor {src} overwritten"
        d = cl.descriptor
        if d.opcode != Opcode.ADD and cl.slices:
            assert np.all(owner[d.weights:d.weights + 32] == PARAM)
        off, size = d.out, buffer_sizes(d)["out"]
        assert not np.any(owner[off:off + size] == PARAM), f"descriptor {g} writes parameters"
        owner[off:off + size] = g
    for j, _ in enumerate(cn.networks):
        last = cn.chain(j)[-1]
        g = next(h for h, cl in enumerate(cn.layers) if cl is last)
        off, size = bufs[(j, last.spec.index)][:2]
        assert np.all(owner[off:off + size] == g), f"network {j}'s output was overwritten"
    assert np.all(owner[np.concatenate([np.arange(o, o + s) for o, s in _params(cn)])]
                  == PARAM)


def check_run(cn, ctx="", limits="hardware") -> None:
    """The model engine runs ``cn``: every layer as written equals `expected`, every buffer
    no later layer overwrote holds it after the table, and `run`'s comparison agrees."""
    r = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                  cfg=cn.config, limits=limits)
    assert r.ok, f"{ctx}: {r.error_code.name} at {r.error_desc}: {r.message}"
    assert len(r.layers) == cn.desc_count
    for g, (cl, lr) in enumerate(zip(cn.layers, r.layers, strict=True)):
        np.testing.assert_array_equal(lr.output.reshape(cl.expected.shape), cl.expected,
                                      err_msg=f"{ctx} layer {g} as written")
        if cl.overwritten_by is None:
            np.testing.assert_array_equal(
                read_output(r.image, cl.descriptor).reshape(cl.expected.shape), cl.expected,
                err_msg=f"{ctx} layer {g} after the table")
        else:
            assert cl.overwritten_by > g
    for j, _ in enumerate(cn.networks):
        assert cn.chain(j)[-1].overwritten_by is None, ctx


def _same_as_without_reuse(net, cn, **kw) -> None:
    """Reuse changes the placement only: the same golden outputs, and the window no larger."""
    ref = compile_network(net, CFG, **kw)
    assert len(ref.layers) == len(cn.layers)
    for a, b in zip(ref.layers, cn.layers, strict=True):
        np.testing.assert_array_equal(a.expected, b.expected)
        assert a.overwritten_by is None
    assert cn.window_bytes <= ref.window_bytes
    assert cn.activation_bytes <= ref.activation_bytes
    assert not ref.reuse_buffers and cn.reuse_buffers


@pytest.mark.parametrize("rep", range(3))
def test_random_chains_and_pools_with_reuse(rng, seed, rep):
    nets = [valid_network(rng, n_layers=int(rng.integers(2, 6)))[1],
            network_from_dict(random_pool_network(rng))]
    for net in nets:
        ctx = f"seed={seed} rep={rep} {net.name}"
        cn = compile_network(net, CFG, reuse_buffers=True, out_fill="random")
        check_plan(cn)
        check_run(cn, ctx)
        _same_as_without_reuse(net, cn, out_fill="random")


@pytest.mark.parametrize("limits", ["architecture", "hardware"])
@pytest.mark.parametrize("rep", range(3))
def test_random_residual_graphs_with_reuse(rng, seed, rep, limits):
    """Random DAGs (branches, a skip from the network input, two adds; with the hardware's
    limits each add a matmul over its two inputs side by side): the plan's invariants, the
    model engine equal to the golden operations in graph order (tests/host/test_residual.py)
    for every layer as written."""
    d, names = _random_residual(rng)
    d["layers"][5]["inputs"] = [str(v) for v in d["layers"][5]["inputs"]]
    names[5] = d["layers"][5]["inputs"]
    net = network_from_dict(d)
    ctx = f"seed={seed} rep={rep} {limits}"
    cn = compile_network(net, CFG, limits=limits, reuse_buffers=True)
    check_plan(cn)
    check_run(cn, ctx, limits)
    want = _reference(cn, names, limits == "hardware")
    r = run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                  cfg=CFG, limits=limits)
    for cl, lr, y in zip(cn.layers, r.layers, want, strict=True):
        np.testing.assert_array_equal(lr.output, y, err_msg=f"{ctx} {cl.spec.name}")
    _same_as_without_reuse(net, cn, limits=limits)


def test_several_networks_and_a_batch_share_the_window(rng, seed):
    """Several networks in one table (``net<j>.`` prefixes): each input is live from the
    start, each network's last output to the end, the intermediates of a later network
    reuse an earlier one's; a batch of images through `run` with reuse equals the run
    without."""
    nets = []
    for _ in range(3):
        d, _names = _random_residual(rng)
        d["layers"][5]["inputs"] = [str(v) for v in d["layers"][5]["inputs"]]
        nets.append(network_from_dict(d))
    cn = compile_network(nets, CFG, reuse_buffers=True)
    bufs = check_plan(cn)
    check_run(cn, f"seed={seed}")
    shared = [(a, b) for a in bufs for b in bufs if a[0] < b[0]
              and _meet(bufs[a][:2], bufs[b][:2])]
    assert shared, f"seed={seed}: no buffer of a later network reuses an earlier one's"
    _same_as_without_reuse(nets, cn)
    imgs = rng.integers(-100, 100, size=(8, 3, 10, 10)).astype(np.int8)
    bnet = network_from_dict({"seed": 4, "input": {"values": imgs.tolist()}, "layers": [
        {"name": "c", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
        {"name": "p", "op": "maxpool2d", "kernel": 2, "input": "c"},
        {"name": "c2", "op": "conv2d", "out_channels": 4, "kernel": 1},
        {"name": "s", "op": "add", "inputs": ["c2", "p"], "activation": "relu"},
        {"name": "fc", "op": "matmul", "out_features": 3}]})
    a = run(bnet, CFG)
    b = run(bnet, CFG, reuse_buffers=True)
    assert a.report["mismatches"] == 0 == b.report["mismatches"], f"seed={seed}"
    assert b.report["status"] == "OK" and b.report["reuse_buffers"]
    assert b.report["mem_bytes"] < a.report["mem_bytes"], (a.report["mem_bytes"],
                                                           b.report["mem_bytes"])
    np.testing.assert_array_equal(a.outputs, b.outputs)
    assert "compared" not in a.report["layers"][0]
    hows = {e["name"]: e["compared"] for e in b.report["layers"]}
    assert hows["fc"] == "after the table" and "when written" in hows.values(), hows


def _chain(n_layers=4, k=8, n=4):
    """A matmul chain whose buffers are all ``k * n`` bytes (one AXI-aligned size)."""
    return network_from_dict({"seed": 5, "input": {"shape": [k, n]}, "layers": [
        {"name": f"l{i}", "op": "matmul", "out_features": k, "activation": "relu"}
        for i in range(n_layers)]})


def test_reuse_at_the_boundary():
    """A buffer whose last reader is descriptor ``i`` is reused by descriptor ``i + 1``'s
    output, never by descriptor ``i``'s: the input (read by 0) under layer 1's output, layer
    0's output (read by 1) under layer 2's; layer 1's output never under layer 0's or its own
    input."""
    cn = compile_network(_chain(), CFG, reuse_buffers=True)
    bufs = check_plan(cn)
    check_run(cn, "chain")
    off = {t: bufs[(0, t)][0] for t in (-1, 0, 1, 2, 3)}
    assert [bufs[(0, t)][2:] for t in (-1, 0, 1, 2, 3)] == [[-1, 0], [0, 1], [1, 2], [2, 3],
                                                             [3, 4]]
    assert off[1] == off[-1] and off[2] == off[0], off      # i -> i + 1: reused
    assert len({off[-1], off[0]}) == 2 and off[0] != off[1], off    # i -> i: never
    assert cn.layers[0].overwritten_by == 2 and cn.layers[1].overwritten_by == 3
    assert cn.layers[3].overwritten_by is None
    # the same from the plan alone: a block may take the bytes of one whose last reader is
    # strictly earlier than its writer
    assert plan_live([(32, (-1, 0)), (32, (0, 1)), (32, (1, 2))]) == ([0, 32, 0], 64)
    assert plan_live([(32, (0, 1)), (32, (1, 2))]) == ([0, 32], 64)


def test_check_regions_with_live_ranges():
    """`check_regions` allows shared bytes only between buffers with disjoint live ranges."""
    check_regions([Region("a", 0, 64, (-1, 0)), Region("b", 32, 64, (1, 2))], 4096)
    with pytest.raises(AssertionError, match="a .* overlaps b at 0x20 while both are live"):
        check_regions([Region("a", 0, 64, (-1, 1)), Region("b", 32, 64, (1, 2))], 4096)
    with pytest.raises(AssertionError, match="overlaps w at 0x20 while both are live"):
        check_regions([Region("a", 0, 64, (-1, 0)), Region("w", 32, 64)], 4096)
    plan = MemoryPlan()
    plan.alloc("descriptors", 64)
    where = plan.arena([([("x", 0, 40)], (-1, 0)), ([("y", 0, 33)], (0, 1)),
                        ([("z", 0, 40), ("zz", 64, 8)], (1, 2))])
    assert where == {"x": 64, "y": 160, "z": 64, "zz": 128}    # y clears z and zz
    assert plan.end == 64 + 96 + 33
    plan.check()
    with pytest.raises(ValueError, match="unique"):
        plan.arena([([("x", 0, 8)], (0, 0))])


def test_rtl_like_engine_leaves_overwritten_layers_uncompared():
    """An engine that reads the buffers only after the table (no `JobResult.written`, like
    the RTL): the overwritten layers are reported ``compared: no``, the rest compared."""
    def after_table(cn):
        res = model_job(cn)
        return JobResult(outputs=res.outputs, layer_cycles=res.layer_cycles,
                         cycles=res.cycles, roofline=res.roofline)
    rr = run(_chain(), CFG, engine=after_table, engine_name="after", reuse_buffers=True)
    rows = {e["name"]: e for e in rr.report["layers"]}
    assert rr.report["mismatches"] == 0 and rr.report["status"] == "OK"
    assert (rows["l0"]["compared"], rows["l0"]["overwritten_by"]) == ("no", "l2")
    assert rows["l3"]["compared"] == "after the table" and "overwritten_by" not in rows["l3"]


def _footprint(net, **kw) -> tuple[int, int, int, int]:
    a = compile_network(net, CFG, **kw)
    b = compile_network(net, CFG, reuse_buffers=True, **kw)
    check_plan(b)
    check_run(b, net.name, kw.get("limits", "hardware"))
    return a.window_bytes, b.window_bytes, a.activation_bytes, b.activation_bytes


def test_example_windows_shrink(capsys):
    """The example networks (examples/*.yaml; digits cnn_res and cnn_dw on a batch of 8
    test images when onnx is installed): the window and the activation bytes with reuse,
    printed before -> after."""
    from pathlib import Path

    from sparsemac.host import load_network

    root = Path(__file__).resolve().parents[2] / "examples"
    rows = {}
    for name in ("demo_net", "mlp", "pool_net", "residual_net"):
        rows[name] = _footprint(load_network(root / f"{name}.yaml"))
    try:
        from sparsemac.host.onnx_import import load_onnx
    except ImportError:     # pragma: no cover
        load_onnx = None
    if load_onnx is not None and pytest.importorskip("onnx", reason="onnx") is not None:
        x = np.load(root / "digits" / "test.npz")["images"][:8]
        for name in ("cnn_res_dense_int8", "cnn_dw_dense_int8"):
            m = load_onnx(root / "digits" / f"{name}.onnx", cfg=CFG)
            rows[f"{name} x8"] = _footprint(m.with_input(x))
    with capsys.disabled():
        print()
        for name, (wa, wb, aa, ab) in rows.items():
            print(f"  {name:24s} window {wa:7d} -> {wb:7d} bytes; activations {aa:6d} -> "
                  f"{ab:6d} bytes")
    for name, (wa, wb, aa, ab) in rows.items():
        assert wb <= wa and ab <= aa, name
    # (residual_net's window is one 4 KiB page with or without reuse since its layers share
    # one copy of their activation table, session 26; its activation bytes still shrink)
    assert rows["residual_net"][1] <= rows["residual_net"][0]
    assert rows["residual_net"][3] < rows["residual_net"][2]
    for name in rows:
        if name.startswith(("cnn_res", "cnn_dw")):
            assert rows[name][1] < rows[name][0], name
