"""On-chip ring interconnect: deadlock-free routers with unicast and multicast (docs/ring.md)."""

from .ring import Ring
from .ring_router import RingRouter

__all__ = ["Ring", "RingRouter"]
