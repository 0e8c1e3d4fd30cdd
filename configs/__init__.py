"""Configuration presets shipped with sparsemac (``tiny``, ``default``, ``large``) as YAML."""
