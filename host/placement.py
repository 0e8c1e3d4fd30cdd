"""Buffer placement in one memory window (docs/host.md, docs/spec.md sections 3 and 8).

A bump allocator: every buffer starts at a multiple of ``align`` bytes (32 = the widest AXI
beat, so every ``axi_data_width`` is satisfied) from the window base and the window ends on a
4 KiB page.  Buffers never overlap, except activation buffers placed by `MemoryPlan.arena`
with a live range (``Region.live``, descriptor indices from the writer to the last reader):
two of them may share bytes when their live ranges are disjoint.  :meth:`MemoryPlan.check`
asserts the invariants again from the region list (it is what the tests call).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Region", "MemoryPlan", "ALIGN", "PAGE", "check_regions", "live_overlap",
           "plan_live"]

ALIGN = 32
PAGE = 4096


@dataclass(frozen=True)
class Region:
    """One buffer: ``[offset, offset + size)`` bytes from the window base.

    ``live``: ``(first, last)`` descriptor indices, inclusive, during which the buffer holds
    data someone still needs: ``first`` the descriptor that writes it (-1: the host, before the
    table), ``last`` its last reader (the descriptor count: the host reads it after the
    table).  None: live for the whole run (weights, records, tables, the descriptors, and every
    buffer of a plan without reuse)."""

    name: str
    offset: int
    size: int
    live: tuple[int, int] | None = None

    @property
    def end(self) -> int:
        return self.offset + self.size


class MemoryPlan:
    """Place named buffers one after the other, each aligned to ``align`` bytes.

    Parameters
    ----------
    align : int
        Alignment of every buffer (a power of two, at least 32).

    Raises
    ------
    ValueError
        ``align`` is not a power of two >= 32, a size is not positive, or a name repeats.
    """

    def __init__(self, align: int = ALIGN):
        if align < ALIGN or align & (align - 1):
            raise ValueError(f"align must be a power of two >= {ALIGN}, not {align!r}")
        self.align = align
        self.regions: list[Region] = []
        self._pos = 0

    def alloc(self, name: str, size: int) -> int:
        """Place ``size`` bytes called ``name``; returns the offset from the window base."""
        if size < 1:
            raise ValueError(f"size of {name!r} must be a positive int, not {size!r}")
        if any(r.name == name for r in self.regions):
            raise ValueError(f"region name must be unique, not {name!r} again")
        off = -(-self._pos // self.align) * self.align
        self.regions.append(Region(name, off, int(size)))
        self._pos = off + int(size)
        return off

    @property
    def end(self) -> int:
        """The first byte past everything placed or reserved so far."""
        return self._pos

    def reserve(self, size: int) -> int:
        """Keep the next ``size`` bytes (unaligned, right after the last buffer) free for
        `place`; returns their offset.  ``size <= 0`` reserves nothing."""
        off = self._pos
        self._pos += max(0, int(size))
        return off

    def place(self, name: str, offset: int, size: int) -> int:
        """Place ``size`` bytes called ``name`` at ``offset`` inside reserved space: aligned,
        before `end`, overlapping no other buffer."""
        if size < 1:
            raise ValueError(f"size of {name!r} must be a positive int, not {size!r}")
        if any(r.name == name for r in self.regions):
            raise ValueError(f"region name must be unique, not {name!r} again")
        new = Region(name, int(offset), int(size))
        if offset % self.align or offset < 0 or new.end > self._pos or any(
                r.offset < new.end and new.offset < r.end for r in self.regions):
            raise ValueError(f"{name!r} at [{offset:#x}, {new.end:#x}) must be aligned to "
                             f"{self.align} inside reserved space (end {self._pos:#x})")
        self.regions.append(new)
        return new.offset

    def arena(self, blocks) -> dict[str, int]:
        """Place activation buffers that may share bytes when their live ranges are disjoint,
        from the next aligned offset on (`plan_live`); returns ``{name: offset}``.

        ``blocks``: ``(parts, (first, last))`` each, ``parts`` a list of ``(name, offset in
        the block, size)`` (one buffer, or the two inputs of an add side by side), ``first``
        and ``last`` the block's live range (inclusive descriptor indices, see `Region`): a
        block may reuse the bytes of one whose ``last`` is smaller than its ``first``."""
        start = -(-self._pos // self.align) * self.align
        items = []
        for parts, live in blocks:
            for name, rel, size in parts:
                if size < 1:
                    raise ValueError(f"size of {name!r} must be a positive int, not {size!r}")
                if rel % self.align:
                    raise ValueError(f"{name!r} must sit {self.align}-aligned in its block")
                if self.has(name) or sum(n == name for b in blocks for n, _, _ in b[0]) > 1:
                    raise ValueError(f"region name must be unique, not {name!r} again")
            items.append((max(rel + size for _, rel, size in parts), tuple(live)))
        offs, total = plan_live(items, self.align)
        where = {}
        for (parts, live), off in zip(blocks, offs, strict=True):
            for name, rel, size in parts:
                self.regions.append(Region(name, start + off + rel, int(size),
                                           (int(live[0]), int(live[1]))))
                where[name] = start + off + rel
        self._pos = start + total if blocks else self._pos
        return where

    @property
    def window_bytes(self) -> int:
        """Bytes of the window: the end of the last buffer rounded up to a 4 KiB page."""
        return max(PAGE, -(-self._pos // PAGE) * PAGE)

    def has(self, name: str) -> bool:
        return any(r.name == name for r in self.regions)

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    def check(self, window_bytes: int | None = None) -> None:
        """Assert alignment, every buffer inside ``[0, window_bytes)`` and no two buffers
        sharing a byte while both are live (`check_regions`)."""
        check_regions(self.regions, self.window_bytes if window_bytes is None else window_bytes,
                      self.align)


def live_overlap(a, b) -> bool:
    """Whether live ranges ``a`` and ``b`` (inclusive ``(first, last)``; None: the whole run)
    share a descriptor: then the buffers must not share a byte."""
    if a is None or b is None:
        return True
    return not (a[1] < b[0] or b[1] < a[0])


def plan_live(items, align: int = ALIGN) -> tuple[list[int], int]:
    """Offsets for blocks ``(size, (first, last))`` so that two blocks whose live ranges
    share a descriptor (`live_overlap`) share no byte: ``(offsets, total bytes)``, every
    offset a multiple of ``align``.

    Greedy by size (largest first, then by ``first``): each block goes to the lowest aligned
    offset clear of the blocks already placed that are live with it."""
    order = sorted(range(len(items)), key=lambda i: (-items[i][0], items[i][1][0], i))
    placed: list[tuple[int, int, tuple]] = []       # (offset, end, live)
    offs = [0] * len(items)
    for i in order:
        size, live = items[i]
        busy = sorted((o, e) for o, e, lv in placed if live_overlap(live, lv))
        off = 0
        for o, e in busy:
            if off + size <= o:
                break
            off = max(off, -(-e // align) * align)
        offs[i] = off
        placed.append((off, off + size, live))
    return offs, max((e for _, e, _ in placed), default=0)


def check_regions(regions, window_bytes: int, align: int = ALIGN) -> None:
    """Raise AssertionError naming the buffers if a placement invariant is broken: a buffer
    misaligned, empty or outside the window, or two buffers sharing a byte while both are live
    (`Region.live`; a buffer without a live range is live for the whole run)."""
    rs = sorted(regions, key=lambda r: r.offset)
    for r in rs:
        assert r.offset % align == 0, f"{r.name} at {r.offset:#x} is not {align}-byte aligned"
        assert r.size > 0, f"{r.name} is empty"
        assert 0 <= r.offset and r.end <= window_bytes, \
            f"{r.name} [{r.offset:#x}, {r.end:#x}) is outside the window [0, {window_bytes:#x})"
    for i, a in enumerate(rs):
        for b in rs[i + 1:]:
            if b.offset >= a.end:
                break
            assert not live_overlap(a.live, b.live), \
                f"{a.name} [{a.offset:#x}, {a.end:#x}) overlaps {b.name} at {b.offset:#x}" + (
                    f" while both are live ({a.name}: {a.live or 'always'}, {b.name}: "
                    f"{b.live or 'always'})" if a.live or b.live else "")
