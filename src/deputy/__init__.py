"""deputy: a fast, lean server for the Prefect 3 REST API."""

__version__ = "0.1.0"

#: The Prefect REST API version deputy speaks (``GET /api/version``).
API_VERSION = "0.8.4"

#: The Prefect server version deputy reports on ``GET /api/admin/version``; clients compare it
#: with their own version, so it must be a 3.x release at least as new as the clients served.
PREFECT_COMPATIBLE_VERSION = "3.9.1"
