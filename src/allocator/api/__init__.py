"""The HTTP service: asynchronous plans in worker processes, persistent jobs, region-scoped keys.

``create_app(settings)`` builds the FastAPI app; ``allocator serve`` runs it with uvicorn.
See README "HTTP service" for the resources, settings and scope rules.
"""

from allocator.api.app import create_app
from allocator.api.settings import Settings

__all__ = ["Settings", "create_app"]
