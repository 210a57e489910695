"""spex-graph: fast reward-guided Tree-of-Thought search as a LangGraph state graph.

Entry points:
    build_search_graph  the compiled LangGraph StateGraph (nodes start, select,
                        expand, evaluate, aggregate)
    SearchContext       the live objects (backends, reward, algorithm, dispatcher)
                        a graph run needs, passed as its runtime context
    SpexReasoner        the graph as a LangChain Runnable
"""

from spex_graph.config import SearchConfig
from spex_graph.context import SearchContext
from spex_graph.graph import build_search_graph
from spex_graph.reasoner import SpexReasoner
from spex_graph.result import SearchResult
from spex_graph.tree import NodeStatus, SearchNode, SearchTree

__all__ = [
    "NodeStatus",
    "SearchConfig",
    "SearchContext",
    "SearchNode",
    "SearchResult",
    "SearchTree",
    "SpexReasoner",
    "build_search_graph",
]
__version__ = "0.1.0"
