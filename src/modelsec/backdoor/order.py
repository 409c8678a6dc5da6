"""The order the backdoor analysis evaluates a graph's nodes in.

Runtimes sort nodes themselves, so file order proves nothing: nodes are evaluated in
topological order, where a node with a body (``If``, ``Loop``...) depends on every name
its body reads from the enclosing graphs.
"""

from __future__ import annotations

from modelsec.backdoor.graph import DataflowGraph, OpNode


class EvaluationOrder:
    """Topological orders of one model's graphs; each body's free names computed once."""

    def __init__(self) -> None:
        self._free: dict[int, frozenset[str]] = {}  # by id() of a graph the model keeps alive

    def free_names(self, g: DataflowGraph) -> frozenset[str]:
        """Names a graph reads from its enclosing scopes (for ordering outer nodes)."""
        key = id(g)
        cached = self._free.get(key)
        if cached is not None:
            return cached
        defined = set(g.inputs) | set(g.constants)
        used: set[str] = set()
        for node in g.nodes:
            used.update(n for n in node.inputs if n)
            for sub in node.subgraphs.values():
                used.update(self.free_names(sub))
            defined.update(node.outputs)
        result = frozenset(used - defined)
        self._free[key] = result
        return result

    def nodes(self, g: DataflowGraph) -> list[OpNode]:
        """Topological order (runtimes sort nodes themselves, so file order proves
        nothing); nodes on a cycle, which no runtime would accept, come last."""
        producer: dict[str, int] = {}
        for i, node in enumerate(g.nodes):
            for out in node.outputs:
                if out:
                    producer.setdefault(out, i)
        deps: list[set[int]] = []
        users: dict[int, list[int]] = {}
        for i, node in enumerate(g.nodes):
            needs = {n for n in node.inputs if n}
            for sub in node.subgraphs.values():
                needs |= self.free_names(sub)
            d = {producer[n] for n in needs if n in producer and producer[n] != i}
            deps.append(d)
            for j in d:
                users.setdefault(j, []).append(i)
        remaining = [len(d) for d in deps]
        ready = [i for i, r in enumerate(remaining) if r == 0]
        order: list[int] = []
        while ready:
            i = ready.pop()
            order.append(i)
            for u in users.get(i, ()):
                remaining[u] -= 1
                if remaining[u] == 0:
                    ready.append(u)
        if len(order) < len(g.nodes):
            placed = set(order)
            order.extend(i for i in range(len(g.nodes)) if i not in placed)
        return [g.nodes[i] for i in order]
