"""Performance limits (docs/spec.md section 6): hand-computed layer, loop-counted MACs."""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparsemac.golden import conv_layer_stats, layer_stats, pack_weights, prune, roofline_cycles
from sparsemac.golden.perf import effectual_macs
from sparsemac.hw.config import AcceleratorConfig

from .hyp import hsettings
from .util import rand_int8

CFG = SimpleNamespace(rows=2, cols=2, tiles=1, axi_data_width=64)


def test_layer_stats_hand():
    W = np.array([[1, 0, 2, 0], [0, 0, 0, 3]], dtype=np.int8)
    X = np.array([[1, 0, 1], [5, 5, 5], [0, 0, 0], [1, 1, 0]], dtype=np.int8)
    s = layer_stats(W, X, "bitmap", CFG, group_size=8)
    assert (s.m, s.k, s.n, s.pes, s.axi_bytes) == (2, 4, 3, 4, 8)
    assert (s.dense_macs, s.weight_effectual_macs, s.effectual_macs) == (24, 9, 4)
    # bitmap image: header 32 + row_ptr 12 -> 64, masks 2 -> 96, values 3 -> 128
    assert (s.weight_bytes, s.act_bytes, s.param_bytes) == (128, 12, 8 + 10)
    assert (s.bytes_read, s.bytes_written) == (158, 6)
    assert (s.compute_cycles, s.weight_compute_cycles, s.dense_compute_cycles) == (1, 3, 6)
    assert (s.read_cycles, s.write_cycles, s.memory_cycles) == (20, 1, 20)
    assert (s.roofline_cycles, s.weight_roofline_cycles) == (20, 20)
    assert s.dense_roofline_cycles == 12  # dense image 64 B: ceil((64 + 12 + 18) / 8)
    assert s.bound == "memory" and s.ideal_speedup == pytest.approx(0.6)
    assert s.efficiency(40) == pytest.approx(0.5)
    t = layer_stats(W, X, "dense", CFG, bias=False, requant=False, lut=True)
    assert (t.weight_bytes, t.param_bytes, t.bytes_written, t.write_cycles) == (64, 256, 24, 3)
    assert t.as_dict()["bound"] == "memory"


def test_compute_bound_and_roofline_helper():
    cfg = SimpleNamespace(rows=1, cols=1, tiles=1, axi_data_width=256)
    W = np.ones((16, 16), np.int8)
    X = np.ones((16, 16), np.int8)
    s = layer_stats(W, X, "dense", cfg, bias=False, requant=True)
    assert s.compute_cycles == 4096 and s.bound == "compute" and s.roofline_cycles == 4096
    assert roofline_cycles(4096, 100, 10, cfg) == 4096
    assert roofline_cycles(10, 1000, 33, cfg) == 32  # ceil(1000 / 32)
    assert roofline_cycles(10, 10, 330, cfg) == 11   # writes overlap reads


@hsettings(80)
@given(m=st.integers(1, 8), k=st.integers(1, 20), n=st.integers(1, 8),
       seed=st.integers(0, 2**32 - 1))
def test_effectual_macs_against_loop(m, k, n, seed):
    rng = np.random.default_rng(seed)
    W, X = rand_int8(rng, (m, k), 0.4, zero_rows=True), rand_int8(rng, (k, n), 0.5)
    eff = sum(1 for i in range(m) for j in range(k) for c in range(n)
              if W[i, j] != 0 and X[j, c] != 0)
    weff = sum(1 for i in range(m) for j in range(k) if W[i, j] != 0) * n
    assert effectual_macs(W, X) == (m * k * n, weff, eff)


@pytest.mark.parametrize("fmt, kw", [("dense", {}), ("bitmap", {}), ("block", {}),
                                     ("nm", {"nm": (2, 4)})])
def test_layer_stats_formats(fmt, kw, rng, seed):
    cfg = AcceleratorConfig()
    W = rand_int8(rng, (24, 40))
    W = prune(W, "nm", nm=(2, 4))[0] if fmt == "nm" else prune(W, "unstructured",
                                                               density=0.3)[0]
    X = rand_int8(rng, (40, 9), 0.6)
    s = layer_stats(W, X, fmt, cfg, **kw)
    p = pack_weights(W, fmt, **kw)
    assert s.weight_bytes == p.nbytes, f"seed={seed}"
    assert s.pes == cfg.rows * cfg.cols * cfg.tiles and s.axi_bytes == cfg.axi_data_width // 8
    assert s.effectual_macs <= s.weight_effectual_macs <= s.dense_macs
    assert s.roofline_cycles >= max(s.compute_cycles, s.memory_cycles)
    assert s.roofline_cycles <= s.weight_roofline_cycles
    assert layer_stats(p, X, "ignored", cfg, **kw) == s


def test_conv_layer_stats_excludes_padding(rng, seed):
    x = rand_int8(rng, (1, 3, 5, 6), 0.5)
    w = rand_int8(rng, (4, 3, 3, 3), 0.5)
    s = conv_layer_stats(x, w, "bitmap", CFG, stride=(1, 2), padding=1, dilation=1)
    eff = 0
    oh, ow = 5, 3
    for o in range(4):
        for i in range(oh):
            for j in range(ow):
                for c in range(3):
                    for r in range(3):
                        for t in range(3):
                            ih, iw = i - 1 + r, j * 2 - 1 + t
                            if 0 <= ih < 5 and 0 <= iw < 6 and x[0, c, ih, iw] and w[o, c, r, t]:
                                eff += 1
    assert s.effectual_macs == eff, f"expected {eff}, actual {s.effectual_macs}, seed={seed}"
    assert s.act_bytes == x.size and (s.m, s.k, s.n) == (4, 27, oh * ow)
    assert s.dense_macs == 4 * 27 * oh * ow


def test_cfg_errors():
    W, X = np.ones((2, 2), np.int8), np.ones((2, 2), np.int8)
    with pytest.raises(ValueError, match="cfg.tiles must be a positive int, not None"):
        layer_stats(W, X, "dense", SimpleNamespace(rows=1, cols=1, axi_data_width=32))
    with pytest.raises(ValueError, match="cfg.axi_data_width must be a multiple of 8, not 12"):
        layer_stats(W, X, "dense", SimpleNamespace(rows=1, cols=1, tiles=1, axi_data_width=12))
    with pytest.raises(ValueError, match="matching K"):
        layer_stats(W, np.ones((3, 2), np.int8), "dense", CFG)
    with pytest.raises(ValueError, match="cycles must be a positive int"):
        layer_stats(W, X, "dense", CFG).efficiency(0)
