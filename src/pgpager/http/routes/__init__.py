"""Route handlers, one module per resource. Each parses, calls one service, and renders."""
