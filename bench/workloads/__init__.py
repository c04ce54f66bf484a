"""Workloads, one module per family; each module exports WORKLOADS (a list of harness.Workload)."""
from . import elementwise, reductions, rnn, startup

WORKLOADS = [*elementwise.WORKLOADS, *reductions.WORKLOADS, *rnn.WORKLOADS, *startup.WORKLOADS]
