"""Drive toolbridge-mcp with the official Python MCP SDK (`mcp` 2.3).

Usage: python_client.py BIN DBPATH LOGDIR [EXTRA_SERVER_ARGS...]

Connects twice: once in the handshake era (low-level `stdio_client` +
`ClientSession.initialize()`), once through `mcp.Client(mode="auto")`, which
probes 2026-07-28 `server/discover` first. Each connection lists the tools and
checks their schemas; the modern one then runs a chain of calls across notes and
comments, and an invalid call. Exits non-zero with a message on the first failed
check. Run by tests/real_clients.rs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import jsonschema
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

EXPECTED_TOOLS = 41  # 40 entity tools and search
MODERN_VERSION = "2026-07-28"


class CheckFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def server_params(argv: list[str]) -> StdioServerParameters:
    bin_path, db_path, log_dir, *extra = argv
    # The SDK passes the server only a few default variables (HOME, PATH, ...),
    # so what the server needs from the environment is given here explicitly,
    # as a host's config would.
    return StdioServerParameters(
        command=bin_path,
        args=["--db-path", db_path, *extra],
        env={"TOOLBRIDGE_LOG_DIR": log_dir},
    )


def check_tools(tools: list[Any], era: str) -> None:
    names = [t.name for t in tools]
    check(len(tools) == EXPECTED_TOOLS, f"{era}: expected {EXPECTED_TOOLS} tools, got {len(tools)}: {names}")
    check(len(set(names)) == len(names), f"{era}: duplicate tool names: {names}")
    for tool in tools:
        for kind, schema in (("inputSchema", tool.input_schema), ("outputSchema", tool.output_schema)):
            if schema is None:
                check(kind == "outputSchema", f"{era}: {tool.name} has no {kind}")
                continue
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as e:
                raise CheckFailed(f"{era}: {tool.name}.{kind} is not a valid Draft 2020-12 schema: {e.message}") from e
        check(tool.input_schema.get("type") == "object", f"{era}: {tool.name} inputSchema type is not object")
        check(tool.output_schema is not None, f"{era}: {tool.name} has no outputSchema")
        ann = tool.annotations
        check(
            ann is not None
            and None not in (ann.read_only_hint, ann.destructive_hint, ann.idempotent_hint, ann.open_world_hint),
            f"{era}: {tool.name} does not set every annotation hint: {ann}",
        )


async def call(client: Client | ClientSession, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call a tool that must succeed; return its structuredContent."""
    result = await client.call_tool(name, args)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    check(not result.is_error, f"{name}({args}) failed: {text}")
    sc = result.structured_content
    check(isinstance(sc, dict), f"{name}({args}) returned no structuredContent: {result}")
    check(bool(text), f"{name}({args}) returned no text content")
    return sc


async def legacy_era(argv: list[str]) -> None:
    async with stdio_client(server_params(argv)) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.server_info.name == "toolbridge-mcp", f"legacy: server name is {init.server_info.name!r}")
            check(init.capabilities.tools is not None, "legacy: server does not declare the tools capability")
            listed = await session.list_tools()
            check(listed.next_cursor is None, "legacy: tools/list is paginated; expected one page")
            check_tools(listed.tools, "legacy")
            # One call in this era too, through the session's own output-schema validation.
            note = await call(session, "create_note", {"title": "legacy era"})
            check(note["payload"]["title"] == "legacy era", f"legacy: create_note returned {note}")
            print(f"legacy era: {init.protocol_version}, {len(listed.tools)} tools, create_note ok")


async def modern_era(argv: list[str]) -> None:
    async with Client(server_params(argv), mode="auto") as client:
        check(
            client.protocol_version == MODERN_VERSION,
            f"auto mode negotiated {client.protocol_version!r}, expected {MODERN_VERSION} via server/discover",
        )
        listed = await client.list_tools()
        check_tools(listed.tools, "modern")

        title = f"python chain {uuid.uuid4()}"
        note = await call(client, "create_note", {"title": title, "content": "from the Python SDK", "tags": ["sdk"]})
        note_uid = note["uid"]
        check(note["payload"]["title"] == title, f"create_note payload: {note}")
        check(note["version"] == 1, f"create_note version: {note}")

        comment = await call(
            client,
            "create_comment",
            {"parent_type": "note", "parent_uid": note_uid, "content": "a comment"},
        )
        comment_uid = comment["uid"]
        check(comment["payload"].get("parentUid") == note_uid, f"comment parentUid not mapped: {comment}")
        check(comment["payload"].get("parentType") == "note", f"comment parentType not mapped: {comment}")

        listed_comments = await call(client, "list_comments", {"parent_uid": note_uid})
        found = [c for c in listed_comments["items"] if c["uid"] == comment_uid]
        check(len(found) == 1, f"list_comments(parent_uid) did not find the comment: {listed_comments}")
        check(
            all(c["payload"].get("parentUid") == note_uid for c in listed_comments["items"]),
            f"list_comments(parent_uid) returned other parents' comments: {listed_comments}",
        )

        resolved = await call(client, "process_comment", {"uid": comment_uid, "action": "resolve"})
        check(resolved["payload"].get("status") == "resolved", f"process_comment resolve: {resolved}")

        archived = await call(client, "archive_note", {"uid": note_uid})
        check(archived["payload"].get("status") == "archived", f"archive_note: {archived}")

        deleted = await call(client, "delete_note", {"uid": note_uid})
        check(deleted.get("deletedAt"), f"delete_note returned no deletedAt: {deleted}")

        got = await call(client, "get_note", {"uid": note_uid, "include_deleted": True})
        check(got["uid"] == note_uid and got.get("deletedAt"), f"get_note(include_deleted) has no deletedAt: {got}")
        check(got["payload"]["title"] == title, f"get_note(include_deleted) lost the title: {got}")

        bad = await client.call_tool("get_note", {"uid": "not-a-uuid"})
        check(bad.is_error is True, f"get_note with a bad uid did not return isError: {bad}")
        # Errors travel as JSON text: structuredContent must match the output
        # schema, which describes the item, not the error.
        check(bad.structured_content is None, f"error result carries structuredContent: {bad}")
        err = json.loads(bad.content[0].text)
        check(isinstance(err, dict), f"error text is not a JSON object: {bad}")
        check(err.get("code") == "invalid_input", f"error code is {err.get('code')!r}, expected invalid_input: {err}")
        check(bool(err.get("message")), f"error result has no message: {err}")
        print(f"modern era: {client.protocol_version}, {len(listed.tools)} tools, chain of 8 calls ok, error ok")


async def main(argv: list[str]) -> None:
    await legacy_era(argv)
    await modern_era(argv)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    try:
        asyncio.run(main(sys.argv[1:]))
    except CheckFailed as failure:
        print(f"python_client.py: CHECK FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print("python_client.py: all checks passed")
