"""The hub over HTTP: the /v1 API, its errors, its OpenAPI document, its listener."""
