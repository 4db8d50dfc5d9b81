"""The relay: HTTP API, WebSocket hub and store. It never runs user code."""
