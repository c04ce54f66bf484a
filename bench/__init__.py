"""lumen's benchmark suite: `python -m bench [workload ...] [--threads 1|all|both] [--quick]`."""
