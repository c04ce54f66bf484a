"""Which line of the user's code is being traced (every node records it; errors name it)."""
from __future__ import annotations

import os
import sys

_LUMEN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP = (_LUMEN_DIR, os.path.dirname(os.__file__))


def _is_library(filename: str) -> bool:
    return filename.startswith(_LUMEN_DIR) or "site-packages" in filename and (
        os.sep + "numpy" + os.sep in filename or os.sep + "scipy" + os.sep in filename)


def user_location() -> str | None:
    """``file.py:LINE`` of the innermost frame outside lumen, NumPy and SciPy."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_library(filename) and not filename.startswith("<frozen"):
            return f"{os.path.basename(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def at_user_line() -> str:
    """`` at file.py:LINE`` of the user's line (`user_location`), or "" when there is none:
    the suffix error messages name the line with."""
    loc = user_location()
    return f" at {loc}" if loc else ""
