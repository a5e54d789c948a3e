import sys

from siger.cli import main

sys.exit(main())
