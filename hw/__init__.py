"""sparsemac hardware generator (Amaranth HDL 0.5).

Blocks live one per module; this package re-exports the configuration.
"""

from sparsemac.hw.config import FORMATS, AcceleratorConfig, ConfigError, load_config

__all__ = ["AcceleratorConfig", "ConfigError", "FORMATS", "load_config"]
