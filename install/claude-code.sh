#!/bin/sh
# Register toolbridge-mcp with Claude Code (https://code.claude.com/docs/en/mcp).
# Replace /ABSOLUTE/PATH/TO/toolbridge-mcp with the installed binary, or let
# `install/install.sh claude-code` print this command with the path filled in.
#
# On the embedded local API (no setup; data in SQLite in your data directory):
#   claude mcp add --transport stdio --scope user toolbridge -- /ABSOLUTE/PATH/TO/toolbridge-mcp
#
# On a ToolBridge deployment: pass its URL and a token file with -e.
set -eu
claude mcp add --transport stdio --scope user toolbridge \
  -e TOOLBRIDGE_API_URL=https://api.example.com \
  -e TOOLBRIDGE_TOKEN_FILE=/ABSOLUTE/PATH/TO/toolbridge-token \
  -- /ABSOLUTE/PATH/TO/toolbridge-mcp
