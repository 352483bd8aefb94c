"""The HTTP API (aiohttp): OSDI exports, downloads, health and the OpenAPI document."""
