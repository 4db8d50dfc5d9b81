"""`claudenest mcp serve`: the MCP server Claude Code uses to coordinate with other instances through the relay."""
