"""`/v1/clients`: list (filters: ``sidecar.store.models.ClientQuery``), get, create, patch, delete."""

from sidecar.api.crud import resource_routes
from sidecar.store.entities import CLIENTS

routes = resource_routes(CLIENTS, "/v1/clients")
