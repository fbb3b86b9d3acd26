"""Services: what the HTTP API and the CLI both call. They validate, then use the store."""
