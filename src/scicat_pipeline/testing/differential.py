"""Differential access tests: every response to every caller, before and after a change.

If a caller's responses from every route are identical whether a dataset exists or not, that
dataset cannot leak to the caller through any of them, hits, totals, facet counts and error codes
included. A test builds `Probe`s per route template, takes `snapshot`s of a running app with and
without the data, and compares what each `Caller` saw (`of`). `served_routes` lists every route the
app serves, so a route added later without probes can be made to fail the test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

Snapshot = dict[tuple[str, str, str], list[Any]]
"""(caller, route template, probe) → the answers."""


@dataclass
class Caller:
    name: str
    token: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@dataclass(frozen=True)
class Probe:
    """One request; `follow_next` also requests the page its `next` cursor points to (sent back
    as `search_after`, the search API's cursor parameter)."""

    params: dict[str, Any] | None = None
    body: dict[str, Any] | None = None
    path: dict[str, str] | None = None
    method: str = "GET"
    follow_next: bool = False

    def url(self, template: str) -> str:
        url = template
        for name, value in (self.path or {}).items():
            url = url.replace(f"{{{name}:path}}", value).replace(f"{{{name}}}", value)
        return url

    async def answers(self, http: httpx.AsyncClient, template: str, caller: Caller) -> list[Any]:
        response = await self._send(http, template, caller, self.params, self.body)
        answers = [answer(response, template, self)]
        if not self.follow_next:
            return answers
        cursor = response.json()["next"]
        if cursor:
            params = (
                (self.params or {}) | {"search_after": cursor} if self.method == "GET" else None
            )
            body = (self.body or {}) | {"search_after": cursor} if self.method == "POST" else None
            answers.append(
                answer(await self._send(http, template, caller, params, body), template, self)
            )
        return answers

    async def _send(
        self,
        http: httpx.AsyncClient,
        template: str,
        caller: Caller,
        params: dict[str, Any] | None,
        body: dict[str, Any] | None,
    ) -> httpx.Response:
        return await http.request(
            self.method, self.url(template), params=params, json=body, headers=caller.headers
        )


def answer(response: httpx.Response, template: str, probe: Probe) -> tuple[int, Any]:
    assert response.status_code < 500, (template, probe, response.text)
    if "json" in response.headers.get("content-type", ""):
        return response.status_code, response.json()
    return response.status_code, response.text


@dataclass(frozen=True)
class ServedRoute:
    path: str
    methods: frozenset[str]


def served_routes(routes: list[BaseRoute]) -> list[ServedRoute]:
    """Every route the app answers, with included routers flattened.

    FastAPI 0.165 keeps an included router as one `_IncludedRouter` entry in `app.routes`; its
    `effective_route_contexts()` lists the routes it serves under their full paths.
    """
    served: list[ServedRoute] = []
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                methods = getattr(context.original_route, "methods", None) or {"GET"}
                served.append(ServedRoute(context.path, frozenset(methods)))
        elif isinstance(route, Route | APIRoute):
            served.append(ServedRoute(route.path, frozenset(route.methods or {"GET"})))
        else:
            raise AssertionError(f"unknown kind of route, teach the leak test: {route!r}")
    return served


async def snapshot(
    http: httpx.AsyncClient,
    callers: list[Caller],
    routes: list[ServedRoute],
    probes: dict[str, list[Probe]],
) -> Snapshot:
    """Every caller's answers to every probe of every route."""
    taken: Snapshot = {}
    for route in routes:
        for probe in probes[route.path]:
            for caller in callers:
                taken[(caller.name, route.path, repr(probe))] = await probe.answers(
                    http, route.path, caller
                )
    return taken


def of(taken: Snapshot, caller: str) -> dict[tuple[str, str], list[Any]]:
    """What one caller saw."""
    return {(path, probe): value for (who, path, probe), value in taken.items() if who == caller}
