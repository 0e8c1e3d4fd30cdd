"""``python -m sparsemac ...`` is the ``sparsemac`` command."""

import sys

from sparsemac.cli.main import main

sys.exit(main())
