"""The HTTP edge shared by every router: transactions, bodies, limits, errors, OpenAPI."""
