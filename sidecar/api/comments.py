"""`/v1/tasks/{taskId}/comments`: a task's comments (list, get, create, patch, delete)."""

from sidecar.api.crud import resource_routes
from sidecar.store.entities import TASK_COMMENTS

routes = resource_routes(TASK_COMMENTS, "/v1/tasks/{taskId}/comments", parent=("taskId", "task_id"))
