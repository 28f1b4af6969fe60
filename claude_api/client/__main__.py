"""`python -m claude_api.client`: the same as the `claude-api` command."""

from claude_api.client.app import main

main()
