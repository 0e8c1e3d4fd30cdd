"""Hypothesis profiles of the golden tests (local to these tests; the global default is untouched).

``SPARSEMAC_HYPOTHESIS=ci`` (or ``CI`` set in the environment) derandomizes, so a CI run is
reproducible; ``dev`` (default) explores new examples each run.  Both print the reproduction
blob of a failure (``print_blob=True``) and have no deadline (CI machines are slow and shared).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("sparsemac-golden-ci", derandomize=True, print_blob=True,
                          database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("sparsemac-golden-dev", print_blob=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])

_NAME = os.environ.get("SPARSEMAC_HYPOTHESIS") or ("ci" if os.environ.get("CI") else "dev")
PROFILE = settings.get_profile(f"sparsemac-golden-{_NAME}")


def hsettings(max_examples: int) -> settings:
    """Settings decorator: the active profile with ``max_examples``."""
    return settings(PROFILE, max_examples=max_examples)
