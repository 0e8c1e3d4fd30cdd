"""Bad input on the command line: exit code 2, exactly one line on stderr naming the file, flag
or field and what is allowed, no traceback and no partial output (issue: "every bad-input
case ... a test per class")."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from sparsemac.cli.main import main

BINARY = b"\xff\xfe\x00\x01binary"
DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
MLP = str(DIGITS / "mlp_dense_int8.onnx")


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a))
    return buf.getvalue()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _pool_model(op="GlobalMaxPool", **attrs) -> bytes:
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node(op, ["input"], ["y"], name="pool", **attrs)], "m",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                         ["N", 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                         ["N", 1, 2, 2])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8).SerializeToString()


X5 = _npy(np.zeros((5, 64), np.float32))

#: (id, files to create {name: bytes}, argv, fragments the one line must contain)
CASES = [
    ("config-unknown-format", {"c.yaml": b"formats: [csr]\n"}, ["config", "--config", "c.yaml"],
     ["c.yaml:1:", "formats must only contain dense, bitmap, block, nm", "'csr'"]),
    ("config-no-format", {"c.yaml": b"formats: []\n"}, ["config", "--config", "c.yaml"],
     ["c.yaml:1:", "formats must include 'dense'"]),
    ("config-binary", {"c.yaml": BINARY}, ["config", "--config", "c.yaml"],
     ["config file 'c.yaml' must be UTF-8 text", "0xff"]),
    ("config-duplicate-key", {"c.yaml": b"rows: 4\ncols: 4\nrows: 8\n"},
     ["config", "--config", "c.yaml"], ["c.yaml:3: duplicate key 'rows' (first on line 1)"]),
    ("config-yaml-syntax", {"c.yaml": b"rows: [4\n"}, ["config", "--config", "c.yaml"],
     ["c.yaml:2: not valid YAML", "line 1"]),
    ("config-missing", {}, ["config", "--config", "nope.yaml"],
     ["cannot read config file 'nope.yaml'", "No such file"]),
    ("config-folder", {"d/x": b""}, ["config", "--config", "d"],
     ["config file must be a file, not the folder 'd'"]),
    ("set-unknown-format", {}, ["config", "--set", "formats=[csr]"],
     ["--set", "formats must only contain"]),
    ("set-not-int", {}, ["config", "--set", "rows=abc"], ["rows must be an integer", "'abc'"]),
    ("argparse-choice", {}, ["run", "--engine", "foo", "x.yaml"],
     ["argument --engine: invalid choice: 'foo'", "--help"]),
    ("argparse-unknown-flag", {}, ["config", "--bogus"], ["unrecognized arguments: --bogus"]),
    ("generate-out-is-file", {"existing": b"x"},
     ["generate", "--preset", "tiny", "-o", "existing"],
     ["-o/--out must be a folder, not the existing file 'existing'"]),
    ("generate-out-uncreatable", {}, ["generate", "--preset", "tiny", "-o", "/proc/none/x"],
     ["-o/--out: cannot create folder '/proc/none/x'"]),
    ("sweep-out-is-file", {"existing": b"x", "s.yaml": b"base: {preset: tiny}\nworkloads:\n"
                           b"  - {name: a, op: matmul, M: 4, K: 4, N: 4, format: dense}\n"},
     ["sweep", "s.yaml", "-o", "existing"],
     ["-o/--out must be a folder, not the existing file 'existing'"]),
    ("synth-work-dir-is-file", {"existing": b"x"},
     ["synth", "--preset", "tiny", "--target", "ecp5", "--work-dir", "existing"],
     ["--work-dir must be a folder, not the existing file 'existing'"]),
    ("run-binary-network", {"n.yaml": BINARY}, ["run", "n.yaml"],
     ["network file 'n.yaml' must be UTF-8 text"]),
    ("run-duplicate-key", {"n.yaml": b"name: a\nname: b\nlayers: []\n"}, ["run", "n.yaml"],
     ["n.yaml:2: duplicate key 'name' (first on line 1)"]),
    ("run-missing", {}, ["run", "none.yaml"], ["cannot read network file 'none.yaml'"]),
    ("sweep-binary-spec", {"s.yaml": BINARY}, ["sweep", "s.yaml", "-o", "out"],
     ["sweep spec 's.yaml' must be UTF-8 text"]),
    ("bench-huge-k", {}, ["bench", "matmul", "--k", "1000000000", "--engine", "model"],
     ["--k, --n must hold at most 16777216 values, not 16000000000"]),
    ("bench-huge-all", {}, ["bench", "matmul", "--m", "100000", "--k", "100000", "--n",
                            "100000", "--engine", "model"], ["must hold at most"]),
    ("bench-huge-image", {}, ["bench", "conv2d", "--c", "64", "--h", "64", "--w", "64",
                              "--engine", "model"], ["--c, --h, --w: the input image"]),
    ("bench-kernel-past-input", {}, ["bench", "conv2d", "--h", "3", "--w", "3", "--kh", "5",
                                     "--kw", "5", "--pad", "0", "--engine", "model"],
     ["--kh, --kw must fit the padded input 3 x 3"]),
    ("bench-nm-n-over-m", {}, ["bench", "matmul", "--format", "nm", "--nm", "5:4", "--engine",
                               "model"], ["--nm must have 1 <= N <= M", "'5:4'"]),
    ("bench-nm-not-pow2", {}, ["bench", "matmul", "--format", "nm", "--nm", "3:4", "--engine",
                               "model"], ["--nm N must be a power of two"]),
    # ONNX models and their input files (sparsemac run MODEL.onnx)
    ("run-onnx-no-input", {}, ["run", MLP], ["an ONNX model needs --input FILE"]),
    ("run-onnx-input-shape", {"x.npy": _npy(np.zeros((5, 3), np.float32))},
     ["run", MLP, "--input", "x.npy"], ["the input must have the shape [N, 64]", "[5, 3]"]),
    ("run-onnx-not-onnx", {"m.onnx": BINARY, "x.npy": X5}, ["run", "m.onnx", "--input", "x.npy"],
     ["m.onnx: cannot read the ONNX model"]),
    ("run-onnx-unsupported-op", {"m.onnx": _pool_model(), "x.npy": X5},
     ["run", "m.onnx", "--input", "x.npy"],
     ["m.onnx: node 'pool' (GlobalMaxPool) is not supported; supported ops: Conv, Gemm"]),
    ("run-onnx-pool-ceil-mode", {"m.onnx": _pool_model("MaxPool", kernel_shape=[2, 2],
                                                       ceil_mode=1), "x.npy": X5},
     ["run", "m.onnx", "--input", "x.npy"],
     ["m.onnx: node 'pool' (MaxPool) must have ceil_mode 0"]),
    ("run-pool-beyond-hardware", {"n.yaml": b"input: {shape: [1, 16, 16]}\nlayers:\n"
                                  b"  - {op: maxpool2d, kernel: 16}\n"}, ["run", "n.yaml"],
     ["n.yaml:3: layers[0].kernel must be at most 15 per axis on the hardware", "[16, 16]"]),
    ("run-limits-on-rtl", {"n.yaml": b"input: {shape: [4, 2]}\nlayers: [{op: matmul, "
                           b"out_features: 2}]\n"},
     ["run", "n.yaml", "--limits", "architecture", "--engine", "rtl"],
     ["--limits architecture applies to the model engine, not --engine rtl"]),
    ("run-onnx-bad-format", {"x.npy": X5}, ["run", MLP, "--input", "x.npy", "--format", "nm:x"],
     ["--format nm:x must be auto, dense, bitmap, block"]),
    ("run-labels-count", {"x.npy": X5, "y.npy": _npy([1, 2, 3])},
     ["run", MLP, "--input", "x.npy", "--labels", "y.npy"],
     ["--labels must have one label per input (5), not 3"]),
    ("run-labels-float", {"x.npy": X5, "y.npy": _npy([0.5] * 5)},
     ["run", MLP, "--input", "x.npy", "--labels", "y.npy"],
     ["--labels 'y.npy' must be a 1-D array of integer classes"]),
    ("run-input-not-npy", {"x.npz": b"junk"}, ["run", MLP, "--input", "x.npz"],
     ["--input 'x.npz' must be a readable .npy or .npz file"]),
    ("run-input-nan", {"x.npy": _npy(np.full((2, 64), np.nan))},
     ["run", MLP, "--input", "x.npy"], ["--input 'x.npy' must hold finite numbers only"]),
    ("run-input-npz-no-key", {"x.npz": _npz(foo=np.zeros((2, 64)))},
     ["run", MLP, "--input", "x.npz"],
     ["--input 'x.npz' must hold an array named one of images, input", "not foo"]),
    ("run-calib-shape", {"x.npy": X5, "c.npy": _npy(np.zeros((4, 9), np.float32))},
     ["run", MLP, "--input", "x.npy", "--calib", "c.npy"],
     ["calibration input must have the shape [64, N]"]),
    ("run-limit-zero", {"x.npy": X5}, ["run", MLP, "--input", "x.npy", "--limit", "0"],
     ["--limit must be >= 1, not 0"]),
    ("run-format-on-yaml", {"n.yaml": b"input: {shape: [4, 2]}\nlayers: [{op: matmul, "
                            b"out_features: 2}]\n"}, ["run", "n.yaml", "--format", "nm:2:4"],
     ["--format applies to ONNX models"]),
    ("run-save-outputs-folder", {"x.npy": X5, "d/x": b""},
     ["run", MLP, "--input", "x.npy", "--save-outputs", "d"],
     ["--save-outputs must be a file, not the folder 'd'"]),
    ("run-yaml-input-shape", {"n.yaml": b"input: {shape: [4, 2]}\nlayers: [{op: matmul, "
                              b"out_features: 2}]\n", "x.npy": _npy(np.zeros((3, 2)))},
     ["run", "n.yaml", "--input", "x.npy"],
     ["--input must have the shape [4, N] of the network's input matrix, not [3, 2]"]),
    ("lut-output-missing-folder", {},
     ["lut", "--report", "--no-sim", "--output", "nodir/x.md"],
     ["--output: folder 'nodir' of 'nodir/x.md' does not exist"]),
    ("lut-output-is-folder", {"d/x": b""}, ["lut", "--report", "--no-sim", "--output", "d"],
     ["--output must be a file, not the folder 'd'"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(case, tmp_path, capsys, monkeypatch):
    name, files, argv, fragments = case
    monkeypatch.chdir(tmp_path)
    for fname, data in files.items():
        (tmp_path / fname).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / fname).write_bytes(data)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exc_info:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    assert exc_info.value.code == 2, f"{name}: exit {exc_info.value.code}, stderr:\n{err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{name}: {len(lines)} lines on stderr:\n{err}"
    assert lines[0].startswith("sparsemac"), lines[0]
    for frag in fragments:
        assert frag in lines[0], f"{name}: {frag!r} not in {lines[0]!r}"
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert after == before, f"{name}: left output behind: {set(after) - set(before)}"
    assert not os.path.exists("/proc/none")
