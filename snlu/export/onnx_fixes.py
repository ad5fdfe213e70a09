"""Rewrites of an exported ONNX graph for what onnxruntime's CPU kernels lack.

- ``Where`` on booleans (``torch.where(mask, a, b)`` with boolean ``a`` and ``b``, as ``dpmask`` chooses its frames)
  has no onnxruntime kernel: it becomes ``Or(And(c, a), And(Not(c), b))``, the same values.
"""

from __future__ import annotations

from typing import Any

import onnx
from onnx import TensorProto, helper


def _types(graph: onnx.GraphProto, known: dict[str, int]) -> dict[str, int]:
    """Element type of each named value of ``graph`` (and of the graphs around it, ``known``)."""
    out = dict(known)
    for v in [*graph.input, *graph.output, *graph.value_info]:
        if v.type.HasField("tensor_type"):
            out[v.name] = v.type.tensor_type.elem_type
    for t in graph.initializer:
        out[t.name] = t.data_type
    return out


def bool_where_to_logic(graph: onnx.GraphProto, known: dict[str, int] | None = None) -> int:
    """Replace every boolean ``Where`` of ``graph`` and its subgraphs (in place); how many were replaced."""
    types = _types(graph, known or {})
    nodes: list[Any] = []
    count = 0
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                count += bool_where_to_logic(attr.g, types)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                count += sum(bool_where_to_logic(g, types) for g in attr.graphs)
        if node.op_type == "Where" and types.get(node.output[0]) == TensorProto.BOOL:
            c, a, b = node.input
            out, stem = node.output[0], f"{node.name or node.output[0]}_logic"
            nodes += [helper.make_node("Not", [c], [f"{stem}_not"], name=f"{stem}_not"),
                      helper.make_node("And", [c, a], [f"{stem}_a"], name=f"{stem}_and_a"),
                      helper.make_node("And", [f"{stem}_not", b], [f"{stem}_b"], name=f"{stem}_and_b"),
                      helper.make_node("Or", [f"{stem}_a", f"{stem}_b"], [out], name=f"{stem}_or")]
            count += 1
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def fix_for_onnxruntime(model: onnx.ModelProto) -> onnx.ModelProto:
    """All the rewrites above, in place; the model."""
    bool_where_to_logic(model.graph)
    return model
