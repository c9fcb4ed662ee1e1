"""``python -m approvalrules.cli``: the same as the ``approvalrules`` command."""

import sys

from . import main

sys.exit(main())
