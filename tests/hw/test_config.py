"""AcceleratorConfig: validation messages, derived widths, YAML round trip, presets, overrides."""

import dataclasses
import re

import pytest
from sparsemac.hw.config import _INT_RANGES as RANGES
from sparsemac.hw.config import FORMATS, AcceleratorConfig, ConfigError, load_config


@pytest.mark.parametrize("name", sorted(RANGES))
def test_every_integer_parameter_names_itself_and_its_range(name):
    lo, hi, pow2 = RANGES[name]
    kind = "a power of two between" if pow2 else "between"
    for bad in (hi + 1, lo - 1):
        msg = f"{name} must be {kind} {lo} and {hi}, not {bad!r}"
        with pytest.raises(ValueError, match=re.escape(msg)):
            AcceleratorConfig(**{name: bad})
    with pytest.raises(TypeError, match=re.escape(f"{name} must be an integer, not '4'")):
        AcceleratorConfig(**{name: "4"})
    with pytest.raises(TypeError, match=re.escape(f"{name} must be an integer, not True")):
        AcceleratorConfig(**{name: True})


@pytest.mark.parametrize("name", sorted(n for n, (lo, hi, p) in RANGES.items()
                                         if p and 3 * lo <= hi))
def test_power_of_two_parameters(name):
    lo, hi, _ = RANGES[name]
    msg = f"{name} must be a power of two between {lo} and {hi}, not {3 * lo!r}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        AcceleratorConfig(**{name: 3 * lo})


def test_formats_errors():
    with pytest.raises(ValueError,
                       match=r"formats must only contain dense, bitmap, block, nm, not 'csr'"):
        AcceleratorConfig(formats=("dense", "csr"))
    with pytest.raises(ValueError,
                       match=r"formats must include 'dense' \(the baseline\), not \['nm'\]"):
        AcceleratorConfig(formats=("nm",))
    with pytest.raises(ValueError, match=r"formats must not repeat a format"):
        AcceleratorConfig(formats=("dense", "nm", "nm"))
    with pytest.raises(TypeError, match=r"formats must be a list of format names, not 'dense'"):
        AcceleratorConfig(formats="dense")
    cfg = AcceleratorConfig(formats=["nm", "dense"])
    assert cfg.formats == ("dense", "nm")


def test_relations():
    with pytest.raises(ValueError, match=r"out_lanes must be between 1 and cols \(4\), not 8"):
        AcceleratorConfig(cols=4, out_lanes=8)
    with pytest.raises(ValueError, match=r"out_lanes must divide cols \(6\), not 4"):
        AcceleratorConfig(cols=6, out_lanes=4)
    with pytest.raises(ValueError, match=r"ring_payload_width must be at least axi_data_width "
                                         r"\(128\), not 64"):
        AcceleratorConfig(axi_data_width=128, ring_payload_width=64)
    with pytest.raises(TypeError, match=r"lut_enabled must be a bool, not 1"):
        AcceleratorConfig(lut_enabled=1)


def test_derived_widths():
    cfg = AcceleratorConfig(rows=8, cols=4, tiles=3, axi_data_width=128, ring_payload_width=128,
                            group_size=32, nm_max_m=16, weight_buf_depth=1024)
    assert cfg.macs == 96 and cfg.macs_per_tile == 32
    assert cfg.axi_bytes == 16
    assert cfg.tile_id_width == 2  # nodes 0..3 (hub + 3 tiles)
    assert cfg.group_mask_bytes == 4
    assert cfg.nm_index_width == 4
    assert cfg.act_row_width == 32
    assert cfg.weight_addr_width == 10
    assert AcceleratorConfig(tiles=1).tile_id_width == 1
    assert AcceleratorConfig(tiles=8).tile_id_width == 4


def test_yaml_round_trip_and_frozen(tmp_path):
    cfg = AcceleratorConfig(rows=3, cols=5, out_lanes=5, formats=("dense", "nm"), name="x")
    p = tmp_path / "x.yaml"
    p.write_text(cfg.to_yaml())
    back = AcceleratorConfig.from_yaml(p)
    assert back == cfg and back.formats == ("dense", "nm")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rows = 4  # type: ignore[misc]


@pytest.mark.parametrize("name", ["tiny", "default", "large"])
def test_presets_load(name):
    cfg = AcceleratorConfig.preset(name)
    assert cfg.name == name
    assert set(cfg.formats) <= set(FORMATS)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError,
                       match=r"preset must be one of default, large, tiny, not 'huge'"):
        AcceleratorConfig.preset("huge")
    with pytest.raises(ConfigError, match=r"cannot read config file"):
        AcceleratorConfig.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rows: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: not valid YAML"):
        AcceleratorConfig.from_yaml(bad)
    unk = tmp_path / "unk.yaml"
    unk.write_text("rowz: 4\n")
    with pytest.raises(ConfigError,
                       match=r"unk.yaml: unknown parameter 'rowz'; known parameters: "):
        AcceleratorConfig.from_yaml(unk)
    notmap = tmp_path / "list.yaml"
    notmap.write_text("- 1\n")
    with pytest.raises(ConfigError, match=r"a config must be a mapping of parameters"):
        AcceleratorConfig.from_yaml(notmap)


def test_overrides():
    cfg = load_config(None, ["rows=8", "formats=[dense, nm]", "lut_enabled=false"])
    assert cfg.rows == 8 and cfg.formats == ("dense", "nm") and cfg.lut_enabled is False
    with pytest.raises(ConfigError, match=r"--set must be key=value, not 'rows'"):
        load_config(None, ["rows"])
    with pytest.raises(ConfigError, match=r"--set: unknown parameter 'colz'"):
        load_config(None, ["colz=3"])
    with pytest.raises(ValueError, match=r"rows must be between 1 and 64, not 65"):
        load_config(None, ["rows=65"])
