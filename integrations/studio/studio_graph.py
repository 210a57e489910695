"""The search graph for LangGraph Studio / `langgraph dev`.

Studio runs graphs without our runtime context, so the nodes build a shared
SearchContext from environment variables (SPEX_BACKEND, SPEX_BACKEND_URL,
SPEX_MODEL, SPEX_TASK, SPEX_ALGORITHM, SPEX_WIDTH; see langgraph.json).
Input: {"question": "..."}; watch `select`, `expand` and `evaluate` loop and
the tree grow in the state panel; the answer lands in `result`.

    cd integrations/studio && langgraph dev
"""

from spex_graph import build_search_graph

graph = build_search_graph(name="spex_search")
