"""cocotb testbenches: the base class of every bench (``base.TB``, ``config_from_env``,
``params_from_env``), the AXI family's ``axi.AxiTB``, and the cocotb test modules that the
product itself runs (``sparsemac bench ring``, ``sparsemac run --engine rtl``, ``sparsemac lut
--report``); the regression reuses them.  See docs/verification.md, "Testbenches"."""
