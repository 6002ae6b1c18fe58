"""The HTTP service: asynchronous plans in worker processes, persistent jobs, region-scoped keys.

``create_app(settings)`` builds the FastAPI app; ``allocator serve`` runs it with uvicorn.
See docs/service.md and api/ for the resources, settings and scope rules. The service imports
a stage inside the function that needs it (explain, report, re-plan, targeting): its checking
processes run under an address-space cap and its workers fork from a preloaded server, so each
carries only what it uses.
"""

from allocator.api.app import create_app
from allocator.api.settings import Settings

__all__ = ["Settings", "create_app"]
