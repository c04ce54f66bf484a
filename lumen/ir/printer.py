"""The IR's text form (DESIGN.md): one binding per line, types inline, params sorted, the user's
line as a comment."""
from __future__ import annotations

from .dims import Dim
from .ops.kernel import KERNEL_OPS


def _param_text(v) -> str:
    if isinstance(v, Dim):
        return "?" if v.value is None else str(v.value)
    if isinstance(v, tuple):
        return "(" + ",".join(_param_text(x) for x in v) + ")"
    if hasattr(v, "name") and not isinstance(v, str):
        return str(v.name)
    return str(v)


def value_names(graph) -> dict:
    names = {}
    input_names = getattr(graph, "input_names", None) or [f"arg{i}" for i in range(len(graph.inputs))]
    for v, n in zip(graph.inputs, input_names):
        names[v] = "%" + n
    k = 0
    for node in graph.nodes:
        for out in node.outputs:
            names[out] = f"%{k}"
            k += 1
    return names


def _is_graph(v) -> bool:
    return hasattr(v, "nodes") and hasattr(v, "outputs")


def format_node(node, names) -> str:
    outs = ", ".join(names[o] for o in node.outputs)
    args = ", ".join(names[v] for v in node.inputs)
    params = []
    for key in sorted(node.params):
        if key.startswith("_") or key in ("space", "epilogue", "reduce") or \
                (key == "body" and node.op in KERNEL_OPS) or _is_graph(node.params[key]):
            continue
        params.append(f"{key}={_param_text(node.params[key])}")
    if node.op in KERNEL_OPS:
        body = node.params["body"]
        red = node.params.get("reduce")
        params.append("{" + body.text([f"a{i}" for i in range(body.n_inputs)]) + "}")
        if red is not None:
            keep = ", keepdims" if red.keepdims else ""
            params.append(f"{red.op}(axes={_param_text(red.axes)}{keep})")
        epilogue = node.params.get("epilogue")
        if epilogue is not None:
            names = ["r"] + [f"a{i}" for i in range(epilogue.n_inputs - 1)]
            params.append("then {" + epilogue.text(names, prefix="e") + "}")
    text = f"{outs} = {node.op} {args}".rstrip()
    if params:
        text += " " + " ".join(params)
    types = ", ".join(o.type.text() for o in node.outputs)
    line = f"  {text:<40} : {types}"
    if node.loc:
        line = f"{line:<62} # {node.loc}"
    return line


def format_graph(graph, indent="") -> str:
    """The graph as text; nested bodies of control-flow nodes are printed indented under them."""
    names = value_names(graph)
    args = ", ".join(f"{names[v]}: {v.type.text()}" for v in graph.inputs)
    rets = ", ".join(v.type.text() for v in graph.outputs)
    lines = [f"{indent}func @{graph.name}({args}) -> {rets}"]
    for d, value in sorted(graph.guards.items(), key=lambda kv: kv[0].text()):
        lines.append(f"{indent}  guard {d.text()} == {value}")
    for n in graph.nodes:
        lines.append(indent + format_node(n, names))
        for key in sorted(n.params):
            if _is_graph(n.params[key]) and n.op not in KERNEL_OPS:
                lines.append(f"{indent}    {key}:")
                lines.append(format_graph(n.params[key], indent + "      "))
    lines.append(f"{indent}  return " + ", ".join(names.get(v, "?") for v in graph.outputs))
    return "\n".join(lines)
