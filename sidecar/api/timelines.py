"""`/v1/timelines`: list (filters: ``sidecar.store.models.TimelineQuery``), get, create, patch, delete."""

from sidecar.api.crud import resource_routes
from sidecar.store.entities import TIMELINES

routes = resource_routes(TIMELINES, "/v1/timelines")
