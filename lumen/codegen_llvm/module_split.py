"""Splitting a program's module into parts that LLVM optimises and compiles at the same time.

LLVM spends its time per function, and a program's parallel regions (`parallel.REGION_NAME`)
are functions that can leave the module: each refers to nothing of it but external
declarations (and private constants, which can be copied), and the entry only calls it or
passes its address to ``GOMP_parallel``. A region moves, with the declarations it uses, into
another part, where it is defined with external linkage; the first part keeps everything else
and declares it. The object code of all parts is linked into one engine (`target.LoadedModule`).

The split depends only on the module, never on the machine: the same program gives the same
parts and the same object code everywhere (disk cache entries written by two processes at once
agree), balanced for any number of cores (`_groups`) by estimated work. A region's loops are
vectorised and interleaved, so a line of one costs LLVM about 2.5 lines of the entry's scalar
code (measured on the MLP training step: 0.25 s for the regions' 1,300 lines against 0.18 s
for the rest's 2,600).
"""
from __future__ import annotations

import re
from typing import NamedTuple

from .parallel import REGION_NAME

#: Estimated work (in lines of the entry) a part needs to pay for its own parse and thread.
MIN_PART_WORK = 400
_REGION_COST = 2.5

_DEFINE = re.compile(r'define (internal )?.*?@"([^"]+)"\(')
_DECLARATION = re.compile(r'declare .*?@"([^"]+)"\(|@"([^"]+)" = ')
_REFERENCE = re.compile(r'@"([^"]+)"')


class _Item:
    """One top-level entity of the module text: a definition, declaration or global."""

    def __init__(self, name, lines, defined):
        self.name, self.lines, self.defined = name, lines, defined
        self.refs = set(_REFERENCE.findall("\n".join(lines[1:] if defined else lines))) - {name}

    @property
    def shareable(self):
        """Something every part may hold a copy of: an external declaration or a private
        constant."""
        head = self.lines[0]
        return not self.defined and (head.startswith("declare ") or " = external " in head
                                     or " = private constant " in head
                                     or " = private unnamed_addr constant " in head)


def _items(llvm_ir: str):
    """-> (header lines, items) of module text as llvmlite.ir prints it."""
    lines = llvm_ir.splitlines()
    header, items, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        define = _DEFINE.match(line)
        if define:
            end = lines.index("}", i)
            items.append(_Item(define.group(2), lines[i:end + 1], True))
            i = end + 1
            continue
        declared = _DECLARATION.match(line)
        if declared:
            items.append(_Item(declared.group(1) or declared.group(2), [line], False))
        elif line.strip():
            header.append(line)
        i += 1
    return header, items


def _movable(item, by_name) -> bool:
    return item.defined and item.name.startswith(REGION_NAME) and \
        item.lines[0].startswith("define internal ") and \
        all(r in by_name and by_name[r].shareable for r in item.refs)


class Part(NamedTuple):
    text: str
    work: float       # estimated, in lines of the entry


def _halves(start, regions):
    """Longest-first assignment of (work, region) pairs to two parts, the first of which starts
    with ``start`` work -> (the first's, the second's)."""
    loads, halves = [start, 0.0], ([], [])
    for region in sorted(regions, key=lambda r: -r[0]):
        k = 0 if loads[0] <= loads[1] else 1
        loads[k] += region[0]
        halves[k].append(region)
    return halves


def _groups(rest_work, regions):
    """The regions of each part: two halves of the work, each halved again where it is large
    enough. Whatever the number of cores, parts taken longest first then balance: two cores
    take a half each, four a quarter each. The first group stays with the rest."""
    if rest_work + sum(w for w, _ in regions) < 2 * MIN_PART_WORK:
        return [regions]
    groups = []
    for start, half in zip((rest_work, 0.0), _halves(rest_work, regions)):
        if start + sum(w for w, _ in half) >= 2 * MIN_PART_WORK and len(half) > (start == 0):
            groups.extend(_halves(start, half))
        else:
            groups.append(half)
    return [group for i, group in enumerate(groups) if group or i == 0]


def split(llvm_ir: str) -> list[Part]:
    """``llvm_ir`` as one to four modules whose object code, linked together, is the program;
    the first holds the entry."""
    header, items = _items(llvm_ir)
    by_name = {item.name: item for item in items}
    regions = [(len(item.lines) * _REGION_COST, item) for item in items
               if _movable(item, by_name)]
    rest_work = sum(len(item.lines) for item in items) - sum(len(i.lines) for _, i in regions)
    groups = _groups(rest_work, regions)
    if len(groups) == 1:
        return [Part(llvm_ir, rest_work + sum(w for w, _ in regions))]
    moved = {item.name for group in groups[1:] for _, item in group}
    first = [_declaration(item) if item.name in moved else "\n".join(item.lines)
             for item in items]
    parts = [Part("\n".join(header + first) + "\n", rest_work + sum(w for w, _ in groups[0]))]
    for group in groups[1:]:
        parts.append(Part(_part_text(header, [item for _, item in group], by_name),
                          sum(w for w, _ in group)))
    return parts


def _declaration(item) -> str:
    """The declaration of a moved region (its header, external, without a body)."""
    return "declare " + item.lines[0][len("define internal "):].rstrip(" {")


def _part_text(header, regions, by_name) -> str:
    used = sorted(set().union(*(item.refs for item in regions)))
    lines = list(header) + [by_name[name].lines[0] for name in used]
    for item in regions:
        lines.append("define " + item.lines[0][len("define internal "):])
        lines.extend(item.lines[1:])
    return "\n".join(lines) + "\n"
