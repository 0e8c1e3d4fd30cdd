"""Flit vocabulary of the ring interconnect (docs/ring.md).

A ring flit is one ``data.StructLayout`` built for a ring size and payload width; links between
routers carry one flit per cycle plus a virtual-channel bit, with one credit wire per virtual
channel flowing back.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FlitType", "flit_layout", "link_signature", "node_id_width", "VIRTUAL_CHANNELS",
           "MAX_NODES"]

#: Virtual channels per link: 0 before the dateline (the link from node ``nodes - 1`` to node 0),
#: 1 after it.
VIRTUAL_CHANNELS = 2
#: Largest ring the routers are built for (the multicast mask has one bit per node).
MAX_NODES = 16


class FlitType(enum.Enum, shape=2):
    """What a flit carries.  Routing ignores it; it travels end to end unchanged."""

    DATA = 0  #: generic data (memory hub <-> tile traffic)
    ACTS = 1  #: activations (typically multicast to every tile)
    RESULT = 2  #: results going back to the memory hub
    CTRL = 3  #: control / synchronisation messages


def node_id_width(nodes: int) -> int:
    """Bits of a node address on a ring of ``nodes`` nodes (at least 1)."""
    return max(1, (nodes - 1).bit_length())


def flit_layout(nodes: int, payload_width: int) -> data.StructLayout:
    """Layout of one flit on a ring of ``nodes`` nodes.

    Fields
    ------
    payload : ``payload_width`` bits
        Opaque data.
    type : FlitType
        Message type, carried unchanged.
    src : node id
        Injecting node; the router stamps it at injection (the value driven is ignored).
    dest : node id
        Destination of a unicast flit (``mcast == 0``).
    mcast : 1 bit
        The flit is multicast: it is delivered to every node whose bit is set in ``mask``.
    mask : ``nodes`` bits
        Multicast destination set (bit ``i`` = node ``i``).  On the ring it holds the nodes still
        to visit: each router clears its own bit when it forwards the flit.
    """
    return data.StructLayout({
        "payload": unsigned(payload_width),
        "type": FlitType,
        "src": unsigned(node_id_width(nodes)),
        "dest": unsigned(node_id_width(nodes)),
        "mcast": unsigned(1),
        "mask": unsigned(nodes),
    })


def link_signature(nodes: int, payload_width: int) -> wiring.Signature:
    """Signature of a router-to-router link (sender's view).

    ``valid``/``vc``/``flit`` are registered in the sender and move one flit per cycle into the
    receiver's input FIFO of virtual channel ``vc``; ``credit[v]`` is a one-cycle pulse from the
    receiver each time it frees an entry of its FIFO ``v``.  There is no ``ready``: the sender only
    sends when it holds a credit for the receiving FIFO.
    """
    return wiring.Signature({
        "valid": Out(1),
        "vc": Out(1),
        "flit": Out(flit_layout(nodes, payload_width)),
        "credit": In(VIRTUAL_CHANNELS),
    })
