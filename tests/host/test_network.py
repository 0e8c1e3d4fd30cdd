"""Layer-list schema (host/network.py): pinned one-line errors and resolved shapes."""

import textwrap

import numpy as np
import pytest
from sparsemac.golden.lut import FUNCTIONS
from sparsemac.host import NetworkError, compile_network, load_network, network_from_dict
from sparsemac.hw.config import AcceleratorConfig

BASE = """\
name: t
input:
  shape: [3, 8, 8]
layers:
  - name: c1
    op: conv2d
    out_channels: 4
    kernel: 3
    padding: 1
    format: bitmap
    density: 0.5
    activation: relu
  - name: fc
    op: matmul
    out_features: 5
"""


def _load(tmp_path, text):
    p = tmp_path / "net.yaml"
    p.write_text(textwrap.dedent(text))
    return load_network(p), str(p)


def _error(tmp_path, text) -> str:
    p = tmp_path / "net.yaml"
    p.write_text(text)
    with pytest.raises(NetworkError) as info:
        load_network(p)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg.replace(str(p), "net.yaml")


def test_base_resolves_shapes(tmp_path):
    net, _ = _load(tmp_path, BASE)
    c1, fc = net.layers
    assert (c1.in_shape, c1.out_shape, c1.mkn) == ((3, 8, 8), (4, 8, 8), (4, 27, 64))
    assert (c1.fmt, c1.prune, c1.density, c1.activation) == ("bitmap", "unstructured", 0.5,
                                                             "relu")
    # matmul after a conv: flatten (default) -> K = C*H*W, N = 1
    assert (fc.in_shape, fc.out_shape, fc.weight_shape) == ((256, 1), (5, 1), (5, 256))
    assert fc.fmt == "dense" and fc.prune == "none" and fc.activation is None


def test_flatten_false_is_pointwise_and_reshape(tmp_path):
    text = BASE.replace("    out_features: 5\n", "    out_features: 6\n    flatten: false\n") + (
        "  - op: conv2d\n    reshape: [6, 4, 16]\n    out_channels: 2\n    kernel: [1, 3]\n"
        "    stride: [1, 2]\n")
    net, _ = _load(tmp_path, text)
    fc, c2 = net.layers[1:]
    assert fc.in_shape == (4, 64) and fc.out_shape == (6, 64)
    assert c2.in_shape == (6, 4, 16) and c2.out_shape == (2, 4, 7) and c2.name == "layer2"


@pytest.mark.parametrize("old,new,message", [
    # missing field: the line of the layer
    ("    op: matmul\n", "", "net.yaml:13: layers[1].op must be given (one of matmul, conv2d, "
     "maxpool2d, avgpool2d, global_avgpool, add)"),
    ("    out_features: 5\n", "",
     "net.yaml:13: layers[1].out_features must be given (an integer >= 1)"),
    ("    kernel: 3\n", "", "net.yaml:5: layers[0].kernel must be given (an integer or [kh, kw])"),
    ("input:\n  shape: [3, 8, 8]\n", "", "net.yaml:1: input must be given (a mapping with shape "
     "and optional values, scale, density)"),
    # bad format
    ("format: bitmap", "format: csr",
     "net.yaml:10: layers[0].format must be one of dense, bitmap, block, nm, not 'csr'"),
    # bad density
    ("density: 0.5", "density: 1.5",
     "net.yaml:11: layers[0].density must be a number between 0 and 1, not 1.5"),
    ("density: 0.5", "density: yes",
     "net.yaml:11: layers[0].density must be a number between 0 and 1, not True"),
    # bad N:M
    ("format: bitmap\n    density: 0.5", "format: nm\n    nm: '3:6'",
     "net.yaml:11: layers[0].nm must have M a power of two in 2..32, not '3:6'"),
    ("format: bitmap\n    density: 0.5", "format: nm\n    nm: [5, 4]",
     "net.yaml:11: layers[0].nm must have 1 <= N <= M, not [5, 4]"),
    ("format: bitmap\n    density: 0.5", "format: nm\n    nm: 2-4",
     "net.yaml:11: layers[0].nm must be 'N:M' or [N, M], not '2-4'"),
    ("format: bitmap", "format: nm",
     "net.yaml:11: layers[0].density must not be given for format nm (N:M fixes the density), "
     "not 0.5"),
    ("density: 0.5", "density: 0.5\n    nm: 2:4",
     "net.yaml:12: layers[0].nm must only be given with format nm or prune nm, not with 'bitmap'"),
    # unknown activation
    ("activation: relu", "activation: swish",
     "net.yaml:12: layers[0].activation must be one of none, " + ", ".join(FUNCTIONS)
     + ", not 'swish'"),
    # shape mismatch between layers
    ("    out_features: 5\n", "    out_features: 5\n    in_features: 64\n",
     "net.yaml:16: layers[1].in_features must be 256 (the rows K of the input from layers[0] "
     "'c1'), not 64"),
    ("    out_features: 5\n", "    out_features: 5\n    flatten: false\n    in_features: 256\n",
     "net.yaml:17: layers[1].in_features must be 4 (the rows K of the input from layers[0] "
     "'c1'), not 256"),
    ("    out_channels: 4\n", "    out_channels: 4\n    in_channels: 2\n",
     "net.yaml:8: layers[0].in_channels must be 3 (the channels of the input from the network "
     "input), not 2"),
    ("shape: [3, 8, 8]", "shape: [24, 8]",
     "net.yaml:5: layers[0].reshape must be given ([C, H, W] with C*H*W = 192) for a conv2d "
     "whose input is a matrix (the network input: 24 x 8)"),
    ("    kernel: 3\n", "    kernel: 11\n",
     "net.yaml:8: layers[0].kernel must fit the padded input 10 x 10 (dilated kernel 11 x 11), "
     "not [11, 11]"),
    # other fields
    ("    padding: 1\n", "    padding: 1\n    pading: 1\n",
     "net.yaml:10: layers[0].pading is not a known field; allowed: name, op, format, prune, "
     "density, nm, activation, requant, bias, weights, weight_scale, requant_scale, out_scale, "
     "out_channels, in_channels, kernel, stride, padding, dilation, reshape, groups, input"),
    ("op: matmul", "op: dense", "net.yaml:14: layers[1].op must be one of matmul, conv2d, "
     "maxpool2d, avgpool2d, global_avgpool, add, not 'dense'"),
    ("  - name: fc", "  - name: c1", "net.yaml:13: layers[1].name must be unique, not 'c1' again"),
    ("    out_channels: 4\n", "    out_channels: 0\n",
     "net.yaml:7: layers[0].out_channels must be an integer between 1 and 16777216, not 0"),
    ("    out_channels: 4\n", "    out_channels: 16777217\n",
     "net.yaml:7: layers[0].out_channels must be an integer between 1 and 16777216, "
     "not 16777217"),
    ("    padding: 1\n", "    padding: [1, -1]\n",
     "net.yaml:9: layers[0].padding must be an integer between 0 and 255 or a pair [h, w] of "
     "them, not [1, -1]"),
    ("    out_features: 5\n", "    out_features: 5\n    activation: relu\n    requant: false\n",
     "net.yaml:16: layers[1].activation must be none when requant is false, not 'relu'"),
    ("shape: [3, 8, 8]", "shape: [3, 0, 8]",
     "net.yaml:3: input.shape must be [K, N] (matrix), [C, H, W] (image) or [N, C, H, W] (a "
     "batch of images) of positive integers, not [3, 0, 8]"),
])
def test_schema_errors_are_pinned(tmp_path, old, new, message):
    assert old in BASE, old
    assert _error(tmp_path, BASE.replace(old, new, 1)) == message


def test_empty_layers_and_unquoted_nm(tmp_path):
    assert _error(tmp_path, BASE.split("layers:")[0] + "layers: []\n") == (
        "net.yaml:4: layers must be given (a non-empty list of layers)")
    # YAML 1.1 would read 2:4 as the base-60 integer 124; the loader keeps it a string
    net, _ = _load(tmp_path, BASE.replace("format: bitmap\n    density: 0.5",
                                          "format: nm\n    nm: 2:4"))
    assert net.layers[0].nm == (2, 4)
    net, _ = _load(tmp_path, BASE.replace("kernel: 3", "kernel: 0x3"))
    assert net.layers[0].kernel == (3, 3)


def test_requant_false_only_last(tmp_path):
    text = BASE.replace("    activation: relu\n", "    requant: false\n")
    assert _error(tmp_path, text) == (
        "net.yaml:13: layers[1] must not follow layer 'c1' whose requant is false (int32 "
        "accumulators are not an int8 input)")


def test_yaml_and_file_errors(tmp_path):
    assert _error(tmp_path, "layers: [1, 2\n").startswith("net.yaml:2: not valid YAML: ")
    with pytest.raises(NetworkError, match=r"^cannot read network file '/nonexistent.yaml': "):
        load_network("/nonexistent.yaml")
    assert _error(tmp_path, "- 1\n") == ("net.yaml: network must be a mapping with input and "
                                         "layers, not list")


def test_python_dict_weights_and_values():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2, 2, 2))
    net = network_from_dict({"input": {"values": rng.normal(size=(2, 4, 4)).tolist()},
                             "layers": [{"op": "conv2d", "weights": w, "bias": [0.5, 0, -1]}]})
    spec = net.layers[0]
    assert spec.kernel == (2, 2) and spec.out == 3 and spec.out_shape == (3, 3, 3)
    with pytest.raises(NetworkError, match=r"^network: layers\[0\]\.weights must have shape "
                       r"\(3, 2, 2, 2\) \(O, C, KH, KW\), not \(3, 2, 3, 3\)"):
        network_from_dict({"input": {"shape": [2, 4, 4]},
                           "layers": [{"op": "conv2d", "out_channels": 3, "kernel": 2,
                                       "weights": np.zeros((3, 2, 3, 3))}]})
    with pytest.raises(NetworkError, match=r"layers\[0\]\.weights must hold int8 values"):
        network_from_dict({"input": {"shape": [2, 4]},
                           "layers": [{"op": "matmul", "weights": [[300, 0]]}]})
    with pytest.raises(NetworkError, match=r"layers\[0\]\.bias must have 1 values"):
        network_from_dict({"input": {"shape": [2, 4]},
                           "layers": [{"op": "matmul", "weights": [[3, 0]], "bias": [1, 2]}]})


@pytest.mark.parametrize("sets,message", [
    ({"formats": ("dense", "nm")}, "net.yaml:10: layers[0].format must be one of the formats "
     "built into this configuration (dense, nm), not 'bitmap'"),
    ({"lut_enabled": False}, "net.yaml:12: layers[0].activation must be none: this configuration "
     "has no LUT engine (lut_enabled: false), not 'relu'"),
])
def test_config_dependent_errors(tmp_path, sets, message):
    net, path = _load(tmp_path, BASE)
    cfg = AcceleratorConfig(**sets)
    with pytest.raises(NetworkError) as info:
        compile_network(net, cfg)
    assert str(info.value).replace(path, "net.yaml") == message


def test_nm_max_m_error(tmp_path):
    net, path = _load(tmp_path, BASE.replace("format: bitmap\n    density: 0.5",
                                             "format: nm\n    nm: 1:32"))
    with pytest.raises(NetworkError) as info:
        compile_network(net, AcceleratorConfig(nm_max_m=16))
    assert str(info.value).replace(path, "net.yaml") == (
        "net.yaml:11: layers[0].nm must have M <= nm_max_m (16) of this configuration, not 1:32")
