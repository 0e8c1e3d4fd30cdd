"""The compute tile: ring node, image checker, zero-skipping lane decoders, MAC array
(docs/tile.md)."""

from .tile import Tile

__all__ = ["Tile"]
