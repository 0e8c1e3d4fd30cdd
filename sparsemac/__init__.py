"""sparsemac: generator and verification of a zero-skipping sparse neural-network accelerator.

One import root for every layer, each depending only on the ones before it:

``sparsemac.golden``
    NumPy bit-exact reference and the contract: formats, ops, descriptors, rules, cycle model.
``sparsemac.host``
    Host compiler, memory placement, network schema and the functional model engine.
``sparsemac.hw``
    The Amaranth generator: one ``wiring.Component`` per file.
``sparsemac.sim``
    cocotb runner, verification IP, drivers and the testbenches the product runs.
``sparsemac.flow``
    Verilog generation, lint, synthesis, board builds and parameter sweeps.
``sparsemac.cli``
    The ``sparsemac`` command and the demo.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("sparsemac")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from an unbuilt source tree
    __version__ = "0+unknown"

__all__ = ["__version__"]
