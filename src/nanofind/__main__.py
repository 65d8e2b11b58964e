"""``python -m nanofind`` runs the command line."""

import sys

from nanofind.cli import main

sys.exit(main())
