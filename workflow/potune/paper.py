"""``python -m potune.paper``: the papers' tables and figures (:mod:`potune.report.paper`)."""

import sys

from .report.paper import main

if __name__ == "__main__":
    sys.exit(main())
