"""LangGraph nodes: thin adapters that read state, call the core and return an update."""

from spex_graph.nodes.aggregate import aggregate_node
from spex_graph.nodes.evaluate import evaluate_node
from spex_graph.nodes.expand import expand_node
from spex_graph.nodes.select import select_node, start_node

__all__ = ["aggregate_node", "evaluate_node", "expand_node", "select_node", "start_node"]
