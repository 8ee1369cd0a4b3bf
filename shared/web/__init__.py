"""HTTP plumbing shared by the services: middlewares, health, metrics, OpenAPI."""

from shared.web.app import ServiceInfo, build_app
from shared.web.serve import serve
from shared.web.endpoints import Endpoint
from shared.web.health import READINESS_CHECKS

__all__ = ["READINESS_CHECKS", "ServiceInfo", "Endpoint", "build_app", "serve"]
