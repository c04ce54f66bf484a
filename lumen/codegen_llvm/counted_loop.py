"""The one loop shape both backends emit: ``for (i = start; i < stop; i += step)``."""
from __future__ import annotations

import contextlib

from .llvmtypes import i64


@contextlib.contextmanager
def counted_loop(builder, fn, start, stop, step, name="i"):
    """Emit the loop at ``builder``'s position in function ``fn``; yields i (an i64) with the
    builder inside the body, and leaves it after the loop."""
    b = builder
    pre = b.block
    head = fn.append_basic_block(f"{name}.head")
    body = fn.append_basic_block(f"{name}.body")
    done = fn.append_basic_block(f"{name}.done")
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(i64, name=name)
    i.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", i, stop), body, done)
    b.position_at_end(body)
    yield i
    nxt = b.add(i, step, name=f"{name}.next", flags=["nsw"])
    i.add_incoming(nxt, b.block)
    b.branch(head)
    b.position_at_end(done)
