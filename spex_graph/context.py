"""The runtime context: the live objects a search graph runs against.

It travels in LangGraph's runtime context (`graph.ainvoke(..., context=ctx)`),
never in checkpointed state: backends, the reward model and the dispatcher
hold connections and in-flight requests that a checkpoint cannot and must not
save. One context serves many concurrent queries; all per-query data lives in
the graph state or in the dispatcher's per-query session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spex_graph.algorithms.base import SearchAlgorithm
from spex_graph.backends.base import Backend
from spex_graph.config import SearchConfig
from spex_graph.policies.budget import BudgetController
from spex_graph.policies.config import SpexConfig
from spex_graph.rewards.base import RewardModel
from spex_graph.runtime.dispatcher import Clock, Dispatcher, QuerySession, QuerySpeculator
from spex_graph.tasks.base import Problem, Task


@dataclass
class SearchContext:
    """Everything a search needs besides its state.

    Build it with `SearchContext.create(...)`, which fills defaults from the
    config (task, algorithm) and wires a dispatcher to the backends.

    Attributes:
        policy: generation backend.
        reward: reward model.
        task: prompt format, answer extraction and grading.
        algorithm: the ask-tell search algorithm.
        config: the validated search configuration.
        spex: SPEX switches and knobs (speculation, budget, early termination);
            `create` defaults to `SpexConfig.auto(policy)`.
        dispatcher: owner of in-flight requests, shared by all queries.
        clock: time source (default monotonic; the simulator passes virtual time).
    """

    policy: Backend
    reward: RewardModel
    task: Task
    algorithm: SearchAlgorithm
    config: SearchConfig = field(default_factory=SearchConfig)
    spex: SpexConfig = field(default_factory=SpexConfig)
    dispatcher: Dispatcher = field(init=False)
    clock: Clock | None = None
    speculator_factory: Callable[[SearchContext, QuerySession, Problem], QuerySpeculator] | None = (
        None
    )
    """Optional (ctx, session, problem) -> Speculator; the benchmark's oracle uses it."""

    def __post_init__(self) -> None:
        budget = None
        if self.spex.speculation and self.spex.budget:
            budget = BudgetController(
                factor=self.spex.budget_factor,
                load_aware=self.spex.budget_load_aware,
                fair=self.spex.budget_fair,
                tokens_per_request=self.config.step_max_tokens / 2,
                awaiting_load_report=self.policy.capabilities.reports_load,
                free_batch=self.policy.capabilities.free_batch,
                policy_speculative_decoding=self.policy.capabilities.speculative_decoding,
            )
        extra = {} if self.clock is None else {"clock": self.clock}
        self.dispatcher = Dispatcher(
            self.policy,
            self.reward,
            request_timeout_s=self.config.request_timeout_s,
            budget=budget,
            **extra,  # type: ignore[arg-type]
        )

    @classmethod
    def create(
        cls,
        policy: Backend | None = None,
        reward: RewardModel | None = None,
        *,
        config: SearchConfig | None = None,
        task: Task | str | None = None,
        algorithm: SearchAlgorithm | str | None = None,
        spex: SpexConfig | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> SearchContext:
        """Fill in defaults: config from `options`, task and algorithm from the config,
        the embedded CPU engine as policy and the task's default reward.

        `task` and `algorithm` take a name (a config field) or a ready object.
        """
        from spex_graph.algorithms import make_algorithm
        from spex_graph.defaults import default_backend, default_reward
        from spex_graph.tasks import get_task

        if isinstance(task, str):
            options["task"], task = task, None
        elif task is not None:
            options.setdefault("task", task.name)
        if isinstance(algorithm, str):
            options["algorithm"], algorithm = algorithm, None
        elif algorithm is not None:
            options.setdefault("algorithm", algorithm.name)
        if config is not None and options:
            config = config.model_copy(update=options)
            config = SearchConfig.make(**config.model_dump())
        cfg = config if config is not None else SearchConfig.make(**options)
        task = task if task is not None else get_task(cfg.task)
        if algorithm is None:
            algorithm = make_algorithm(
                cfg.algorithm,
                cfg.width,
                **{"max_depth": cfg.max_depth or task.max_depth, **cfg.algorithm_options},
            )
        policy = policy if policy is not None else default_backend()
        reward = reward if reward is not None else default_reward(task.name, policy)
        spex = spex if spex is not None else SpexConfig.auto(policy)
        return cls(policy, reward, task, algorithm, cfg, spex=spex, clock=clock)

    @property
    def max_depth(self) -> int:
        """The depth cap in force (config, else the task's default)."""
        return self.config.max_depth or self.task.max_depth
