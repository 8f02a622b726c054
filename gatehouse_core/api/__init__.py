"""The HTTP API: a FastAPI app over the registry, the gateway, the reports and API tokens.

from starlette.routing import Mount
from gatehouse_core.api import create_app
routes = [Mount("/api", app=create_app(registry=registry, gateway=gateway))]
"""

from .app import MOUNT_PATH, create_app, create_app_from_env
from .config import ApiConfig

__all__ = ["MOUNT_PATH", "ApiConfig", "create_app", "create_app_from_env"]
