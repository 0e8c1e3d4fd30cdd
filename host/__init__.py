"""Host side of sparsemac: layer lists -> descriptors + memory image, and a functional model.

`network` (the layer-list schema), `compiler` (pruning, quantization, packing, placement,
golden expectations), `placement` (buffers in one memory window), `model_engine` (runs a
memory image's descriptor table like the accelerator), `cycles` (cycle estimate per layer).
See docs/host.md.
"""

from .compiler import CompiledLayer, CompiledNetwork, compile_network
from .cycles import CYCLE_SOURCE, layer_cycles
from .model_engine import LayerRun, ModelRun, run_model
from .network import LayerSpec, Network, NetworkError, load_network, network_from_dict

__all__ = ["load_network", "network_from_dict", "Network", "LayerSpec", "NetworkError",
           "compile_network", "CompiledNetwork", "CompiledLayer", "run_model", "ModelRun",
           "LayerRun", "layer_cycles", "CYCLE_SOURCE"]
