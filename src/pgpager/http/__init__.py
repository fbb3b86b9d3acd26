"""The HTTP edge: Litestar app, auth, error mapping and thin route handlers."""
