"""`python -m pyhttpd` is the pyhttpd command."""

import sys

from pyhttpd.cli import main

sys.exit(main())
