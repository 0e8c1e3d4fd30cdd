"""Network graphs and the residual add through the host flow (issue 16): the schema's ``input``
/ ``inputs`` and the ``add`` layer (host/network.py), the compiler's tensors, memory plan,
add descriptor and limits (host/compiler.py), the model engine and `run`.  Every output is
checked against the golden operations applied in graph order by this file (docs/spec.md
sections 2.4 and 8.2), with the add's parameters derived here from the scales
(`golden.add_params` with the architecture's limits, opcode 5; `golden.add_matmul_params` with
the hardware's, the add as a matmul, host/add_matmul.py) and its result within one LSB
(plus the int8 ratios' ``error_lsb``) of the real-valued sum."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sparsemac.golden import add_matmul_params, add_params, add_requant, conv2d, matmul, maxpool2d
from sparsemac.golden.descriptors import Flags, Opcode, buffer_sizes
from sparsemac.host import NetworkError, compile_network, load_network, network_from_dict
from sparsemac.host.compiler import calibrate
from sparsemac.host.model_engine import read_output, run_model
from sparsemac.host.run import run
from sparsemac.hw.config import AcceleratorConfig

CFG = AcceleratorConfig()
ROOT = Path(__file__).resolve().parents[2]


def _run(cn, limits="architecture"):
    return run_model(cn.image, base=cn.base, desc_base=cn.desc_base, desc_count=cn.desc_count,
                     cfg=cn.config, limits=limits)


def _reference(cn, names, hardware=False) -> list[np.ndarray]:
    """Every layer's ``(M, N)`` output from the golden operations applied in graph order, each
    layer reading the tensors its dict entry names (``names[i]``: the input names, None for
    the previous layer).  The add's parameters come from the scales here: ``s_y`` the largest
    real sum / 127 (or the fixed ``requant_scale``), `add_params`."""
    x0 = cn.input.astype(np.int8)
    tensors = {"network_input": (x0, cn.input_scales[0])}
    prev = "network_input"
    outs = []
    for cl, srcs in zip(cn.layers, names, strict=True):
        s = cl.spec
        srcs = srcs or [prev]
        x, s_x = tensors[srcs[0]]
        if s.op == "matmul":
            y = matmul(cl.weights.reshape(s.out, -1), x.reshape(s.in_shape), bias=cl.bias,
                       mult=cl.mult, shift=cl.shift, lut=cl.lut, acc_width=CFG.acc_width)
            s_out = cl.out_scale
        elif s.op == "conv2d":
            y = conv2d(x.reshape(1, *s.in_shape), cl.weights, bias=cl.bias, mult=cl.mult,
                       shift=cl.shift, lut=cl.lut, stride=s.stride, padding=s.padding,
                       dilation=s.dilation, acc_width=CFG.acc_width)
            s_out = cl.out_scale
        elif s.op == "maxpool2d":
            y, s_out = maxpool2d(x.reshape(1, *s.in_shape), s.kernel, s.stride, s.padding), s_x
        else:
            b, s_b = tensors[srcs[1]]
            real = x.astype(np.float64) * s_x + b.astype(np.float64) * s_b
            s_y = s.requant_scale or float(np.abs(real).max()) / 127 or max(s_x, s_b)
            assert cl.requant_scale == pytest.approx(s_y, rel=1e-12)
            p = (add_matmul_params if hardware else add_params)(s_x, s_b, s_y)
            kw = {k: p[k] for k in ("mult_a", "shift_a", "mult_b", "shift_b")}
            y = add_requant(x.reshape(s.in_shape), b.reshape(s.in_shape), **kw, lut=cl.lut)
            # the real-valued add (spec 2.4: within one LSB of it before the table; the
            # hardware's int8 ratios within half an LSB plus their error_lsb, unsaturated)
            if cl.lut is None:
                want = np.clip(np.rint(real / s_y), -128, 127).reshape(s.in_shape)
                assert np.abs(y.astype(np.int64) - want).max(initial=0) <= (
                    1 + int(np.ceil(p.get("error_lsb", 0))))
                free = np.abs(real / s_y).reshape(s.in_shape) < 127
                assert np.all(np.abs(y[free] - (real / s_y).reshape(s.in_shape)[free])
                              <= 0.5 + p.get("error_lsb", 0.5) + 1e-9)
            s_out = cl.out_scale
        y = np.asarray(y).reshape(s.out, -1)
        outs.append(y)
        tensors[s.name] = (y.astype(np.int8).ravel(), s_out)
        prev = s.name
    return outs


RES_NET = """\
name: res
seed: 3
input:
  shape: [4, 6, 6]
layers:
  - name: stem
    op: conv2d
    out_channels: 8
    kernel: 3
    padding: 1
    activation: relu
  - name: c1
    op: conv2d
    out_channels: 8
    kernel: 3
    padding: 1
    format: bitmap
    activation: relu
  - name: c2
    op: conv2d
    out_channels: 8
    kernel: 3
    padding: 1
  - name: sum
    op: add
    inputs: [c2, stem]
    activation: relu
  - name: fc
    op: matmul
    out_features: 5
"""


def _net(tmp_path, text=RES_NET):
    p = tmp_path / "net.yaml"
    p.write_text(text)
    return load_network(p)


def test_residual_block_is_bit_exact(tmp_path):
    """conv -> conv -> conv -> add(skip) -> matmul: the add's descriptor (opcode 5, a at acts,
    b at weights, two records, the table, m/k/n = C/1/H*W), every output as the model engine
    writes it equal to the golden operations in graph order, the skip buffer still holding the
    stem output after the run (no later output overlaps it)."""
    net = _net(tmp_path)
    assert [s.sources for s in net.layers] == [(-1,), (0,), (1,), (2, 0), (3,)]
    cn = compile_network(net, CFG, limits="architecture")
    r = _run(cn)
    assert r.ok, f"{r.error_code.name} at {r.error_desc}: {r.message}"
    want = _reference(cn, [None, None, None, ["c2", "stem"], None])
    for cl, y in zip(cn.layers, want, strict=True):
        np.testing.assert_array_equal(cl.expected, y, err_msg=cl.spec.name)
        np.testing.assert_array_equal(read_output(r.image, cl.descriptor), y,
                                      err_msg=cl.spec.name)
    stem, c2, add = cn.layers[0], cn.layers[2], cn.layers[3]
    d = add.descriptor
    assert d.opcode == Opcode.ADD and (d.acts, d.weights) == (c2.descriptor.out,
                                                              stem.descriptor.out)
    assert (d.m, d.k, d.n, d.c, d.h, d.w) == (8, 1, 36, 8, 6, 6)
    assert d.flags == Flags.REQUANT | Flags.LUT
    assert (add.in_scale, add.in_scale_b) == (c2.out_scale, stem.out_scale)
    p = add_params(c2.out_scale, stem.out_scale, add.requant_scale)
    assert list(add.mult) == [p["mult_a"], p["mult_b"]]
    assert list(add.shift) == [p["shift_a"], p["shift_b"]] and list(add.bias) == [0, 0]
    assert buffer_sizes(d)["quant"] == 32 == add.regions["quant"].size
    # the skip tensor is intact after every later layer wrote its output
    o = stem.descriptor.out
    assert bytes(r.image[o:o + stem.expected.size]) == stem.expected.astype(np.int8).tobytes()
    assert cn.layers[-1].descriptor.acts == d.out


def test_memory_plan_keeps_every_read_buffer(tmp_path):
    """No output buffer overlaps a buffer a later layer reads (the plan never reuses one)."""
    cn = compile_network(_net(tmp_path), CFG, limits="architecture")
    for i, cl in enumerate(cn.layers):
        o, n = cl.descriptor.out, buffer_sizes(cl.descriptor)["out"]
        for later in cn.layers[i + 1:]:
            d = later.descriptor
            sizes = buffer_sizes(d)
            reads = [(d.acts, sizes["acts"])] + ([(d.weights, sizes["weights"])]
                                                 if d.opcode == Opcode.ADD else [])
            for a, m in reads:
                assert a == o or a + m <= o or o + n <= a, (cl.spec.name, later.spec.name)


def test_architecture_limits_run_on_the_model_engine_only(tmp_path):
    net = _net(tmp_path)
    with pytest.raises(NetworkError, match="limits 'architecture' runs on the model engine"):
        run(net, CFG, engine=lambda cn: None, engine_name="rtl", limits="architecture")


def test_chain_with_explicit_inputs_is_the_same_image(tmp_path):
    """Naming the previous layer (and the network input for layer 0) changes nothing: the
    image is byte-identical to the plain chain."""
    base = textwrap.dedent("""\
        seed: 7
        input:
          shape: [3, 7, 7]
        layers:
          - name: a
            op: conv2d
            out_channels: 6
            kernel: 3
            format: bitmap
            activation: relu
          - name: p
            op: maxpool2d
            kernel: 2
          - name: fc
            op: matmul
            out_features: 4
        """)
    named = base.replace("    op: conv2d\n", "    op: conv2d\n    input: network_input\n")
    named = named.replace("    op: maxpool2d\n", "    op: maxpool2d\n    input: a\n")
    named = named.replace("    op: matmul\n", "    op: matmul\n    input: p\n")
    a = compile_network(_net(tmp_path, base), CFG)
    b = compile_network(_net(tmp_path, named), CFG)
    assert a.image == b.image


def _random_residual(rng) -> tuple[dict, list]:
    """A random image network with one or two adds, branches and a skip from the input:
    ``(network dict, per-layer input names or None)``."""
    c = int(rng.integers(1, 9))
    h, w = (int(v) for v in rng.integers(3, 9, size=2))
    fmts = ["dense", "bitmap", "block", "nm"]
    acts = ["none", "relu", "gelu", "silu"]

    def conv(name, src=None, k=3):
        d = {"name": name, "op": "conv2d", "out_channels": c, "kernel": k,
             "padding": k // 2, "format": str(rng.choice(fmts)),
             "activation": str(rng.choice(acts))}
        if src:
            d["input"] = src
        return d
    layers = [conv("c0"), conv("c1"), conv("c2", k=1),
              {"name": "s1", "op": "add", "inputs": ["c2", "c0"],
               "activation": str(rng.choice(acts))},
              conv("b", src="network_input"),
              {"name": "s2", "op": "add", "inputs": list(rng.permutation(["s1", "b"]))},
              {"name": "fc", "op": "matmul", "out_features": int(rng.integers(1, 6))}]
    names = [None, None, None, ["c2", "c0"], ["network_input"], layers[5]["inputs"], None]
    return ({"seed": int(rng.integers(1 << 20)), "input": {"shape": [c, h, w]},
             "layers": layers}, names)


@pytest.mark.parametrize("limits", ["architecture", "hardware"])
@pytest.mark.parametrize("rep", range(4))
def test_random_residual_networks_are_bit_exact(rng, seed, rep, limits):
    """Random residual graphs (odd ``H*W``: rows between an add's inputs) on the model engine
    with each limit: opcode 5, or the add as a matmul over both inputs (host/add_matmul.py)."""
    d, names = _random_residual(rng)
    d["layers"][5]["inputs"] = [str(v) for v in d["layers"][5]["inputs"]]
    names[5] = d["layers"][5]["inputs"]
    cn = compile_network(network_from_dict(d), CFG, limits=limits)
    ctx = f"seed={seed} rep={rep} {d}"
    adds = [cl for cl in cn.layers if cl.spec.is_add]
    assert all((cl.descriptor.opcode == Opcode.MATMUL) == (limits == "hardware")
               for cl in adds), ctx
    r = _run(cn, limits)
    assert r.ok, f"{ctx}: {r.error_code.name} at {r.error_desc}: {r.message}"
    for cl, y in zip(cn.layers, _reference(cn, names, limits == "hardware"), strict=True):
        np.testing.assert_array_equal(read_output(r.image, cl.descriptor), y, err_msg=ctx)


def test_matrix_add_and_batch(rng, seed):
    """An add of two matmul outputs (``M x N``: C = M, H = 1, W = N), and a batch of images
    through `run` (calibrated once on the batch, one chain per image), both bit-exact."""
    x = rng.integers(-100, 100, size=(12, 3)).astype(np.int8)
    net = network_from_dict({"seed": 2, "input": {"values": x.tolist()}, "layers": [
        {"name": "f1", "op": "matmul", "out_features": 6, "activation": "relu"},
        {"name": "f2", "op": "matmul", "out_features": 6},
        {"name": "s", "op": "add", "inputs": ["f2", "f1"]},
        {"name": "f3", "op": "matmul", "out_features": 4}]})
    cn = compile_network(net, CFG, limits="architecture")
    d = cn.layers[2].descriptor
    assert (d.c, d.h, d.w, d.m, d.k, d.n) == (6, 1, 3, 6, 1, 3)
    r = _run(cn)
    assert r.ok, f"seed={seed}: {r.message}"
    for cl, y in zip(cn.layers, _reference(cn, [None, None, ["f2", "f1"], None]), strict=True):
        np.testing.assert_array_equal(read_output(r.image, cl.descriptor), y,
                                      err_msg=f"seed={seed}")
    imgs = rng.integers(-100, 100, size=(3, 4, 6, 6)).astype(np.int8)
    bnet = network_from_dict({"seed": 4, "input": {"values": imgs.tolist()}, "layers": [
        {"name": "c", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
        {"name": "s", "op": "add", "inputs": ["c", "network_input"], "activation": "relu"},
        {"name": "fc", "op": "matmul", "out_features": 3}]})
    rr = run(bnet, CFG, limits="architecture")
    assert rr.report["status"] == "OK" and rr.report["mismatches"] == 0, f"seed={seed}"
    fixed = calibrate(bnet, CFG, limits="architecture")
    assert fixed.layers[1].requant_scale is not None
    for b in range(3):
        one = compile_network(replace(fixed, input_values=imgs[b], batch=1), CFG,
                              limits="architecture")
        want = _reference(one, [None, ["c", "network_input"], None])
        np.testing.assert_array_equal(rr.outputs[b], want[-1].ravel(), err_msg=f"seed={seed}")


def _graph_error(extra_layers, shape=(8, 4, 4)):
    base = [{"name": "c1", "op": "conv2d", "out_channels": 8, "kernel": 3, "padding": 1},
            {"name": "m", "op": "maxpool2d", "kernel": 2}]
    with pytest.raises(NetworkError) as e:
        network_from_dict({"input": {"shape": list(shape)}, "layers": base + extra_layers})
    return str(e.value)


@pytest.mark.parametrize("layers,message", [
    ([{"op": "add", "inputs": ["c1", "zz"]}],
     "network: layers[2].inputs[1] must name an earlier layer or network_input, not 'zz' (no "
     "layer has that name)"),
    ([{"name": "s", "op": "add", "inputs": ["c1", "t"]}, {"name": "t", "op": "maxpool2d",
                                                          "kernel": 1}],
     "network: layers[2].inputs[1] must name an earlier layer (a layer reads only the layers "
     "before it) or network_input, not 't' (layers[3], later)"),
    ([{"name": "s", "op": "add", "inputs": ["s", "c1"]}],
     "network: layers[2].inputs[0] must name an earlier layer (a layer reads only the layers "
     "before it) or network_input, not 's' (layers[2], the layer itself)"),
    ([{"op": "add", "inputs": ["c1", "m"]}],
     "network: layers[2].inputs must name two tensors of one shape, not 8 x 4 x 4 (layers[0] "
     "'c1') and 8 x 2 x 2 (layers[1] 'm')"),
    ([{"op": "add", "inputs": ["c1"]}],
     "network: layers[2].inputs must be given as a list [a, b] of two earlier layer names (or "
     "network_input), not ['c1']"),
    ([{"op": "add"}],
     "network: layers[2].inputs must be given as a list [a, b] of two earlier layer names (or "
     "network_input)"),
    ([{"op": "add", "inputs": ["c1", "network_input"], "format": "bitmap"}],
     "network: layers[2].format must not be given for an add layer: it has no weights, bias or "
     "per-channel requantization (its output scale is calibrated, or requant_scale)"),
    ([{"op": "maxpool2d", "kernel": 2, "input": 3}],
     "network: layers[2].input must be the name of an earlier layer or network_input, not 3"),
    ([{"op": "conv2d", "kernel": 1, "out_channels": 2, "input": "later"},
      {"name": "later", "op": "maxpool2d", "kernel": 1}],
     "network: layers[2].input must name an earlier layer (a layer reads only the layers "
     "before it) or network_input, not 'later' (layers[3], later)"),
    ([{"name": "network_input", "op": "maxpool2d", "kernel": 1}],
     "network: layers[2].name must not be 'network_input' (the name input fields give to the "
     "network input)"),
    ([{"op": "add", "inputs": ["c1", "c1"], "out_scale": 0.1}],
     "network: layers[2].out_scale must only be given with an activation (the output LSB of its "
     "table; requant_scale is the LSB without one)"),
])
def test_graph_schema_errors_are_pinned(layers, message):
    assert _graph_error(layers) == message


def test_int32_input_is_refused():
    """A layer may not read an int32 output (``requant: false``) by name either."""
    with pytest.raises(NetworkError) as e:
        network_from_dict({"input": {"shape": [4, 2]}, "layers": [
            {"name": "a", "op": "matmul", "out_features": 4, "requant": False},
            {"name": "s", "op": "add", "inputs": ["network_input", "a"]}]})
    assert str(e.value) == ("network: layers[1].inputs[1] must not name layer 'a' whose requant "
                            "is false (int32 accumulators are not an int8 input)")


def test_cli_residual_example():
    """``sparsemac run examples/residual_net.yaml --limits architecture``: OK, a row per layer
    (the adds with their inputs, opcode 5 at the memory roofline), no mismatch; without it (the
    hardware's limits) the adds run as matmuls over both inputs (bitmap, two weights a row)."""
    ex = ROOT / "examples" / "residual_net.yaml"
    cmd = [sys.executable, "-m", "sparsemac", "run", str(ex), "--engine", "model"]
    r = subprocess.run(cmd + ["--limits", "architecture", "--json"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    net = load_network(ex)
    assert rep["status"] == "OK" and rep["mismatches"] == 0 and rep["limits"] == "architecture"
    assert [e["name"] for e in rep["layers"]] == [s.name for s in net.layers]
    adds = [e for e in rep["layers"] if e["op"] == "add"]
    assert [e["inputs"] for e in adds] == [["conv2", "stem"], ["pool", "skip_conv"]]
    assert all(e["cycles"] == e["roofline_cycles"] > 0 for e in adds)
    assert rep["cycles"] == sum(e["cycles"] for e in rep["layers"])
    t = subprocess.run(cmd + ["--limits", "architecture"], capture_output=True, text=True,
                       timeout=120)
    assert t.returncode == 0 and " res1 " in t.stdout and "add" in t.stdout, t.stderr
    h = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    assert h.returncode == 0, h.stderr
    rep = json.loads(h.stdout)
    assert rep["status"] == "OK" and rep["mismatches"] == 0 and rep["limits"] == "hardware"
    adds = [e for e in rep["layers"] if e["op"] == "add"]
    assert [e["inputs"] for e in adds] == [["conv2", "stem"], ["pool", "skip_conv"]]
    assert all(e["as"] == "matmul" and e["format"] == "bitmap" for e in adds)
    assert [(e["m"], e["k"], e["n"]) for e in adds] == [(4, 8, 64), (4, 8, 16)]
    assert all(e["density"] == 2 / e["k"] for e in adds)
