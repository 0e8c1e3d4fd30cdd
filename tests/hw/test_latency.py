"""Every block states its latency one way: a property named ``latency``.

A block whose output follows its input by a fixed number of cycles exposes it as ``latency``
(documented in its docstring), and tests and the cycle model read that property.  No other
``*_latency`` member exists, except the output pipeline's ``pwl_latency`` (its latency in the
other of its two modes) and the ring's ``min_latency(src, dst)`` (it depends on the path: hops
times ``RingRouter.latency``).
"""

import importlib
import inspect
import pkgutil

import sparsemac.hw as hw

ALLOWED = {("OutputPipeline", "pwl_latency"), ("Ring", "min_latency")}


def _classes():
    for info in pkgutil.walk_packages(hw.__path__, "sparsemac.hw."):
        mod = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == mod.__name__:
                yield name, cls


def test_latency_is_one_property_name():
    bad = [f"{name}.{attr}" for name, cls in _classes() for attr, v in vars(cls).items()
           if attr.endswith("_latency") and (name, attr) not in ALLOWED]
    assert not bad, f"use a property named `latency`: {bad}"


def test_blocks_with_a_latency_document_it():
    seen = []
    for name, cls in _classes():
        prop = vars(cls).get("latency")
        if prop is None:
            continue
        assert isinstance(prop, (property, int)), f"{name}.latency must be a property or int"
        documented = (isinstance(prop, property) and prop.__doc__) or \
            "latency" in (inspect.getsource(cls)).lower()
        assert documented, f"{name}.latency is not documented"
        seen.append(name)
    # the pipelined blocks the cycle model composes
    assert {"ProcessingElement", "MacArray", "Requantizer", "OutputPipeline", "Tile",
            "AxiSram", "ActivationLut", "RingRouter"} <= set(seen), seen
