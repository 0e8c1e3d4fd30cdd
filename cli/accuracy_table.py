"""Accuracy of the shipped digits models per weight format (docs/reports/accuracy.md).

For each model and format: the float model and the QDQ model on ONNX Runtime, the QDQ model on
sparsemac's model engine (bit-exact with golden), their agreement in output LSBs, weight
density, the model engine's cycles for the whole test set and the speedup over the dense
variant, and the first ``rtl_images`` test images on the accelerator RTL (outputs compared with
the model engine's, cycles, wall time per image).  Used by ``bench/accuracy_report.py`` (the
report) and ``make demo`` (one model).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["DIGITS", "FORMATS", "measure", "markdown_table"]

DIGITS = Path(__file__).resolve().parent.parent / "examples" / "digits"
if not DIGITS.is_dir():  # installed wheel: the examples are in the checkout only
    DIGITS = Path.cwd() / "examples" / "digits"
#: variant suffix -> what it is
FORMATS = {"dense": "dense", "nm24": "2:4", "nm18": "1:8", "block50": "block 8x8 50 %",
           "bitmap75": "bitmap 75 % zeros"}


def measure(model: str, variant: str, cfg, *, rtl_images: int = 0, folder: Path = DIGITS,
            log=print) -> dict:
    """One row of the table (see the module docstring)."""
    from sparsemac.host.onnx_import import load_onnx
    from sparsemac.host.onnx_reference import compare, ort_run
    from sparsemac.host.run import accuracy, run

    t = np.load(folder / "test.npz")
    x, y = t["images"], t["labels"]
    q = folder / f"{model}_{variant}_int8.onnx"
    m = load_onnx(q, cfg=cfg)
    xi = x.reshape(len(x), -1) if m.input_layout == "matrix" else x
    t0 = time.monotonic()
    rr = run(m.with_input(xi), cfg, labels=y)
    model_s = time.monotonic() - t0
    ref = ort_run(q, xi)
    flt = ort_run(folder / f"{model}_{variant}.onnx", xi)
    agree = compare(rr.values, ref, rr.report["output_scale"])
    weighted = [sp for sp in m.network.layers if sp.has_weights]    # pools, adds: no weights
    w = [np.count_nonzero(sp.weights) for sp in weighted]
    n = [sp.weights.size for sp in weighted]
    row = {"model": model, "variant": variant, "format": FORMATS.get(variant, variant),
           "formats": {k: v["format"] + (f" {v['nm']}" if "nm" in v else "")
                       for k, v in m.formats.items()},
           "density": sum(w) / sum(n), "images": int(len(y)),
           "float_accuracy": accuracy(flt, y), "reference_accuracy": accuracy(ref, y),
           "accuracy": rr.report["accuracy"], "max_lsb": agree["max_lsb"],
           "over_1_lsb": agree["over_1_lsb"], "exact_fraction": agree["exact"] / agree["values"],
           "model_cycles": rr.report["cycles"], "roofline_cycles": rr.report["roofline_cycles"],
           "model_seconds": round(model_s, 2), "mismatches": rr.report["mismatches"]}
    log(f"[accuracy] {model} {variant}: float {row['float_accuracy']:.4f} int8 "
        f"{row['accuracy']:.4f} ORT {row['reference_accuracy']:.4f}, max {row['max_lsb']} LSB")
    if rtl_images:
        from sparsemac.sim.rtl_engine import run_rtl

        sub = xi[:rtl_images]
        t0 = time.monotonic()
        rtl = run_rtl(m.with_input(sub), cfg)
        wall = time.monotonic() - t0
        mod = run(m.with_input(sub), cfg)
        row.update(rtl_images=int(len(sub)),
                   rtl_bit_exact=bool(rtl.report["mismatches"] == 0
                                      and rtl.report["status"] == "OK"
                                      and np.array_equal(rtl.outputs, mod.outputs)),
                   rtl_cycles=rtl.report["cycles"], rtl_model_cycles=mod.report["cycles"],
                   rtl_seconds_per_image=round(wall / len(sub), 2))
        log(f"[accuracy] {model} {variant}: RTL on {len(sub)} images "
            f"{'bit-exact' if row['rtl_bit_exact'] else 'MISMATCH'}, {rtl.report['cycles']} "
            f"cycles, {wall / len(sub):.2f} s per image")
    return row


def markdown_table(rows: list[dict]) -> list[str]:
    """Rows of `measure` as a markdown table; speedup over the dense variant of each model."""
    dense = {r["model"]: r["model_cycles"] for r in rows if r["variant"] == "dense"}
    rtl = any("rtl_images" in r for r in rows)
    hdr = ("| model | format | layers | density | float % | int8 sparsemac % | int8 ONNX Runtime"
           " % | max LSB vs ORT | model cycles | speedup vs dense |"
           + (" RTL subset | RTL cycles / model cycles | RTL s / image |" if rtl else ""))
    out = [hdr, "|" + "---|" * (hdr.count("|") - 1)]
    for r in rows:
        sp = dense.get(r["model"])
        speed = f"{sp / r['model_cycles']:.2f}x" if sp else "-"
        line = (f"| {r['model']} | {r['format']} | {', '.join(r['formats'].values())} | "
                f"{r['density']:.2f} | {100 * r['float_accuracy']:.2f} | "
                f"{100 * r['accuracy']:.2f} | {100 * r['reference_accuracy']:.2f} | "
                f"{r['max_lsb']} | {r['model_cycles']:,} | {speed} |")
        if rtl:
            if "rtl_images" in r:
                line += (f" {r['rtl_images']} images, "
                         f"{'bit-exact' if r['rtl_bit_exact'] else '**mismatch**'} | "
                         f"{r['rtl_cycles']:,} / {r['rtl_model_cycles']:,} | "
                         f"{r['rtl_seconds_per_image']} |")
            else:
                line += " - | - | - |"
        out.append(line)
    return out
