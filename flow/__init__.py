"""The user's flow around the generator: Verilog + manifest, lint, synthesis, board builds and
parameter sweeps (docs/flow.md).

``flow`` may import ``hw`` and ``golden``; ``hw`` never imports ``flow``.
"""
