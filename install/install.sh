#!/bin/sh
# Build and install toolbridge-mcp, then print the configuration snippet for an
# MCP client with the installed binary's absolute path filled in.
# Run `install/install.sh --help` for usage. POSIX sh; checked with shellcheck.
set -eu

usage() {
    cat <<'EOF'
usage: install/install.sh [options] CLIENT

Builds toolbridge-mcp with
    cargo install --path <repo> --locked --root "${PREFIX:-$HOME/.local}"
then prints the configuration for CLIENT on stdout, with the installed binary's
absolute path filled in. Where to put it is printed on stderr.

CLIENT is one of:
    claude-desktop   the mcpServers entry for claude_desktop_config.json
    vscode           .vscode/mcp.json (or the user mcp.json)
    cursor           ~/.cursor/mcp.json or .cursor/mcp.json
    claude-code      the `claude mcp add` command line

options:
    --print-only BIN    skip the build; print the snippet for the binary BIN
    --api-url URL       add TOOLBRIDGE_API_URL (a ToolBridge deployment)
    --token-file PATH   add TOOLBRIDGE_TOKEN_FILE (file holding its bearer token)
    -h, --help          show this help

Without --api-url the snippet has no environment and the server uses its
embedded local API (SQLite in your data directory): nothing else to set up.

environment:
    PREFIX   install root (default: $HOME/.local; the binary goes to $PREFIX/bin)
EOF
}

die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 2
}

# A JSON string literal for $1 (escapes backslash and double quote).
json_string() {
    printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

# $1 quoted for a POSIX shell command line.
shell_word() {
    case $1 in
        *[!A-Za-z0-9_./:=@%+-]*|'') printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
        *) printf '%s' "$1" ;;
    esac
}

# Absolute path of $1 (an existing file), without resolving symlinks.
absolute() {
    dir=$(dirname -- "$1")
    base=$(basename -- "$1")
    dir=$(cd -- "$dir" && pwd) || die "cannot enter the directory of $1"
    case $dir in
        /) printf '/%s' "$base" ;;
        *) printf '%s/%s' "$dir" "$base" ;;
    esac
}

# The "env" object members, one per line with a trailing comma except the last.
env_members() {
    indent=$1
    if [ -n "$api_url" ] && [ -n "$token_file" ]; then
        printf '%s%s: %s,\n' "$indent" '"TOOLBRIDGE_API_URL"' "$(json_string "$api_url")"
        printf '%s%s: %s\n' "$indent" '"TOOLBRIDGE_TOKEN_FILE"' "$(json_string "$token_file")"
    elif [ -n "$api_url" ]; then
        printf '%s%s: %s\n' "$indent" '"TOOLBRIDGE_API_URL"' "$(json_string "$api_url")"
    fi
}

print_mcp_servers() {
    printf '{\n  "mcpServers": {\n    "toolbridge": {\n'
    printf '      "command": %s' "$(json_string "$bin")"
    if [ -n "$api_url" ]; then
        printf ',\n      "env": {\n'
        env_members '        '
        printf '      }\n'
    else
        printf '\n'
    fi
    printf '    }\n  }\n}\n'
}

print_vscode() {
    printf '{\n  "servers": {\n    "toolbridge": {\n      "type": "stdio",\n'
    printf '      "command": %s' "$(json_string "$bin")"
    if [ -n "$api_url" ]; then
        printf ',\n      "env": {\n'
        env_members '        '
        printf '      }\n'
    else
        printf '\n'
    fi
    printf '    }\n  }\n}\n'
}

print_claude_code() {
    printf 'claude mcp add --transport stdio --scope user toolbridge'
    if [ -n "$api_url" ]; then
        printf ' -e %s' "$(shell_word "TOOLBRIDGE_API_URL=$api_url")"
    fi
    if [ -n "$token_file" ]; then
        printf ' -e %s' "$(shell_word "TOOLBRIDGE_TOKEN_FILE=$token_file")"
    fi
    printf ' -- %s\n' "$(shell_word "$bin")"
}

print_only=
api_url=
token_file=
client=
while [ $# -gt 0 ]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --print-only) [ $# -ge 2 ] || die "--print-only needs the binary's path"; print_only=$2; shift 2 ;;
        --api-url) [ $# -ge 2 ] || die "--api-url needs a URL"; api_url=$2; shift 2 ;;
        --token-file) [ $# -ge 2 ] || die "--token-file needs a path"; token_file=$2; shift 2 ;;
        -*) die "unknown option: $1 (see --help)" ;;
        *) [ -z "$client" ] || die "one CLIENT only (got $client and $1)"; client=$1; shift ;;
    esac
done

case $client in
    claude-desktop|vscode|cursor|claude-code) ;;
    '') usage >&2; die "name the client: claude-desktop, vscode, cursor or claude-code" ;;
    *) die "unknown client '$client': expected claude-desktop, vscode, cursor or claude-code" ;;
esac
if [ -n "$token_file" ] && [ -z "$api_url" ]; then
    die "--token-file needs --api-url (without an API URL the embedded API is used and takes no token)"
fi

if [ -n "$print_only" ]; then
    if [ ! -f "$print_only" ] || [ ! -x "$print_only" ]; then
        die "no executable at $print_only"
    fi
    bin=$(absolute "$print_only")
else
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust from https://rustup.rs"
    repo=$(cd -- "$(dirname -- "$0")/.." && pwd)
    prefix=${PREFIX:-$HOME/.local}
    mkdir -p -- "$prefix"
    prefix=$(cd -- "$prefix" && pwd)
    printf 'install.sh: building toolbridge-mcp into %s/bin\n' "$prefix" >&2
    cargo install --path "$repo" --locked --root "$prefix" >&2
    bin=$prefix/bin/toolbridge-mcp
    [ -x "$bin" ] || die "cargo install did not produce $bin"
    case ":${PATH:-}:" in
        *":$prefix/bin:"*) ;;
        *) printf 'install.sh: note: %s/bin is not on PATH (clients use the absolute path below anyway)\n' "$prefix" >&2 ;;
    esac
fi

case $client in
    claude-desktop)
        printf 'Merge into claude_desktop_config.json (macOS: ~/Library/Application Support/Claude/, Windows: %%APPDATA%%\\Claude\\, Linux: ~/.config/Claude/), then restart Claude Desktop:\n' >&2
        print_mcp_servers ;;
    vscode)
        printf 'Merge into .vscode/mcp.json in your workspace (or run "MCP: Open User Configuration"):\n' >&2
        print_vscode ;;
    cursor)
        printf 'Merge into ~/.cursor/mcp.json (all projects) or .cursor/mcp.json (one project):\n' >&2
        print_mcp_servers ;;
    claude-code)
        printf 'Run:\n' >&2
        print_claude_code ;;
esac
