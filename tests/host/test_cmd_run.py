"""``sparsemac run``: JSON report, exit codes, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sparsemac.host import compile_network, load_network
from sparsemac.host.run import run_network
from sparsemac.hw.config import AcceleratorConfig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(*args, timeout=120):
    # the working directory of pytest, not ROOT: ``python -m`` puts the working directory
    # first on sys.path, and a checkout's ``sparsemac/`` folder there would shadow the
    # package under test (a git worktree run through its own package path)
    return subprocess.run([sys.executable, "-m", "sparsemac", "run", *args], capture_output=True,
                          text=True, timeout=timeout)


def _one_line_error(r, message):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("sparsemac run: error: " + message), r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("name", ["demo_net.yaml", "mlp.yaml", "pool_net.yaml"])
def test_examples_json(name):
    r = run(str(EXAMPLES / name), "--engine", "model", "--json", "--set", "tiles=2")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    net = load_network(EXAMPLES / name)
    assert rep["mismatches"] == 0 and rep["status"] == "OK" and rep["engine"] == "model"
    assert [e["name"] for e in rep["layers"]] == [s.name for s in net.layers]
    assert rep["cycles"] == sum(e["cycles"] for e in rep["layers"]) > 0
    assert rep["roofline_cycles"] == sum(e["roofline_cycles"] for e in rep["layers"])
    for e in rep["layers"]:
        assert e["cycles"] >= e["roofline_cycles"] >= 1, e
        assert e["achieved_over_roofline"] == pytest.approx(e["cycles"] / e["roofline_cycles"])
        assert e["mismatches"] == 0
    assert "sparsemac.golden.net_cycles" in rep["cycle_model"]
    if name == "demo_net.yaml":
        assert {e["format"] for e in rep["layers"]} == {"dense", "bitmap", "block", "nm"}
        assert {e["op"] for e in rep["layers"]} == {"matmul", "conv2d"}
    if name == "pool_net.yaml":
        assert [e["op"] for e in rep["layers"]] == ["conv2d", "maxpool2d", "conv2d", "avgpool2d",
                                                    "global_avgpool", "matmul"]
        assert [e["out_shape"] for e in rep["layers"]] == [[8, 12, 12], [8, 6, 6], [16, 6, 6],
                                                           [16, 3, 3], [16, 1, 1], [10, 1]]
        for e in rep["layers"][1::2][:2] + [rep["layers"][4]]:     # the pools
            assert e["format"] is None and e["in_scale"] == e["out_scale"], e


def test_pool_net_text_report(tmp_path):
    """``sparsemac run examples/pool_net.yaml``: a row per layer, pools included (no format or
    density), the pool cycle model named; an average pool with padding and count_include_pad
    false runs with the hardware limits (the default) bit-exact, with the outputs and cycles
    of ``--limits architecture``."""
    r = run(str(EXAMPLES / "pool_net.yaml"))
    assert r.returncode == 0, r.stderr
    rows = {ln.split()[1]: ln.split() for ln in r.stdout.splitlines()
            if ln[:2].strip().isdigit()}
    assert rows["pool1"][2:6] == ["maxpool2d", "-", "rows", "-"], rows      # no tables
    assert rows["pool2"][2:4] == ["avgpool2d", "-"] and rows["gap"][2] == "global_avgpool"
    assert rows["pool1"][7] == "-" and rows["pool1"][-1] == "0"
    assert "pools: sparsemac.golden.net_pool" in r.stdout
    assert "status OK; 0 mismatches" in r.stdout
    text = (EXAMPLES / "pool_net.yaml").read_text().replace(
        "    kernel: 2\n  - name: gap", "    kernel: 3\n    stride: 1\n    padding: 1\n"
        "    count_include_pad: false\n  - name: gap")
    p = tmp_path / "onnx_avg.yaml"
    p.write_text(text)
    reps = {}
    for limits in ("hardware", "architecture"):
        out = tmp_path / f"{limits}.npz"
        r = run(str(p), "--limits", limits, "--json", "--save-outputs", str(out))
        assert r.returncode == 0, r.stderr
        rep = reps[limits] = json.loads(r.stdout)
        assert rep["limits"] == limits and rep["mismatches"] == 0 and rep["status"] == "OK"
        assert rep["layers"][3]["count_include_pad"] is False
        assert rep["layers"][3]["out_shape"] == [16, 6, 6]
        reps[limits]["saved"] = np.load(out)["outputs"]
    assert np.array_equal(reps["hardware"]["saved"], reps["architecture"]["saved"])
    assert reps["hardware"]["layers"][3]["cycles"] == reps["architecture"]["layers"][3]["cycles"]


def test_tile_split_choices():
    """``--tile-split``: rows everywhere, columns wherever a layer has at least two column
    groups (demo_net's conv3 and classifier have one), or per layer the cycle model's choice
    (``auto``, the default); every run bit-exact, the choice and ``col_split`` per layer in the
    report; an unknown choice is one line naming the flag."""
    from sparsemac.host.compiler import col_split_of

    cfg = AcceleratorConfig.preset("default")
    got = {}
    for choice in ("rows", "cols", "auto"):
        r = run(str(EXAMPLES / "demo_net.yaml"), "--json", "--tile-split", choice)
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)
        assert rep["mismatches"] == 0 and rep["status"] == "OK", rep
        got[choice] = [(e["tile_split"], e["col_split"]) for e in rep["layers"]]
        for e in rep["layers"]:
            want = col_split_of(e["n"], cfg) if e["tile_split"] == "cols" else 0
            assert e["col_split"] == want, e
    assert got["rows"] == [("rows", 0)] * 5
    assert [t for t, _ in got["cols"]] == ["cols", "cols", "cols", "rows", "rows"]
    assert all(a in (r, c) for a, r, c in zip(got["auto"], got["rows"], got["cols"]))
    r = run(str(EXAMPLES / "demo_net.yaml"), "--tile-split", "diagonal")
    assert r.returncode == 2 and "argument --tile-split: invalid choice: 'diagonal'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_tables_choices():
    """``--tables``: every requantized layer's table and records read before the activations
    (``early``), after the weight bodies (``late``, the LATE_TABLES flag) or per layer the
    faster by the cycle model (``auto``, the default); every run bit-exact with the same
    outputs, the choice per layer in the report and the text table; on demo_net the model
    picks both orders, and its total is at most that of either order alone; an unknown
    choice is one line naming the flag."""
    got, total, outs = {}, {}, {}
    for choice in ("early", "late", "auto"):
        r = run(str(EXAMPLES / "demo_net.yaml"), "--json", "--tables", choice)
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout)
        assert rep["mismatches"] == 0 and rep["status"] == "OK", rep
        got[choice] = [e["tables"] for e in rep["layers"]]
        total[choice] = sum(e["cycles"] for e in rep["layers"])
        outs[choice] = rep["outputs"] if "outputs" in rep else None
    assert got["early"] == ["early"] * 5 and got["late"] == ["late"] * 5, got
    assert set(got["auto"]) == {"early", "late"}, got
    assert total["auto"] <= min(total["early"], total["late"]), total
    assert total["late"] < total["early"], total
    r = run(str(EXAMPLES / "demo_net.yaml"), "--tables", "auto")
    assert r.returncode == 0 and " tables " in r.stdout and " late " in r.stdout, r.stdout
    r = run(str(EXAMPLES / "demo_net.yaml"), "--tables", "never")
    assert r.returncode == 2 and "argument --tables: invalid choice: 'never'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_text_report_seed_and_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rows: 2\ncols: 2\ntiles: 1\nout_lanes: 2\n")
    r = run(str(EXAMPLES / "mlp.yaml"), "--config", str(cfg), "--seed", "5")
    assert r.returncode == 0, r.stderr
    assert "seed 5" in r.stdout and "status OK; 0 mismatches" in r.stdout, r.stdout
    assert all(name in r.stdout for name in ("fc1", "fc2", "fc3", "total"))


def test_report_matches_compiler(seed):
    cfg = AcceleratorConfig(tiles=3)
    rep = run_network(EXAMPLES / "demo_net.yaml", cfg, seed=seed)
    cn = compile_network(load_network(EXAMPLES / "demo_net.yaml"), cfg, seed=seed)
    assert rep["mismatches"] == 0, f"seed={seed}"
    for e, cl in zip(rep["layers"], cn.layers, strict=True):
        assert (e["m"], e["k"], e["n"]) == cl.spec.mkn
        assert e["density"] == pytest.approx(np.count_nonzero(cl.weights) / cl.weights.size)


def test_missing_file():
    _one_line_error(run("/nonexistent/net.yaml"),
                    "cannot read network file '/nonexistent/net.yaml': No such file or directory")


def test_bad_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("input:\n  shape: [3, 4\nlayers: []\n")
    _one_line_error(run(str(p)), f"{p}:3: not valid YAML: ")


def test_schema_error_is_one_line(tmp_path):
    p = tmp_path / "net.yaml"
    p.write_text("input: {shape: [4, 2]}\nlayers:\n  - op: matmul\n    out_features: 2\n"
                 "    format: sparse\n")
    _one_line_error(run(str(p)), f"{p}:5: layers[0].format must be one of dense, bitmap, block, "
                    "nm, not 'sparse'")


def test_config_error_is_one_line():
    _one_line_error(run(str(EXAMPLES / "mlp.yaml"), "--set", "formats=[dense, nm]"),
                    f"{EXAMPLES / 'mlp.yaml'}:17: layers[1].format must be one of the formats "
                    "built into this configuration (dense, nm), not 'bitmap'")


def test_rtl_engine_runs_the_network_bit_exact():
    """The compiled image on the accelerator RTL (Verilator): every layer's buffer matches the
    compiler's golden outputs, cycles come from the hardware counters."""
    # a cold Verilator build of the default accelerator takes minutes on a loaded 2-core box
    r = run(str(EXAMPLES / "mlp.yaml"), "--engine", "rtl", "--json", timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)
    assert rep["engine"] == "rtl" and rep["status"] == "OK", rep
    assert rep["mismatches"] == 0
    assert rep["cycles"] >= rep["roofline_cycles"] > 0
    assert len(rep["layers"]) == len(load_network(EXAMPLES / "mlp.yaml").layers)
    assert all(e["cycles"] > 0 for e in rep["layers"])


PADDED_AVG_NET = """\
name: padded_avg
seed: 5
input:
  shape: [3, 9, 8]
layers:
  - name: conv
    op: conv2d
    out_channels: 5
    kernel: 3
    padding: 1
    format: dense
    activation: relu
  - name: avg3            # counts 4 (corners), 6 (edges), 9
    op: avgpool2d
    kernel: 3
    stride: 1
    padding: 1
    count_include_pad: false
  - name: avg2            # a 2x2 / 2 padded 1: one real position at the corners
    op: avgpool2d
    kernel: 2
    stride: 2
    padding: 1
    count_include_pad: false
  - name: fc
    op: matmul
    out_features: 4
    format: dense
"""


def test_rtl_engine_runs_padded_average_pools(tmp_path):
    """Average pools with padding and count_include_pad false (ONNX's default) on the
    accelerator RTL (Verilator): every layer bit-exact with golden, the outputs read back
    equal the model engine's, and the pools' cycles within the model's tolerance."""
    net = tmp_path / "padded_avg.yaml"
    net.write_text(PADDED_AVG_NET)
    reps, outs = {}, {}
    for engine in ("model", "rtl"):
        out = tmp_path / f"{engine}.npz"
        r = run(str(net), "--engine", engine, "--json", "--save-outputs", str(out),
                timeout=2400)
        assert r.returncode == 0, r.stderr[-3000:]
        rep = reps[engine] = json.loads(r.stdout)
        assert rep["engine"] == engine and rep["status"] == "OK" and rep["mismatches"] == 0, rep
        assert [e["count_include_pad"] for e in rep["layers"][1:3]] == [False, False]
        outs[engine] = np.load(out)["outputs"]
    assert np.array_equal(outs["model"], outs["rtl"])
    for m_, r_ in zip(reps["model"]["layers"][1:3], reps["rtl"]["layers"][1:3]):
        assert abs(r_["cycles"] - m_["cycles"]) <= 0.1 * r_["cycles"], (m_, r_)


def test_rtl_engine_refuses_layer_beyond_tile_buffers():
    """demo_net's conv1 (3x12x12, 3x3 pad 1 -> 8x12x12) on the tiny preset (cols 2,
    act_buf_depth 64) needs ceil(144 / 2) * 27 = 1944 im2col entries: refused up front in one
    line naming the parameter and the smallest power of two that fits, before any build."""
    _one_line_error(run(str(EXAMPLES / "demo_net.yaml"), "--engine", "rtl", "--preset", "tiny"),
                    f"{EXAMPLES / 'demo_net.yaml'}:8: layers[0] (conv1) needs act_buf_depth >= "
                    "2048 (1944 entries) for the rtl engine, this configuration has 64")


DIGITS = EXAMPLES / "digits"


def test_onnx_model_reports_accuracies_and_saves_outputs(tmp_path):
    """The shipped QDQ digits MLP on the model engine: accuracy, reference_accuracy (ONNX
    Runtime on the same QDQ model) and float_accuracy at top level, int8 within 1 point of
    float, no value more than 1 LSB from ONNX Runtime, outputs saved batch first."""
    out = tmp_path / "out.npz"
    r = run(str(DIGITS / "mlp_nm24_int8.onnx"), "--input", str(DIGITS / "test.npz"),
            "--labels", str(DIGITS / "test.npz"), "--json", "--save-outputs", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)
    assert rep["status"] == "OK" and rep["mismatches"] == 0 and rep["batch"] == 360
    assert rep["accuracy"] >= rep["float_accuracy"] - 0.01
    assert rep["reference"]["over_1_lsb"] == 0 and rep["reference"]["values"] == 3600
    assert abs(rep["accuracy"] - rep["reference_accuracy"]) <= 0.01
    assert [f["format"] for f in rep["formats"].values()] == ["nm", "nm", "nm"]
    assert rep["jobs"] > 1 and "columns" in rep["split"]
    saved = np.load(out)
    assert saved["outputs"].shape == (360, 10) and saved["values"].shape == (360, 10)
    labels = np.load(DIGITS / "test.npz")["labels"]
    assert np.mean(saved["values"].argmax(1) == labels) == pytest.approx(rep["accuracy"])


def test_onnx_pool_model_runs_from_the_command_line(tmp_path):
    """A QDQ CNN with MaxPool and GlobalAveragePool (quantize_static, the pools' scales kept)
    through ``sparsemac run``: report rows for the pools, bit-exact with golden, the ONNX
    Runtime agreement and the float model's accuracy (``NAME.onnx`` found next to
    ``NAME_int8.onnx``)."""
    pytest.importorskip("onnxruntime")
    from .test_onnx_pools import _pool_cnn, _quantize

    rng = np.random.default_rng(7)
    x = rng.random((40, 2, 8, 8)).astype(np.float32)
    q = _quantize(_pool_cnn(rng), x[:32], tmp_path, "pcnn", keep_pool_scales=True)
    data = tmp_path / "x.npz"
    np.savez(data, images=x, labels=rng.integers(0, 4, 40))
    r = run(str(q), "--input", str(data), "--labels", str(data), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)
    assert rep["status"] == "OK" and rep["mismatches"] == 0 and rep["batch"] == 40
    assert [e["op"] for e in rep["layers"]] == ["conv2d", "maxpool2d", "conv2d",
                                                "global_avgpool", "matmul"]
    assert rep["reference"]["predictions_agree"] >= 0.95, rep["reference"]
    assert rep["float_model"].endswith("pcnn.onnx") and rep["float_accuracy"] is not None
    r = run(str(q), "--input", str(data), "--limit", "3")
    assert r.returncode == 0 and "global_avgpool" in r.stdout and "ONNX Runtime agreement" \
        in r.stdout, r.stdout


def test_onnx_rtl_subset_is_bit_exact_with_the_model_engine(tmp_path):
    """The same model on the accelerator RTL for 16 images: every layer bit-exact with golden
    and the outputs read back from the AXI memory equal the model engine's."""
    outs = {}
    for engine in ("model", "rtl"):
        out = tmp_path / f"{engine}.npz"
        r = run(str(DIGITS / "mlp_nm24_int8.onnx"), "--input", str(DIGITS / "test.npz"),
                "--labels", str(DIGITS / "test.npz"), "--limit", "16", "--engine", engine,
                "--json", "--save-outputs", str(out), timeout=1800)
        assert r.returncode == 0, r.stderr[-3000:]
        rep = json.loads(r.stdout)
        assert rep["status"] == "OK" and rep["mismatches"] == 0 and rep["batch"] == 16
        outs[engine] = np.load(out)["outputs"]
    assert np.array_equal(outs["model"], outs["rtl"])
    assert rep["cycles"] > 0 and rep["model_cycles"] > 0
