"""The memory hub: descriptor sequencer and checks, DMA reader/writer, result writer (docs/dma.md,
docs/accelerator.md)."""

from .sequencer import Sequencer

__all__ = ["Sequencer"]
