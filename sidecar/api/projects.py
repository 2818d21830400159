"""`/v1/projects`: list (filters: ``sidecar.store.models.ProjectQuery``), get, create, patch, delete."""

from sidecar.api.crud import resource_routes
from sidecar.store.entities import PROJECTS

routes = resource_routes(PROJECTS, "/v1/projects")
