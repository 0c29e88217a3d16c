"""`python -m apitokenproxy`: the command line, as the `apitokenproxy` script runs it."""

import sys

from .cli import main

sys.exit(main())
