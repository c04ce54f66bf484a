"""``python -m lumen``: the command line (`lumen.runtime.cli`)."""
import sys

from .runtime.cli import main

sys.exit(main())
