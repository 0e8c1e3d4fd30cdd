"""AXI4 signatures and plumbing, an on-chip AXI SRAM, byte gearboxes (docs/dma.md)."""

from .axi_sram import AxiSram

__all__ = ["AxiSram"]
