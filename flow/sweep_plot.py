"""The sweep's Pareto plot: effective throughput against LUTs, with reference points.

Left: effective GMAC/s (dense-equivalent MACs per second, ``gops / 2``) against LUT, for the
points with a clock (:mod:`flow.sweep_report`: placed, OOC or labelled estimate; a point
without one is not drawn there).  Right: dense-equivalent MACs per cycle against LUT, which
needs no clock: every point with cycles.  One series and Pareto front per weight format.

On an ECP5 sweep both panels also show (`plot_points`):

* the plain dense 8x8 array as docs/reports/synth_mac_array_ecp5.md and docs/flow.md section 4
  quote the published peers (`PEER_DENSE_8X8`: 54-70 MHz at 118-138 LUT4 per MAC; the array
  alone, at its peak of 64 MACs a cycle), drawn at the middle of its ranges with bars over
  them, and this project's own MacArray 8x8 placed out of context (`OWN_MACARRAY_8X8`);
* the placed whole-accelerator board builds of the same device
  (docs/reports/board_builds.json: ``lut``, ``fmax_mhz`` and every benchmark layer's
  ``effective_gmac_s`` and ``macs_per_cycle``).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["PEER_DENSE_8X8", "OWN_MACARRAY_8X8", "BOARD_BUILDS", "reference_points",
           "board_build_points", "plot_points", "pareto_front", "pareto_plot"]

#: the published dense 8x8 arrays the MAC array is measured against (ECP5, the array alone)
PEER_DENSE_8X8 = {
    "label": "dense 8x8 array, published peers (array only, peak)",
    "macs": 64, "mhz": (54.0, 70.0), "lut_per_mac": (118, 138),
    "source": "docs/reports/synth_mac_array_ecp5.md, docs/flow.md section 4: 'published peers "
              "reach 54-70 MHz at 118-138 LUT4 per MAC'",
}
#: this project's MacArray 8x8 alone, nextpnr-ecp5 out of context (mul_pipeline 2, acc 32 bit)
OWN_MACARRAY_8X8 = {
    "label": "MacArray 8x8 of this project (array only, OOC placed, peak)",
    "macs": 64, "mhz": (201.98, 201.98), "lut_per_mac": (64, 64),
    "source": "docs/reports/synth_mac_array_ecp5.md: 4096 LUT4, 201.98 MHz",
}
#: the placed board builds' report (absent from an installed package: no board points then)
BOARD_BUILDS = Path(__file__).resolve().parents[1] / "docs" / "reports" / "board_builds.json"


def _mid(lo: float, hi: float) -> float:
    return (lo + hi) / 2


def reference_points() -> list[dict]:
    """The dense 8x8 references: ``lut`` and ``gmac_s`` at the middle of their ranges
    (``lut_range``, ``gmac_range``), ``macs_per_cycle`` their peak (every MAC every cycle)."""
    out = []
    for ref in (PEER_DENSE_8X8, OWN_MACARRAY_8X8):
        luts = tuple(ref["macs"] * x for x in ref["lut_per_mac"])
        gmac = tuple(ref["macs"] * f / 1000 for f in ref["mhz"])
        mhz, lpm = (f"{a:g}" if a == b else f"{a:g}-{b:g}" for a, b in (ref["mhz"],
                                                                          ref["lut_per_mac"]))
        out.append({"kind": "reference", "label": f"{ref['label']}: {mhz} MHz, {lpm} LUT4/MAC",
                    "format": "dense",
                    "lut": _mid(*luts), "lut_range": luts, "gmac_s": _mid(*gmac),
                    "gmac_range": gmac, "macs_per_cycle": float(ref["macs"]),
                    "clock_source": "reference", "source": ref["source"]})
    return out


def board_build_points(path: Path | None, target: str | None, device: str | None) -> list[dict]:
    """One point per benchmark layer of every placed board build on ``target`` ``device``."""
    if path is None or not Path(path).is_file():
        return []
    try:
        from .boards import BOARDS
    except ImportError:      # the board list needs amaranth-boards
        return []
    out = []
    for b in json.loads(Path(path).read_text()):
        board = BOARDS.get(b.get("board"))
        if board is None or (board.target, board.device) != (target, device) or \
                not b.get("fmax_mhz"):
            continue
        for layer in b.get("layers", []):
            if layer.get("effective_gmac_s") is None:
                continue
            out.append({"kind": "board", "format": "dense" if layer["layer"] == "dense" else
                        "sparse", "label": f"{b['name']} placed at {b['fmax_mhz']} MHz",
                        "layer": layer["layer"], "lut": b["lut"],
                        "gmac_s": layer["effective_gmac_s"],
                        "macs_per_cycle": layer.get("macs_per_cycle"),
                        "clock_source": "placed", "source": str(path)})
    return out


def plot_points(rows: list[dict], *, target: str | None = None, device: str | None = None,
                board_builds: Path | None = BOARD_BUILDS) -> list[dict]:
    """Everything the plot draws: one ``kind: sweep`` point per row with area (``gmac_s`` None
    without a clock), and on ECP5 the references and the board builds of the same device."""
    pts = []
    for r in rows:
        if r["LUT"] is None:
            continue
        mpc = r["dense_macs"] / r["cycles"] if r.get("cycles") and r.get("dense_macs") else None
        pts.append({"kind": "sweep", "label": r["config"], "format": r["format"],
                    "workload": r["workload"], "lut": r["LUT"],
                    "gmac_s": r["gops"] / 2 if r.get("gops") is not None else None,
                    "macs_per_cycle": mpc, "clock_source": r.get("clock_source")})
    if target == "ecp5":
        pts += reference_points() + board_build_points(board_builds, target, device)
    return pts


def pareto_front(xy: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats with fewer or as many LUTs and more throughput."""
    front, best = [], float("-inf")
    for x, y in sorted(xy, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def pareto_plot(rows: list[dict], path: Path, title: str, *, target: str | None = None,
                device: str | None = None, board_builds: Path | None = BOARD_BUILDS) -> list[dict]:
    """Write the two-panel plot to ``path``; returns the points drawn (`plot_points`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = plot_points(rows, target=target, device=device, board_builds=board_builds)
    sweep = [p for p in pts if p["kind"] == "sweep"]
    # one colour per series, the same in both panels
    names = [f"sweep: {f}" for f in sorted({p["format"] for p in sweep})]
    names += [p["label"] for p in pts if p["kind"] == "reference"]
    names += [f"{b} (board build)" for b in dict.fromkeys(p["label"] for p in pts
                                                          if p["kind"] == "board")]
    colour = {n: f"C{i % 10}" for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    for ax, key, ylabel in ((axes[0], "gmac_s", "effective GMAC/s (dense-equivalent)"),
                            (axes[1], "macs_per_cycle", "dense-equivalent MACs per cycle")):
        for fmt in sorted({p["format"] for p in sweep}):
            xy = [(p["lut"], p[key]) for p in sweep if p["format"] == fmt and p[key] is not None]
            if not xy:
                continue
            c = colour[f"sweep: {fmt}"]
            ax.plot(*zip(*xy), "o", alpha=0.55, color=c, label=f"sweep: {fmt}")
            ax.step(*zip(*pareto_front(xy)), where="post", color=c)
        for p in pts:
            if p["kind"] == "reference" and p[key] is not None:
                yerr = None
                if key == "gmac_s":
                    yerr = [[p["gmac_s"] - p["gmac_range"][0]],
                            [p["gmac_range"][1] - p["gmac_s"]]]
                xerr = [[p["lut"] - p["lut_range"][0]], [p["lut_range"][1] - p["lut"]]]
                ax.errorbar([p["lut"]], [p[key]], xerr=xerr, yerr=yerr, fmt="*", ms=13,
                            capsize=3, color=colour[p["label"]], label=p["label"])
        boards = [p for p in pts if p["kind"] == "board" and p[key] is not None]
        for name in dict.fromkeys(p["label"] for p in boards):
            bp = [p for p in boards if p["label"] == name]
            label = f"{name} (board build)"
            ax.plot([p["lut"] for p in bp], [p[key] for p in bp], "D", ms=8, mfc="none",
                    mew=2, color=colour[label], label=label)
            for p in bp:
                ax.annotate(p["layer"], (p["lut"], p[key]), textcoords="offset points",
                            xytext=(7, -3), fontsize=8)
        if key == "gmac_s" and sweep and all(p["gmac_s"] is None for p in sweep):
            ax.text(0.5, 0.5, "no sweep point has a clock it reaches\n(clock source: none): "
                    "see MACs per cycle", transform=ax.transAxes, ha="center", va="center",
                    fontsize=9, color="0.35")
        ax.set_xlabel("LUT4 (synthesized)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()
    h0, l0 = axes[0].get_legend_handles_labels()
    for h, lab in zip(h0, l0):
        if lab not in labels:
            handles.append(h)
            labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    dev = f" ({target} {device})" if target else ""
    fig.suptitle(f"sweep {title}{dev}: effective throughput against area (Pareto fronts)")
    fig.tight_layout(rect=(0, 0.04 + 0.035 * ((len(labels) + 1) // 2), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return pts
