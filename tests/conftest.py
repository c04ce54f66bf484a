"""Test-session settings.

The disk cache is off unless a test turns it on (tests/test_disk_cache.py does, with a
temporary directory of its own): the suite never writes to the user's cache, and a test's
compile counts never depend on what an earlier run left on disk. ``LUMEN_CACHE=1`` in the
environment runs the whole suite with it on (twice in a row: the second run loads everything
from disk).
"""
import os

os.environ.setdefault("LUMEN_CACHE", "0")
# The suite runs in parallel processes (-n 2) on few cores: each runs its loops on one thread
# unless a test asks for more (tests/test_parallel.py does).
os.environ.setdefault("LUMEN_NUM_THREADS", "1")
