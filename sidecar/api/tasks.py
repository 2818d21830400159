"""`/v1/tasks`: list (filters: ``sidecar.store.models.TaskQuery``), get, create, patch, delete."""

from sidecar.api.crud import resource_routes
from sidecar.store.entities import TASKS

routes = resource_routes(TASKS, "/v1/tasks")
