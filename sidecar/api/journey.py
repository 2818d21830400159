"""`/v1/watches/journey`: the setup conversation that writes a watch's ``promptTemplate``
(:mod:`sidecar.ingest.journey`).

- ``POST /v1/watches/journey`` ``{watchId?}`` → 201 ``{sessionId, message, done: false, watchId,
  questionsAsked}``; 404 for an unknown ``watchId``; 503 ``model_not_configured`` /
  ``model_unavailable``.
- ``POST /v1/watches/journey/{sessionId}/messages`` ``{message}`` → ``{sessionId, message, done,
  promptTemplate?, watchId, questionsAsked}``; 404 unknown session; 409 ``journey_done`` /
  ``journey_busy``; 503 as above (the session is unchanged: send the message again).
"""

from __future__ import annotations

from aiohttp import web

from sidecar.api.io import dump, json_ok, read_body
from sidecar.appstate import INGEST
from sidecar.ingest.journey import JourneyMessage, JourneyStart, JourneyTurn


def _answer(turn: JourneyTurn, status: int = 200) -> web.Response:
    body = dump(turn)
    if body["promptTemplate"] is None:
        del body["promptTemplate"]
    return json_ok(body, status=status)


async def start_journey(request: web.Request) -> web.Response:
    body = await read_body(request, JourneyStart)
    return _answer(await request.app[INGEST].journeys.start(body), status=201)


async def journey_message(request: web.Request) -> web.Response:
    body = await read_body(request, JourneyMessage)
    return _answer(await request.app[INGEST].journeys.answer(request.match_info["sessionId"], body))


routes = [
    web.post("/v1/watches/journey", start_journey),
    web.post("/v1/watches/journey/{sessionId}/messages", journey_message),
]
