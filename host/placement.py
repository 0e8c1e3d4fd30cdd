"""Buffer placement in one memory window (docs/host.md, docs/spec.md sections 3 and 8).

A bump allocator: every buffer starts at a multiple of ``align`` bytes (32 = the widest AXI
beat, so every ``axi_data_width`` is satisfied) from the window base, buffers never overlap, and
the window ends on a 4 KiB page.  :meth:`MemoryPlan.check` asserts the invariants again from the
region list (it is what the tests call).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Region", "MemoryPlan", "ALIGN", "PAGE"]

ALIGN = 32
PAGE = 4096


@dataclass(frozen=True)
class Region:
    """One buffer: ``[offset, offset + size)`` bytes from the window base."""

    name: str
    offset: int
    size: int

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
        """Assert alignment, no overlap and every buffer inside ``[0, window_bytes)``."""
        check_regions(self.regions, self.window_bytes if window_bytes is None else window_bytes,
                      self.align)


def check_regions(regions, window_bytes: int, align: int = ALIGN) -> None:
    """Raise AssertionError naming the buffers if a placement invariant is broken."""
    rs = sorted(regions, key=lambda r: r.offset)
    for r in rs:
        assert r.offset % align == 0, f"{r.name} at {r.offset:#x} is not {align}-byte aligned"
        assert r.size > 0, f"{r.name} is empty"
        assert 0 <= r.offset and r.end <= window_bytes, \
            f"{r.name} [{r.offset:#x}, {r.end:#x}) is outside the window [0, {window_bytes:#x})"
    for a, b in zip(rs, rs[1:], strict=False):
        assert a.end <= b.offset, \
            f"{a.name} [{a.offset:#x}, {a.end:#x}) overlaps {b.name} at {b.offset:#x}"
