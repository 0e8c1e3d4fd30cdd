"""``sparsemac generate``: Verilog, resolved config, register map (when one exists), manifest.

The Verilog of a top is a pure function of (top name, config, generator versions): the same
inputs give the same bytes (:func:`hw.verilog.generate_verilog`), and the manifest records the
versions and the SHA-256 of every file written, so an artefact can be traced back to its inputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from sparsemac.hw.config import AcceleratorConfig
from sparsemac.hw.tops import default_top, make_top, top_module_name
from sparsemac.hw.verilog import generate_verilog

from .versions import generator_versions

__all__ = ["GeneratedTop", "elaborate_verilog", "generate", "register_map_source", "sha256"]

# The register map source (added with the accelerator top): ``hw.regmap.registers(cfg)``, with
# ``regmap_markdown(cfg)`` / ``regmap_c_header(cfg)`` when present.  Nothing is written while
# it does not exist.
REGMAP_MODULE = "sparsemac.hw.top.regmap"


def sha256(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class GeneratedTop:
    """Verilog text of one top for one config."""

    top: str
    module: str
    verilog: str

    @property
    def sha256(self) -> str:
        return sha256(self.verilog)


def elaborate_verilog(cfg: AcceleratorConfig, top: str | None = None) -> GeneratedTop:
    """Elaborate top ``top`` (default: :func:`hw.tops.default_top`) and convert it to Verilog."""
    top = top or default_top(cfg)
    module = top_module_name(top)
    text = generate_verilog(make_top(top, cfg), name=module)
    return GeneratedTop(top=top, module=module, verilog=text)


def register_map_source():
    """The module providing ``registers(cfg)``, or ``None`` while no register map exists."""
    try:
        if importlib.util.find_spec(REGMAP_MODULE) is None:
            return None
        mod = importlib.import_module(REGMAP_MODULE)
    except Exception:
        return None
    return mod if callable(getattr(mod, "registers", None)) else None


def generate(cfg: AcceleratorConfig, out_dir: str | Path, top: str | None = None) -> dict:
    """Write ``<module>.v``, ``config.yaml``, ``regmap.json`` (if a source exists) and
    ``manifest.json`` into ``out_dir``; return the manifest.

    Every file is deterministic (no time stamps), so regenerating an unchanged config rewrites
    the same bytes.
    """
    gen = elaborate_verilog(cfg, top)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}

    def write(name: str, text: str) -> None:
        (out / name).write_text(text)
        files[name] = sha256(text)

    write(f"{gen.module}.v", gen.verilog)
    write("config.yaml", cfg.to_yaml())
    src = register_map_source()
    if src is not None:
        regs = [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r
                for r in src.registers(cfg)]
        write("regmap.json", json.dumps(regs, indent=2, sort_keys=True, default=str) + "\n")
        if callable(getattr(src, "regmap_markdown", None)):
            write("regmap.md", src.regmap_markdown(cfg))
        if callable(getattr(src, "regmap_c_header", None)):
            write("regmap.h", src.regmap_c_header(cfg))
    manifest = {
        "top": gen.top,
        "module": gen.module,
        "config": cfg.name,
        "verilog": f"{gen.module}.v",
        "verilog_sha256": gen.sha256,
        "register_map": (src.__name__ if src is not None else None),
        "files": files,
        "versions": generator_versions(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
