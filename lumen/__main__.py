"""``python -m lumen``: the command line (`lumen.runtime.cli`)."""
import os
import sys

from .runtime.cli import main

try:
    status = main()
    sys.stdout.flush()
except BrokenPipeError:
    # the reader went away (``python -m lumen cache info | head``): stop quietly, as `cat` does
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    status = 141
sys.exit(status)
