"""The `claude-api` command line."""
