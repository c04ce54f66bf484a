"""Workloads, one module per family; each module exports WORKLOADS (a list of harness.Workload)."""
from . import conv, digits, elementwise, gpu, lstm_crf, mlp, ner, overhead, reductions, rnn, startup

WORKLOADS = [*elementwise.WORKLOADS, *reductions.WORKLOADS, *mlp.WORKLOADS, *rnn.WORKLOADS,
             *lstm_crf.WORKLOADS, *digits.WORKLOADS, *ner.WORKLOADS, *overhead.WORKLOADS,
             *startup.WORKLOADS, *gpu.WORKLOADS, *conv.WORKLOADS]
