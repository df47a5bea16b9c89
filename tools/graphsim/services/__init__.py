"""Microsoft Graph v1.0 services: one module per service, each with `register(router, ...)`."""
