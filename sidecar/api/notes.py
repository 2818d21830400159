"""`/v1/notes`: list (filters: ``sidecar.store.models.NoteQuery``), get, create, patch, delete."""

from sidecar.api.crud import resource_routes
from sidecar.store.entities import NOTES

routes = resource_routes(NOTES, "/v1/notes")
