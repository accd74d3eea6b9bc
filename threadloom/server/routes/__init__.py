"""HTTP routes of the server, one module per resource.

A route validates the request (pydantic models: a bad body is a 422 naming the field),
authenticates the caller and hands the call to a service (``threadloom.server.services``);
what a call means lives in the services, so the HTTP layer stays thin.
"""
