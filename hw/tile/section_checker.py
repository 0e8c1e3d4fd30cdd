"""The common boundary of the body checkers of `ImageChecker` (docs/spec.md section 3, codes
7..10): `PtrSectionChecker`, `BitmapMaskChecker`, `BlockIndexChecker`, `BlockPadChecker`,
`NmIndexChecker`, `NmPadChecker`.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In
from sparsemac.hw.config import AcceleratorConfig

__all__ = ["SectionChecker"]


class SectionChecker(wiring.Component):
    """Base of the body checkers: one set of golden rules on one or two sections of an image.

    A checker observes the word presented to `ImageChecker` (it never changes the stream; a
    checker that cannot finish a word in one cycle asks for it to be held with ``stall``) and
    keeps sticky rule flags (``bad_*``), set `latency` cycles (1 unless the checker says more)
    after the word that breaks the rule is taken and cleared by ``clear``.  The `ImageChecker`
    derives the strobes, the section flags and the header values each checker takes; its
    verdict picks among the flags in golden's order, `latency` cycles after the last word.

    Parameters
    ----------
    cfg : AcceleratorConfig
        The build (word width, limits, block size).

    Members
    -------
    word : In(axi_data_width)
        The presented word (lane ``j`` is byte ``j`` of the word).
    clear : In(1)
        Clear the rule flags (a new image); wins over a rule broken in the same cycle.

    The strobes, for the checkers that take them (their own signature):

    go : In(1)
        ``word`` is offered and the consumer is ready (it is taken unless a checker holds it).
    xfer : In(1)
        ``word`` is transferred this cycle.
    active : In(1)
        ``word`` lies in the checker's section and its rules apply (the header passed and the
        image has the checker's format).

    Raises
    ------
    TypeError
        ``cfg`` is not an AcceleratorConfig (checked before `members` reads it).
    """

    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = AcceleratorConfig.require(cfg, "cfg")
        super().__init__({"word": In(cfg.axi_data_width), "clear": In(1),
                          **self.members(cfg)})

    @property
    def latency(self) -> int:
        """Cycles from the transfer of a word that breaks a rule to its flag: 1 (a checker
        that registers a step in between says more)."""
        return 1

    @staticmethod
    def members(cfg: AcceleratorConfig) -> dict:
        """The checker's own members (each checker states them), added to the common ones."""
        return {}

    def word_bytes(self) -> list:
        """The lanes of ``word``, byte by byte."""
        return [self.word[8 * j:8 * j + 8] for j in range(self.cfg.axi_bytes)]

    def clear_flags(self, m, *flags):
        """``clear`` resets ``flags`` (call last in `elaborate`, so it wins)."""
        with m.If(self.clear):
            m.d.sync += [f.eq(0) for f in flags]
