"""`python -m siger.cli`: the command line."""

import sys

from siger.cli import main

sys.exit(main())
