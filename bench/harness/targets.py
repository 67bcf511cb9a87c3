"""The ratios the generated apps should reach against the reference apps, and whether a run met them.

Speed targets live here, in the benchmark, and never in the tests. Each ratio is one of medians over
the rounds of one run, in which the apps alternate: the same figures as RESULTS.md's tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .apps import BASELINE, ROUTES, App
from .common import ratio as ratio_of


@dataclass(frozen=True)
class Measure:
    label: str
    reference: str
    """The app whose figure is the denominator."""
    figure: Callable[[App, str], float]
    """An app's figure on a route."""


RPS_VS_RAW = Measure("req/s ÷ raw", BASELINE, lambda app, route: app.at_saturation(route, "rps"))
P99_VS_RAW = Measure(
    "p99 ÷ raw, at saturation", BASELINE, lambda app, route: app.at_saturation(route, "p99_us")
)
FIXED_RATE_P99_VS_RAW = Measure(
    "p99 ÷ raw, at a fixed rate", BASELINE, lambda app, route: app.at_fixed_rate(route, "p99_us")
)
RPS_VS_SEED = Measure(
    "req/s ÷ seed-tutorial", "seed-tutorial", lambda app, route: app.at_saturation(route, "rps")
)


@dataclass(frozen=True)
class Target:
    kind: str
    """What the apps are, for the table: "gen-async", "gen-sync"."""
    apps: tuple[str, str]
    """The apps it applies to: the int-keyed one, then the uuid-keyed one."""
    route: str
    measure: Measure
    bound: float
    at_least: bool

    @property
    def label(self) -> str:
        return f"{self.kind}: {ROUTES[self.route]}, {self.measure.label}"

    @property
    def requirement(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.bound:g}"

    def ratio(self, app: App, reference: App) -> float:
        return ratio_of(
            self.measure.figure(app, self.route), self.measure.figure(reference, self.route)
        )

    def met(self, measured: float) -> bool:
        return measured >= self.bound if self.at_least else measured <= self.bound


# The generated apps with their defaults (pool_pre_ping on).
ASYNC = ("gen-async-int", "gen-async-uuid")
SYNC = ("gen-sync-int", "gen-sync-uuid")

TARGETS = [
    Target("gen-async", ASYNC, "get", RPS_VS_RAW, 0.45, at_least=True),
    Target("gen-async", ASYNC, "list", RPS_VS_RAW, 0.6, at_least=True),
    Target("gen-async", ASYNC, "post", RPS_VS_RAW, 0.4, at_least=True),
    *(Target("gen-async", ASYNC, route, P99_VS_RAW, 2.0, at_least=False) for route in ROUTES),
    *(
        Target("gen-async", ASYNC, route, FIXED_RATE_P99_VS_RAW, 1.5, at_least=False)
        for route in ROUTES
    ),
    *(Target("gen-async", ASYNC, route, RPS_VS_SEED, 1.5, at_least=True) for route in ROUTES),
    Target("gen-sync", SYNC, "get", RPS_VS_RAW, 0.3, at_least=True),
]
