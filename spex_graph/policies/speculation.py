"""Intra-query speculative path selection (SPEX technique 1), for every algorithm.

The speculator predicts what the search will ask for next by running the
algorithm itself on a *hypothetical* copy of the tree: the committed tree
(after the last real selection), extended layer by layer with whatever the
engine has already produced for those paths, and with rewards that have not
arrived yet filled in by a prediction. Whatever `propose` returns on that copy
is the predicted selection; its children are submitted to the dispatcher as
speculative requests, up to `lookahead_layers` beyond the real frontier.

Since a node's request (prompt and seed) depends only on its path, a
speculative request is byte-identical to the one the real search would send:
when the real `expand` asks for that path it joins the request (a hit). What
the real search never asks for is cancelled on the engine (layered searches
at each real selection, MCTS at the end of the query). Speculation therefore
changes only when work happens, never what the search decides (exact mode).

The speculator also pipelines scoring: a child's reward request is sent the
moment its text is ready, instead of after the whole layer.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from spex_graph.algorithms.base import (
    AlgorithmTraits,
    ExpandOrder,
    LeafSelecting,
    SearchState,
    child_keys,
)
from spex_graph.backends.base import LoadReporting
from spex_graph.context import SearchContext
from spex_graph.policies.budget import Claim
from spex_graph.policies.config import SpexConfig
from spex_graph.requests import generation_builder, score_request
from spex_graph.runtime.dispatcher import ExpansionKey, QuerySession
from spex_graph.tasks.base import Problem
from spex_graph.terminal import classify_child
from spex_graph.tree import SearchTree

log = logging.getLogger(__name__)

_WARNED: set[str] = set()


def _warn_unseeded(backend: str) -> None:
    """Say once per backend that exact mode cannot be exact without per-request seeds."""
    if backend in _WARNED:
        return
    _WARNED.add(backend)
    log.warning(
        "backend %r does not honour per-request seeds: SPEX stays self-consistent but its "
        "answers can differ from a non-speculative run (for SGLang, start the server with "
        "--enable-deterministic-inference)",
        backend,
    )


@dataclass
class Speculator:
    """One query's speculation state; lives in its dispatcher session, never in checkpoints.

    Attributes:
        useful: moving average of the fraction of speculative work the real search used.
        launched: speculative keys submitted and not yet reconciled.
    """

    ctx: SearchContext
    session: QuerySession
    problem: Problem
    config: SpexConfig
    useful: float = 0.5
    launched: dict[ExpansionKey, int] = field(default_factory=dict)
    _base: tuple[SearchTree, SearchState] | None = None
    _scheduled: bool = False
    _stopped: bool = False
    _last_hits: int = 0
    _last_spec: int = 0
    _last_load_poll: float = -math.inf
    _polls: set[asyncio.Task[None]] = field(default_factory=set)
    _guessed: set[int] = field(default_factory=set)
    _unscored: set[ExpansionKey] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.config.exact and not self.ctx.policy.capabilities.seeded:
            _warn_unseeded(self.ctx.policy.name)
        self.useful = self.config.useful_start
        self.session.speculator = self
        self.session.listeners.append(self._on_event)
        if self.ctx.dispatcher.budget is not None:
            self.ctx.dispatcher.budget.register(self.session.query_id, self.budget_width())

    @cached_property
    def traits(self) -> AlgorithmTraits:
        """The algorithm's traits, read once: every lookahead layer consults them."""
        return self.ctx.algorithm.traits

    def budget_width(self) -> int:
        """The width this query counts for in the budget (M = factor x sum of widths).

        Layered searches: the children generated per layer (width, times `expansion`
        for beam and ToT-BFS). MCTS and global best-first expand one node at a time,
        so speculation runs `lookahead_layers` expansions ahead: width x lookahead_layers
        (the shared depth also while the query looks deeper alone: a lone query's M
        does not grow with it).
        """
        traits = self.traits
        width = traits.children_per_round
        return width if traits.layered else width * self.config.lookahead_layers

    # -- events from the graph ------------------------------------------------

    def commit(self, tree: SearchTree, search: SearchState) -> None:
        """The real search's state after a selection was observed: speculate from here."""
        self._base = (tree.clone(), search.clone())
        if search.done:
            self.stop()
        else:
            self._schedule()

    def stop(self) -> None:
        """No more speculation for this query."""
        self._stopped = True

    def reconcile(self, tree: SearchTree, orders: Sequence[ExpandOrder]) -> None:
        """The real selection is made: cancel speculation it does not want, update `useful`."""
        wanted = {key for _, key in child_keys(tree, orders)}
        if self.traits.layered and wanted:
            depth = len(next(iter(wanted)))
            at_depth = [k for k, d in self.launched.items() if d == depth]
            if at_depth:
                used = sum(1 for k in at_depth if k in wanted)
                self._update_useful(used / len(at_depth))
            dropped = [k for k in at_depth if k not in wanted]
            doomed = [k for k in self.launched if any(k[: len(d)] == d for d in dropped)]
            for k in at_depth:
                self.launched.pop(k, None)
            for k in doomed:
                self.launched.pop(k, None)
            self.session.cancel_soon(doomed)
            # the search has decided on these: the wanted ones it scores itself, the
            # others it will never need a reward for
            self._unscored.difference_update(at_depth)
            self._unscored.difference_update(doomed)
        else:
            self.launched = {
                k: d
                for k, d in self.launched.items()
                if self.session.in_flight(k) and self.session.completion(k) is None
            }
            stats = self.session.stats()
            spec, hits = stats.speculative_requests, stats.speculative_hits
            if spec - self._last_spec >= 1:
                self._update_useful((hits - self._last_hits) / (spec - self._last_spec))
            self._last_spec, self._last_hits = spec, hits
        if self.ctx.dispatcher.budget is not None:
            self.ctx.dispatcher.budget.report(self.session.query_id, useful=self.useful)

    def _update_useful(self, fraction: float) -> None:
        alpha = self.config.useful_alpha
        self.useful = alpha * fraction + (1 - alpha) * self.useful

    def throttle(self) -> float:
        """Multiplier on speculation: 1 while useful >= useful_min, linear down to 0 below."""
        if self.config.useful_min <= 0 or self.useful >= self.config.useful_min:
            return 1.0
        return max(0.0, self.useful / self.config.useful_min)

    # -- engine events ----------------------------------------------------------

    def _on_event(self, event: str, key: ExpansionKey) -> None:
        if self._stopped:
            return
        if event == "expanded":
            self._pipeline_score(key)
            # Each reward triggers a lookahead when it arrives; a completion does only when
            # it is the last of its layer (predictions on guessed rewards, cheap in CPU).
            if self.session.has_score(key) and self.session.running_at_depth(len(key)) > 0:
                return
        self._schedule()

    def _schedule(self) -> None:
        if self._scheduled or self._stopped:
            return
        self._scheduled = True
        asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        if self._stopped or self._base is None:
            return
        try:
            self._poll_load()
            self._retry_unscored()
            budget = self.ctx.dispatcher.budget
            if budget is not None:
                budget.tick(self.ctx.dispatcher.clock())
            if budget is not None and budget.free() < max(1.0, budget.tokens_per_request):
                return  # no grant is possible: the lookahead could launch nothing (CPU saver)
            self.lookahead()
        except Exception:  # speculation must never fail a query
            log.exception("speculation disabled for query %s", self.session.query_id)
            self.stop()

    # -- scoring pipeline ---------------------------------------------------------

    def _path_texts(self, key: ExpansionKey) -> list[str] | None:
        texts: list[str] = []
        for depth in range(1, len(key) + 1):
            completion = self.session.completion(key[:depth])
            if completion is None:
                return None
            texts.append(completion.text.strip())
        return texts

    def _pipeline_score(self, key: ExpansionKey) -> None:
        if self.session.has_score(key):
            self._unscored.discard(key)
            return
        speculative = self.session.was_speculative(key) and self.session.speculative_pending(key)
        budget = self.ctx.dispatcher.budget
        if (
            speculative
            and budget is not None
            and not budget.allow_speculative_score(self.ctx.dispatcher.clock())
        ):
            # A busy reward engine has no room for work the search may never use: the
            # node is scored once the engine has room again (`_retry_unscored`), or
            # when the search adopts it. Primary nodes are always scored the moment
            # their text is ready, as the baseline does.
            self._unscored.add(key)
            return
        self._unscored.discard(key)
        texts = self._path_texts(key)
        completion = self.session.completion(key)
        if texts is None or completion is None:
            return
        request = score_request(
            self.ctx,
            self.problem,
            texts,
            f"{self.session.query_id}-r{'/'.join(map(str, key))}",
            step_logprobs=completion.token_logprobs,
            finish_reason=completion.finish_reason,
        )
        self.session.score(key, request, speculative=speculative)

    def _retry_unscored(self) -> None:
        """Score the finished speculative nodes the reward engine had no room for,
        while the budget allows it (`BudgetController.may_retry_refused_scores`).

        The refusal rests on a load report up to half a second old; waiting for the
        search to adopt such a node instead left its reward, and every prediction
        that needs it, late by up to a step (on the done-when run 299 of 4,740
        speculative scores were refused, 294 for a queue seen at the last report).
        """
        budget = self.ctx.dispatcher.budget
        if not self._unscored or budget is None or not budget.may_retry_refused_scores():
            return
        for key in sorted(self._unscored):
            if self.session.completion(key) is None:
                self._unscored.discard(key)  # aborted before it finished
            else:
                self._pipeline_score(key)

    # -- prediction ---------------------------------------------------------------

    def lookahead(self) -> None:
        """Extend the hypothetical tree as far as results allow; launch predicted children."""
        assert self._base is not None
        tree = self._base[0].clone()
        state = self._base[1].clone()
        algorithm = self.ctx.algorithm
        placeholders: set[int] = set()
        self._guessed: set[int] = set()
        layers, per_layer = self._reach()
        if self.config.mcts_preexplore and isinstance(algorithm, LeafSelecting):
            self._preexplore(algorithm, tree, state, per_layer)
        known = False  # every reward deciding the next real selection is in
        for layer in range(layers + 1):
            orders = algorithm.propose(tree, state)
            if not orders:
                return
            if layer > 0:
                # A selection made on known rewards is the one the real search is about
                # to make: it joins these requests at once, and hedges are pure waste.
                self._launch(tree, orders, placeholders, per_layer, hedge=not known)
            new_ids, produced = self._grow(tree, orders, placeholders)
            if not produced:
                return
            known = layer == 0 and self.traits.layered and not self._guessed.intersection(new_ids)
            state = algorithm.observe(tree, state, new_ids)

    def _reach(self) -> tuple[int, float]:
        """(layers to look ahead, cap per layer in widths): the solo setting while the
        budget holds no other query (`SpexConfig.solo_lookahead_layers`), never less
        than the shared one. Read at every lookahead, so a query that gains a
        neighbour is back to the shared depth at its next one; its deeper claims are
        worth the least (values halve per layer ahead) and are displaced first."""
        config, budget = self.config, self.ctx.dispatcher.budget
        if config.solo_lookahead_layers is None or budget is None or budget.active_queries > 1:
            return config.lookahead_layers, config.max_spec_per_layer
        return (
            max(config.lookahead_layers, config.solo_lookahead_layers),
            max(config.max_spec_per_layer, config.solo_max_spec_per_layer),
        )

    def _grow(
        self, tree: SearchTree, orders: Sequence[ExpandOrder], placeholders: set[int]
    ) -> tuple[list[int], int]:
        """Add the orders' children to the hypothetical tree from finished results;
        missing ones become placeholders with predicted rewards."""
        new_ids: list[int] = []
        produced = 0
        for order, key in child_keys(tree, orders):
            completion = None if order.node_id in placeholders else self.session.completion(key)
            if completion is None:
                child = tree.add_child(order.node_id, text="")
                placeholders.add(child.id)
            else:
                produced += 1
                child = tree.add_child(
                    order.node_id,
                    text=completion.text.strip(),
                    finish_reason=completion.finish_reason,
                )
                classify_child(
                    self.ctx, tree, child, until_end=order.until_end, completion=completion
                )
                child.reward = self.session.reward(key)
            new_ids.append(child.id)
        layer = set(new_ids)
        # the layer prior launches more beside known rewards: worth it for a query
        # alone, a cost to the others when shared (REBASE c=4: see `_predict`)
        budget = self.ctx.dispatcher.budget
        alone = budget is None or budget.active_queries <= 1
        by_layer = alone and self.traits.reward_prior == "layer"
        # every guess from real rewards only: none may count another guess as known
        guesses = {
            node_id: self._predict(tree, node_id, layer, by_layer)
            for node_id in new_ids
            if tree.node(node_id).reward is None
        }
        if by_layer and guesses and len(guesses) == len(new_ids):
            # nothing known in the layer: one guess for all of it (their parents'
            # mean), so the predicted allocation spreads over the layer evenly
            common = sum(guesses.values()) / len(guesses)
            guesses = dict.fromkeys(guesses, common)
        for node_id, reward in guesses.items():
            tree.node(node_id).reward = reward
            self._guessed.add(node_id)
        return new_ids, produced

    @staticmethod
    def _predict(tree: SearchTree, node_id: int, layer: set[int], by_layer: bool = False) -> float:
        """Predicted reward: the mean of the known rewards of the node's siblings in
        `layer` (`by_layer`: of the whole layer), else the parent's reward, else 0.5.

        `by_layer` is the algorithm's `reward_prior` ("layer": REBASE). The layer's
        mean sits below the best paths' rewards, so REBASE's predicted allocation
        leans to nodes whose rewards are in: the only ones whose children can start
        now (a node still being generated or scored gets its children when its
        reward arrives, one reward pass later). On the done-when run (artifact,
        REBASE w16, c=1, 64 queries) it took SPEX from 88.9% to 90.2% of the oracle,
        seeds 1 and 2 to 89.7% and 92.8% (see the README). It costs ETS, beam and
        best-first (artifact/H100 c=1, 16 queries: 89.3% -> 87.1%, 88.1% -> 84.5%,
        78.2% -> 75.3%), which keep the siblings' mean, and REBASE at c=4 (32
        queries: -0.2% to -4.9%), so `_grow` uses it only for a query alone in the
        budget.
        """
        node = tree.node(node_id)
        members = layer if by_layer else tree.children_of.get(node.parent or 0, [])
        known = [
            reward
            for i in members
            if i != node_id and i in layer and (reward := tree.node(i).reward) is not None
        ]
        if known:
            return sum(known) / len(known)
        parent = tree.node(node.parent) if node.parent is not None else None
        if parent is not None and parent.reward is not None:
            return parent.reward
        return 0.5

    def _launch(
        self,
        tree: SearchTree,
        orders: Sequence[ExpandOrder],
        placeholders: set[int],
        per_layer: float,
        hedge: bool = True,
    ) -> None:
        """Submit speculative requests for the predicted orders (hedged unless `hedge`
        is False, budgeted, and capped at `per_layer` widths at this depth)."""
        real = [o for o in orders if o.node_id not in placeholders]
        if not real:
            return
        ranked = sorted(real, key=lambda o: (-o.n, o.node_id))
        total = sum(o.n for o in ranked)
        # Extra children hedge a child count that a reward may still raise; where no
        # reward changes it (`fixed_fan_out`) the search can never ask for them.
        widen = hedge and not self.traits.fixed_fan_out
        extra = math.ceil(total * (self.config.spec_width_factor - 1.0)) if widen else 0
        widened = {o.node_id: o.n for o in ranked}
        for i in range(extra):
            widened[ranked[i % len(ranked)].node_id] += 1
        # A parent chosen on a guessed reward may lose to a sibling whose reward is also
        # still a guess: hedge by expanding those siblings too (after everything else).
        alternatives = self._alternatives(tree, ranked, placeholders) if hedge else []
        depth = tree.node(ranked[0].node_id).depth + 1
        cap = math.floor(per_layer * self.budget_width() * self.throttle())
        live_at_depth = sum(1 for d in self.launched.values() if d == depth)
        room = cap - live_at_depth
        if room <= 0:
            return
        # Predicted children first (best-allocated parents first), hedges after them.
        wanted: list[tuple[ExpandOrder, ExpansionKey]] = []
        hedges: list[tuple[ExpandOrder, ExpansionKey]] = []
        for order in ranked:
            first = len(tree.children_of.get(order.node_id, []))
            wide = ExpandOrder(order.node_id, widened[order.node_id], order.until_end)
            for _, key in child_keys(tree, [wide]):
                if not self.session.in_flight(key) and key not in self.launched:
                    (wanted if key[-1] - first < order.n else hedges).append((order, key))
        for order, key in child_keys(tree, alternatives):
            if not self.session.in_flight(key) and key not in self.launched:
                hedges.append((order, key))
        predicted = len(wanted)
        wanted = sorted(wanted, key=lambda item: (item[1][-1], -item[0].n)) + hedges
        wanted = wanted[:room]
        if not wanted:
            return
        budget = self.ctx.dispatcher.budget
        claims: list[Claim | None]
        if budget is not None:
            values = [self._value(key, j < predicted) for j, (_, key) in enumerate(wanted)]
            claims = list(budget.try_grant(self.session.query_id, len(wanted), values=values))
        else:
            claims = [None] * len(wanted)
        for (order, key), claim in zip(wanted, claims, strict=False):
            build = generation_builder(
                self.ctx, self.problem, tree.steps(order.node_id), key, until_end=order.until_end
            )
            if claim is not None:
                claim.revoke = self._revoker(key)
            self.session.expand(key, build, speculative=True, claim=claim)
            self.launched[key] = len(key)

    def _value(self, key: ExpansionKey, predicted: bool) -> float:
        """Expected critical-path gain of speculating `key`: the chance the search will
        use it (the query's useful fraction; half for a hedge; halved per layer beyond
        the real frontier) times the step it would take off the critical path (1)."""
        assert self._base is not None
        frontier = max((n.depth for n in self._base[0].nodes), default=0)
        ahead = max(1, len(key) - frontier)
        return self.useful * (1.0 if predicted else 0.5) * 0.5 ** (ahead - 1)

    def _revoker(self, key: ExpansionKey) -> Callable[[], None]:
        def revoke() -> None:
            self.launched.pop(key, None)
            self.session.cancel_soon([key])

        return revoke

    def _alternatives(
        self, tree: SearchTree, orders: Sequence[ExpandOrder], placeholders: set[int]
    ) -> list[ExpandOrder]:
        """Unexpanded siblings (with guessed rewards) of parents picked on a guessed reward."""
        picked = {o.node_id for o in orders}
        out: list[ExpandOrder] = []
        for order in orders:
            node = tree.node(order.node_id)
            if order.node_id not in self._guessed or node.parent is None:
                continue
            for sibling in tree.children(node.parent):
                if (
                    sibling.id in picked
                    or sibling.id in placeholders
                    or sibling.id not in self._guessed
                    or sibling.status != "active"
                    or tree.children_of.get(sibling.id)
                ):
                    continue
                picked.add(sibling.id)
                out.append(ExpandOrder(sibling.id, order.n, order.until_end))
        return out

    def _preexplore(
        self, selector: LeafSelecting, tree: SearchTree, state: SearchState, per_layer: float
    ) -> None:
        """MCTS: speculatively expand the frontier nodes the next rollouts will likely pick,
        spreading picks with virtual visit counts (virtual loss)."""
        width = self.ctx.algorithm.width
        virtual: dict[int, int] = {}
        orders: list[ExpandOrder] = []
        for _ in range(self.config.mcts_preexplore):
            leaf = selector.select_leaf(tree, state, virtual)
            node = tree.node(leaf)
            cur: int | None = leaf
            while cur is not None:
                virtual[cur] = virtual.get(cur, 0) + 1
                cur = tree.node(cur).parent
            if leaf == state.cursor or tree.children_of.get(leaf) or str(node.status) != "active":
                continue
            if all(o.node_id != leaf for o in orders):
                orders.append(ExpandOrder(leaf, width))
        if orders:
            self._launch(tree, orders, set(), per_layer)

    def _poll_load(self) -> None:
        budget = self.ctx.dispatcher.budget
        if budget is None or not budget.load_aware:
            return
        policy, reward = self.ctx.policy, self.ctx.reward
        policy_load = policy if policy.capabilities.reports_load else None
        reward_load = reward if reward.capabilities.reports_load else None
        if not isinstance(policy_load, LoadReporting | None) or not isinstance(
            reward_load, LoadReporting | None
        ):
            return
        if policy_load is None and reward_load is None:
            return
        now = self.ctx.dispatcher.clock()
        if now - self._last_load_poll < 0.5:
            return
        self._last_load_poll = now

        async def poll() -> None:
            try:
                if reward_load is not None:
                    load = await reward_load.load()
                    if load is not None:
                        budget.observe_reward_load(load.waiting, load.token_usage)
                if policy_load is not None:
                    load = await policy_load.load()
                    if load is None:
                        budget.no_load_report()
                    else:
                        budget.observe_load(
                            load.running,
                            load.waiting,
                            load.token_usage,
                            policy.capabilities.max_concurrency,
                            policy.capabilities.free_batch,
                            policy.capabilities.speculative_decoding,
                        )
            except Exception:  # a load report is advice; never fail a query over it
                budget.no_load_report()
                return

        task = asyncio.ensure_future(poll())
        self._polls.add(task)
        task.add_done_callback(self._polls.discard)


def attach_speculative_leaves(
    ctx: SearchContext, tree: SearchTree, session: QuerySession
) -> list[int]:
    """Non-exact mode: add finished, scored speculative paths the real search never
    adopted to `tree` (flagged speculative) and return the ids of those that end in
    a final answer, so they can vote as in the reference artifact."""
    by_key = {tree.path_key(n.id): n.id for n in tree.nodes[1:]}
    by_key[()] = 0
    leaves: list[int] = []
    for key in sorted(session.speculative_keys(), key=len):
        completion, reward = session.completion(key), session.reward(key)
        parent = by_key.get(key[:-1])
        if completion is None or reward is None or parent is None or key in by_key:
            continue
        if len(tree.children_of.get(parent, [])) != key[-1]:
            continue  # child indices must stay dense; skip paths we cannot place
        child = tree.add_child(
            parent,
            text=completion.text.strip(),
            completion_tokens=completion.completion_tokens,
            finish_reason=completion.finish_reason,
            speculative=True,
            reward=reward,
        )
        classify_child(
            ctx, tree, child, until_end=ctx.algorithm.name == "bon", completion=completion
        )
        by_key[key] = child.id
        if child.status == "terminal" and child.answer is not None:
            leaves.append(child.id)
    return leaves
