"""`python -m bench [workload ...] [--threads 1|all|both] [--quick]` — see bench/README.md."""
import sys

from .harness import main

if __name__ == "__main__":
    sys.exit(main())
