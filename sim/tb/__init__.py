"""cocotb test modules that the product itself runs (``sparsemac bench ring``, ``sparsemac run
--engine rtl``, ``sparsemac lut --report``); the regression reuses them."""
