"""The search graph for LangGraph Studio, `langgraph dev` and LangGraph Platform.

A server cannot hand the graph live backends, so runs pass their context by name: an
assistant's (or a run's) ``context`` such as ``{"backend": "sglang", "backend_url":
"http://gpu:30000", "width": 8}`` (see `spex_graph.settings.ContextSettings`). Keys left
out come from the ``SPEX_*`` variables in ``langgraph.json`` (the embedded 0.5B model on
CPU, REBASE width 2, at most 6 steps of 128 tokens: a small search that answers quickly),
then the library defaults. Input: ``{"question": "..."}``; watch ``select``,
``expand`` and ``evaluate`` loop as the tree grows; the answer lands in ``result``.

    cd integrations/studio && LANGGRAPH_CLI_NO_ANALYTICS=1 langgraph dev --port 8123
"""

from spex_graph import build_search_graph
from spex_graph.settings import ContextSettings

graph = build_search_graph(name="spex_search", context_schema=ContextSettings)
