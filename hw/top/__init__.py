"""The accelerator top: tiles on the ring, the memory hub, AXI4-Lite registers
(docs/accelerator.md)."""

from .accelerator import Accelerator

__all__ = ["Accelerator"]
