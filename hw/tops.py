"""Registry of the generatable tops: a name -> ``factory(cfg) -> wiring.Component``.

The flow (``sparsemac generate / synth / build / sweep``) elaborates one of these.  The block
modules are imported lazily, inside each factory, so a block that does not exist yet (or fails
to import) only makes its top unavailable: :func:`available_tops` lists what can be built now and
:func:`default_top` picks the most complete one (accelerator > tile > mac_array > pe).

Every factory takes an :class:`~hw.config.AcceleratorConfig` and passes the parameters the block
needs, keyword-only, so a top is fully determined by its config.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable

from sparsemac.hw.config import AcceleratorConfig

__all__ = ["TOPS", "TOP_MODULES", "DEFAULT_ORDER", "available_tops", "default_top", "make_top",
           "top_module_name"]


def _kwargs_for(cls, cfg: AcceleratorConfig) -> dict:
    """Keyword arguments of ``cls.__init__`` that the config can fill (by parameter name).

    ``cfg`` passes itself to a ``cfg``/``config`` parameter; every other keyword-only or
    positional-or-keyword parameter named like a config field gets that field's value.
    """
    sig = inspect.signature(cls.__init__)
    kw = {}
    for name, p in sig.parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in ("cfg", "config"):
            kw[name] = cfg
        elif hasattr(cfg, name) and not isinstance(getattr(type(cfg), name, None), property):
            kw[name] = getattr(cfg, name)
    return kw


def _build(module: str, cls_name: str, extra: Callable[[AcceleratorConfig], dict] | None = None
           ) -> Callable[[AcceleratorConfig], object]:
    def factory(cfg: AcceleratorConfig):
        cls = getattr(importlib.import_module(module, __package__), cls_name)
        return cls(**(extra(cfg) if extra else _kwargs_for(cls, cfg)))

    factory.__name__ = f"make_{cls_name}"
    factory.__doc__ = f"``{module}.{cls_name}`` built from an AcceleratorConfig."
    return factory


# name -> (module, class)
TOP_MODULES: dict[str, tuple[str, str]] = {
    "pe": (".tile.pe", "ProcessingElement"),
    "mac_array": (".tile.mac_array", "MacArray"),
    "output_pipeline": (".post.output_pipeline", "OutputPipeline"),
    "ring": (".ring", "Ring"),
    "tile": (".tile.tile", "Tile"),
    "accelerator": (".top.accelerator", "Accelerator"),
    "desc_checker": (".hub.desc_checker", "DescChecker"),
    "sequencer": (".hub.sequencer", "Sequencer"),
    "image_checker": (".tile.image_checker", "ImageChecker"),
    "header_checker": (".tile.header_checker", "HeaderChecker"),
    "result_writer": (".hub.result_writer", "ResultWriter"),
    "beat_writer": (".hub.beat_writer", "BeatWriter"),
}

#: name -> factory(cfg) -> wiring.Component
TOPS: dict[str, Callable[[AcceleratorConfig], object]] = {
    name: _build(mod, cls) for name, (mod, cls) in TOP_MODULES.items()
}
# Explicit mappings from the config to each block's constructor (from their signatures); a
# block added later starts with the name-matching default of _kwargs_for.
TOPS["pe"] = _build(".tile.pe", "ProcessingElement", lambda cfg: {
    "data_width": cfg.data_width, "acc_width": cfg.acc_width, "mul_pipeline": cfg.mul_pipeline})
TOPS["mac_array"] = _build(".tile.mac_array", "MacArray", lambda cfg: {
    "rows": cfg.rows, "cols": cfg.cols, "acc_width": cfg.acc_width,
    "mul_pipeline": cfg.mul_pipeline})
TOPS["output_pipeline"] = _build(".post.output_pipeline", "OutputPipeline", lambda cfg: {
    "cfg": cfg})  # lanes = out_lanes, acc_width, max_channels = rows
TOPS["tile"] = _build(".tile.tile", "Tile", lambda cfg: {"config": cfg})
TOPS["accelerator"] = _build(".top.accelerator", "Accelerator", lambda cfg: {"config": cfg})
# the hub's control path alone (descriptor checks, header checks, FSM): its timing and area
TOPS["desc_checker"] = _build(".hub.desc_checker", "DescChecker", lambda cfg: {"cfg": cfg})
TOPS["sequencer"] = _build(".hub.sequencer", "Sequencer", lambda cfg: {"cfg": cfg})
TOPS["image_checker"] = _build(".tile.image_checker", "ImageChecker", lambda cfg: {"cfg": cfg})
TOPS["header_checker"] = _build(".tile.header_checker", "HeaderChecker", lambda cfg: {"cfg": cfg})
TOPS["result_writer"] = _build(".hub.result_writer", "ResultWriter", lambda cfg: {"cfg": cfg})
TOPS["beat_writer"] = _build(".hub.beat_writer", "BeatWriter", lambda cfg: {
    "data_width": cfg.axi_data_width, "addr_width": cfg.axi_addr_width,
    "id_width": cfg.axi_id_width, "max_outstanding": cfg.max_outstanding,
    "watchdog_cycles": cfg.watchdog_cycles,
})
TOPS["ring"] = _build(".ring", "Ring", lambda cfg: {
    "nodes": cfg.tiles + 1,  # the memory hub plus one router per tile
    "payload_width": cfg.ring_payload_width,
    "fifo_depth": cfg.ring_fifo_depth,
    "inject_yield": cfg.ring_inject_yield,
})

#: Most complete first: what :func:`default_top` prefers.
DEFAULT_ORDER = ("accelerator", "tile", "mac_array", "pe")


def _importable(name: str) -> bool:
    module, cls = TOP_MODULES[name]
    try:
        if importlib.util.find_spec(module, __package__) is None:
            return False
        return hasattr(importlib.import_module(module, __package__), cls)
    except Exception:  # a half-written block: not available yet
        return False


def available_tops() -> list[str]:
    """Names of the tops whose block module exists and imports, in registry order."""
    return [name for name in TOPS if _importable(name)]


def default_top(cfg: AcceleratorConfig | None = None) -> str:
    """The most complete available top (accelerator > tile > mac_array > pe)."""
    avail = set(available_tops())
    for name in DEFAULT_ORDER:
        if name in avail:
            return name
    raise RuntimeError("no generatable top is available (hw/pe.py is missing?)")


def top_module_name(name: str) -> str:
    """Verilog module name of a top: ``sparsemac_<name>``."""
    return f"sparsemac_{name}"


def make_top(name: str, cfg: AcceleratorConfig):
    """Elaboratable of top ``name`` for ``cfg``.

    Raises
    ------
    ValueError
        ``name`` is not a registered top, or its block does not exist yet.
    """
    if name not in TOPS:
        raise ValueError(f"top must be one of {', '.join(TOPS)}, not {name!r}")
    if not _importable(name):
        raise ValueError(f"top must be one of the available tops "
                         f"({', '.join(available_tops())}), not {name!r} (its block "
                         f"{TOP_MODULES[name][0]} does not exist yet)")
    return TOPS[name](cfg)
