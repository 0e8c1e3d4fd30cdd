"""The register map definition (hw/top/regmap.py): consistency, generated docs and C header."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.top.regmap import ErrorCode, main, registers, regmap_c_header, regmap_markdown

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ["tiny", "default", "large"]


@pytest.mark.parametrize("preset", PRESETS)
def test_offsets_and_fields_are_consistent(preset):
    cfg = AcceleratorConfig.preset(preset)
    regs = registers(cfg)
    offsets = [r.offset for r in regs]
    assert len(set(offsets)) == len(offsets), "two registers share an offset"
    assert all(o % 4 == 0 and o < 0x100 for o in offsets)
    assert len({r.name for r in regs}) == len(regs)
    for r in regs:
        used = 0
        for f in r.fields:
            assert 0 <= f.lsb and f.lsb + f.width <= 32, (r.name, f.name)
            assert not used & f.mask, f"{r.name}.{f.name} overlaps another field"
            used |= f.mask
            assert 0 <= f.value < 1 << f.width, f"{r.name}.{f.name} = {f.value} does not fit"
        if r.kind in ("cnt_lo", "cnt_hi"):
            pair = [x for x in regs if x.counter == r.counter]
            assert sorted(x.offset for x in pair)[1] - sorted(x.offset for x in pair)[0] == 4
    kinds = {r.kind for r in regs}
    assert kinds == {"const", "ro", "rw", "pulse", "w1c", "cnt_lo", "cnt_hi"}


def test_docs_registers_md_is_generated_from_the_map():
    text = (ROOT / "docs" / "registers.md").read_text()
    assert text == regmap_markdown(AcceleratorConfig.preset("default")), (
        "docs/registers.md is stale: run "
        "`python -m sparsemac.hw.top.regmap --md -o docs/registers.md`")


def test_markdown_and_header_list_everything():
    cfg = AcceleratorConfig()
    md, h = regmap_markdown(cfg), regmap_c_header(cfg)
    for r in registers(cfg):
        assert f"| {r.name} |" in md
        assert f"#define SPARSEMAC_{r.name}_OFFSET 0x{r.offset:03X}u" in h
    for c in ErrorCode:
        assert f"| {int(c)} | {c.name} |" in md
        assert f"SPARSEMAC_ERR_{c.name} = {int(c)}," in h


def test_c_header_compiles(tmp_path):
    # a C compiler is a project requirement (Verilator builds need one)
    hdr = tmp_path / "sparsemac_regs.h"
    hdr.write_text(regmap_c_header(AcceleratorConfig()))
    src = tmp_path / "t.c"
    src.write_text('#include "sparsemac_regs.h"\n'
                   "_Static_assert(SPARSEMAC_STATUS_OFFSET == 0x24u, \"status\");\n"
                   "_Static_assert(SPARSEMAC_ERR_WATCHDOG == 34, \"err\");\n"
                   "int main(void) { return SPARSEMAC_ID_VALUE == 0x434D5053u ? 0 : 1; }\n")
    subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", "-o", str(tmp_path / "t"), str(src)],
                   check=True, cwd=tmp_path)
    assert subprocess.run([str(tmp_path / "t")]).returncode == 0


def test_cli(capsys, tmp_path):
    assert main(["--c"]) == 0
    assert "#define SPARSEMAC_ID_OFFSET" in capsys.readouterr().out
    out = tmp_path / "r.md"
    assert main(["--md", "-o", str(out)]) == 0
    assert out.read_text().startswith("# sparsemac control registers")
