"""The scenarios, in the order they run, and how long each may take."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """One row pair of the table: a Lua script at one concurrency."""

    name: str
    script: str  # lua/<script>.lua
    concurrency: int
    #: One connection per wrk thread, so a thread's requests can depend on its last answer.
    chained: bool = False
    description: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} c={self.concurrency}"

    @property
    def threads(self) -> int:
        return self.concurrency if self.chained else min(self.concurrency, 2)


@dataclass(frozen=True)
class Budget:
    """Bounds for every scenario: time, responses, warm-up, and the seeded data's size."""

    seconds: int
    max_responses: int
    warmup_seconds: int
    warmup_responses: int
    seed_runs: int
    replay_keys: int = 100


FULL = Budget(
    seconds=10, max_responses=150_000, warmup_seconds=1, warmup_responses=200, seed_runs=10_000
)
QUICK = Budget(
    seconds=2, max_responses=20_000, warmup_seconds=1, warmup_responses=50, seed_runs=1_000
)

#: Health first (the floor), then the read scenarios while the database holds only the seeded
#: runs, then the writers.
ALL: tuple[Scenario, ...] = (
    *(Scenario("health", "health", c, description="GET /api/health") for c in (1, 8, 32)),
    Scenario("poll", "poll", 8, description="get_scheduled_flow_runs, 10,000 scheduled"),
    Scenario("filter", "filter", 8, description="flow_runs/filter, 200 of 10,000"),
    *(
        Scenario("create_flow_run", "create_flow_run", c, description="small parameter override")
        for c in (1, 8, 32)
    ),
    *(
        Scenario("idempotent", "idempotent", c, description="half replay an idempotency key")
        for c in (1, 8, 32)
    ),
    Scenario(
        "lifecycle", "lifecycle", 8, chained=True, description="create, PENDING, RUNNING, COMPLETED"
    ),
)


def select(names: list[str] | None) -> list[Scenario]:
    """The scenarios named (all when ``names`` is empty); health is always kept as the floor."""
    if not names:
        return list(ALL)
    unknown = set(names) - {scenario.name for scenario in ALL}
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return [s for s in ALL if s.name in names or s.name == "health"]
