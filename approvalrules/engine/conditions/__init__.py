"""Structured conditions: parsed once into a tree, evaluated by generated code, explained on demand.

A condition is a mapping (see ``$defs/condition`` in the schema).  Several keys
in one mapping must all hold; ``all``/``any``/``not`` combine conditions.

* :mod:`.tree`: :func:`parse` and the nodes (And, Or, Not, Leaf), and the
  :class:`Visitor` every reader of a condition is written as;
* :mod:`.codegen`: :func:`compile_predicates`, the one evaluator, and the
  explanations built on it (:func:`explain_parts`, :func:`render_explanation`);
* :mod:`.describe`: :func:`describe`, a condition as text;
* :mod:`.analysis`: :func:`interval_of`, :func:`iter_leaves`,
  :func:`referenced_names`, :func:`thresholds`, :func:`date_edges`, :func:`uses_key`.
"""

from .analysis import (
    Bound,
    date_edges,
    exclude_each_other,
    interval_of,
    iter_leaves,
    leaves_of,
    referenced_names,
    thresholds,
    uses_key,
)
from .codegen import Predicate, compile_predicates, compile_trees, explain_parts, render_explanation
from .describe import describe, describe_leaf
from .facts import Facts, Line
from .tree import (
    ALWAYS,
    COMPARATORS,
    And,
    Leaf,
    Node,
    Not,
    Or,
    Visitor,
    as_set,
    key_of,
    parse,
    top_level_parts,
)

__all__ = [
    "ALWAYS",
    "COMPARATORS",
    "And",
    "Bound",
    "Facts",
    "Leaf",
    "Line",
    "Node",
    "Not",
    "Or",
    "Predicate",
    "Visitor",
    "as_set",
    "compile_predicates",
    "compile_trees",
    "date_edges",
    "describe",
    "describe_leaf",
    "exclude_each_other",
    "explain_parts",
    "interval_of",
    "iter_leaves",
    "key_of",
    "leaves_of",
    "parse",
    "referenced_names",
    "render_explanation",
    "thresholds",
    "top_level_parts",
    "uses_key",
]
