"""Splitting a program's module into parts that LLVM optimises and compiles at the same time.

A program's loops are its parallel regions (`parallel.REGION_NAME`: every loop over elements
is one, `parallel.parallel_range`) and its strided copies (`parallel.COPY_NAME`); the entry that
calls them is glue -- argument checks, allocation, BLAS calls -- which `target` optimises with
a short pipeline, and the loops with the vectorisers. A loop function can leave the module: it
refers to nothing of it but external declarations (and private constants, which can be
copied), and the entry only calls it or passes its address to ``GOMP_parallel``. The loops
move, with the declarations they use, into parts of their own, where they are defined with
external linkage; the first part keeps the glue (`Part.glue`) and declares them. Loops that
follow indices (`parallel.PLAIN_REGION_NAME`) go to one part of their own, which takes the
glue's short pipeline: the vectorisers widen nothing there, and cost a gather, a scatter or an
iota ~15 ms each. The object code of all parts is linked into one engine (`target.LoadedModule`).

The split depends only on the module, never on the machine: the same program gives the same
parts and the same object code everywhere (disk cache entries written by two processes at once
agree), balanced for any number of cores (`_groups`) by estimated work. A region's loops are
vectorised and interleaved, so a line of one costs LLVM about five lines of glue (measured on
the MLP training step: 0.24 s for the regions' 1,350 lines against 0.07 s for the glue's 2,600).
"""
from __future__ import annotations

import re
from typing import NamedTuple

from .parallel import COPY_NAME, PLAIN_REGION_NAME, REGION_NAME

#: What the functions made of loops are called.
_LOOPS = (REGION_NAME, PLAIN_REGION_NAME, COPY_NAME)

#: Estimated work (in lines of glue) a part needs to pay for its own parse and thread.
MIN_PART_WORK = 800
_REGION_COST, _PLAIN_COST = 5, 2

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


def _once(header, items):
    """``items`` with each loop function that is another's twin (the same signature and body:
    a BiLSTM's two directions run the same kernels; 120 loop functions of its training step
    were 49 different ones) dropped, and the references to it made to the first."""
    first, twin = {}, {}
    for item in items:
        if _is_loop(item):
            shape = (item.lines[0].split("@", 1)[0], item.lines[0].split("(", 1)[1],
                     *item.lines[1:])
            twin[item.name] = first.setdefault(shape, item.name)
    twin = {name: kept for name, kept in twin.items() if name != kept}
    if not twin:
        return header, items
    pattern = re.compile('@"(' + "|".join(map(re.escape, twin)) + ')"')

    def rename(line):
        return pattern.sub(lambda m: f'@"{twin[m.group(1)]}"', line)
    kept = []
    for item in items:
        if item.name in twin:
            continue
        if item.refs & twin.keys():
            item = _Item(item.name, list(map(rename, item.lines)), item.defined)
        kept.append(item)
    return header, kept


def _is_loop(item) -> bool:
    return item.defined and item.name.startswith(_LOOPS)


def _movable(item, by_name, depth=1) -> bool:
    """A loop function that refers to nothing of the module but what every part may hold or
    declare: shareable items and (``depth`` levels down) loop functions that can move too (a
    region that copies with a strided copy function)."""
    return _is_loop(item) and item.lines[0].startswith("define internal ") and all(
        r in by_name and (by_name[r].shareable or depth and _movable(by_name[r], by_name, 0))
        for r in item.refs)


class Part(NamedTuple):
    text: str
    work: float       # estimated, in lines of glue
    pipeline: str     # the optimisation pipeline it takes (`target._pipeline`)

    @property
    def glue(self) -> bool:
        """The entry's part, without loops of its own."""
        return self.pipeline == "glue"


def _halves(start, regions):
    """Longest-first assignment of (work, region) pairs to two parts, the first of which starts
    with ``start`` work -> (the first's, the second's)."""
    loads, halves = [start, 0.0], ([], [])
    for region in sorted(regions, key=lambda r: -r[0]):
        k = 0 if loads[0] <= loads[1] else 1
        loads[k] += region[0]
        halves[k].append(region)
    return halves


def _groups(glue_work, regions):
    """The regions of each part: two halves of the work, the glue counted in the first, each
    halved again where both quarters have enough regions to pay for a part. Whatever the
    number of cores, parts taken longest first then balance: two cores take a half each, four
    a quarter each."""
    if glue_work + sum(w for w, _ in regions) < 2 * MIN_PART_WORK:
        return [regions] if regions else []
    groups = []
    for start, half in zip((glue_work, 0.0), _halves(glue_work, regions)):
        quarters = _halves(start, half)
        if all(sum(w for w, _ in quarter) >= MIN_PART_WORK / 2 for quarter in quarters):
            groups.extend(quarters)
        else:
            groups.append(half)
    return [group for group in groups if group]


def split(llvm_ir: str) -> list[Part]:
    """``llvm_ir`` as one to six modules whose object code, linked together, is the program:
    the glue, holding the entry, then the regions' parts (none without regions), the plain
    regions' last. Identical loop functions are compiled once (`_once`)."""
    header, items = _once(*_items(llvm_ir))
    by_name = {item.name: item for item in items}
    movable = [item for item in items if _movable(item, by_name)]
    plain = [item for item in movable if item.name.startswith(PLAIN_REGION_NAME)]
    regions = [(len(item.lines) * _REGION_COST, item) for item in movable
               if not item.name.startswith(PLAIN_REGION_NAME)]
    glue_work = sum(len(item.lines) for item in items) - sum(len(i.lines) for i in movable)
    moved = {item.name for item in movable}
    only_glue = not any(_is_loop(item) and item.name not in moved for item in items)
    stay = "glue" if only_glue else "loops"
    if not movable:
        return [Part(llvm_ir, glue_work, stay)]
    glue = [_declaration(item) if item.name in moved else "\n".join(item.lines)
            for item in items]
    parts = [Part("\n".join(header + glue) + "\n", glue_work, stay)]
    for group in _groups(glue_work, regions):
        parts.append(Part(_part_text(header, [item for _, item in group], by_name),
                          sum(w for w, _ in group), "loops"))
    if plain:
        parts.append(Part(_part_text(header, plain, by_name),
                          sum(len(item.lines) for item in plain) * _PLAIN_COST, "plain"))
    return parts


def _declaration(item) -> str:
    """The declaration of a moved loop function (its header, external, without a body)."""
    return "declare " + item.lines[0][len("define internal "):].rstrip(" {")


def _part_text(header, regions, by_name) -> str:
    here = {item.name for item in regions}
    used = sorted(set().union(*(item.refs for item in regions)) - here)
    lines = list(header) + [_declaration(by_name[name]) if by_name[name].defined
                            else by_name[name].lines[0] for name in used]
    for item in regions:
        lines.append("define " + item.lines[0][len("define internal "):])
        lines.extend(item.lines[1:])
    return "\n".join(lines) + "\n"
