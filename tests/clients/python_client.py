"""Drive toolbridge-mcp with the official Python MCP SDK (`mcp` 2.3).

Usage: python_client.py BIN DBPATH LOGDIR [EXTRA_SERVER_ARGS...]

Connects twice: once in the handshake era (low-level `stdio_client` +
`ClientSession.initialize()`), once through `mcp.Client(mode="auto")`, which
probes 2026-07-28 `server/discover` first. Each connection lists the tools and
checks their schemas, and exercises resources, templates, completion,
prompts and a subscription (`resources/subscribe`, `subscriptions/listen`); the modern one then runs a chain of calls across notes and comments,
and an invalid call. With `--tool-mode compact` among the server's arguments
the chain goes through the compact tools (`search`, `read`, `write`) instead.
Exits non-zero with a message on the first failed check. Run by
tests/real_clients.rs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
import warnings
from typing import Any

import jsonschema
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.subscriptions import ResourceUpdated
from mcp.types import PromptReference, ResourceTemplateReference

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


def compact(argv: list[str]) -> bool:
    extra = argv[3:]
    return any(a == "--tool-mode" and b == "compact" for a, b in zip(extra, extra[1:]))


def check_tools(tools: list[Any], era: str, expected: int) -> None:
    names = [t.name for t in tools]
    check(len(tools) == expected, f"{era}: expected {expected} tools, got {len(tools)}: {names}")
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


async def check_surface(client: Client | ClientSession, era: str, note: dict[str, Any]) -> None:
    """Resources, templates, completion and prompts, about `note` (just created)."""
    uid, title = note["uid"], note["payload"]["title"]
    uri = f"toolbridge://notes/{uid}"
    listed = await client.list_resources()
    mine = [r for r in listed.resources if str(r.uri) == uri]
    check(len(mine) == 1, f"{era}: resources/list lacks {uri}: {[str(r.uri) for r in listed.resources]}")
    check(mine[0].name == title, f"{era}: resource name {mine[0].name!r}, expected the title {title!r}")
    check(mine[0].mime_type == "text/markdown", f"{era}: resource mimeType {mine[0].mime_type!r}")
    check(str(listed.resources[0].uri) == uri, f"{era}: the newest item is not listed first: {listed.resources[0]}")

    templates = await client.list_resource_templates()
    patterns = sorted(t.uri_template for t in templates.resource_templates)
    check(
        patterns == sorted(f"toolbridge://{p}/{{uid}}" for p in ("notes", "tasks", "comments", "chats")),
        f"{era}: resource templates are {patterns}",
    )

    read = await client.read_resource(uri)
    text = read.contents[0].text
    check(title in text and uid in text, f"{era}: resources/read of {uri} lacks its title or uid: {text!r}")

    done = await client.complete(
        ResourceTemplateReference(uri="toolbridge://notes/{uid}"), {"name": "uid", "value": title[:12]}
    )
    check(uid in done.completion.values, f"{era}: completing {title[:12]!r} did not offer {uid}: {done.completion}")

    prompts = await client.list_prompts()
    names = sorted(p.name for p in prompts.prompts)
    check(names == ["daily_review", "note_to_tasks", "summarize"], f"{era}: prompts are {names}")
    done = await client.complete(PromptReference(name="summarize"), {"name": "uri", "value": title[:12]})
    check(uri in done.completion.values, f"{era}: summarize's uri completion lacks {uri}: {done.completion}")
    prompt = await client.get_prompt("summarize", {"uri": uri})
    embedded = [
        m.content.resource
        for m in prompt.messages
        if getattr(m.content, "type", None) == "resource"
    ]
    check(
        any(str(r.uri) == uri and title in r.text for r in embedded),
        f"{era}: summarize does not embed {uri}: {prompt.messages}",
    )


def updated_uri(message: Any) -> str | None:
    """The uri of a `notifications/resources/updated`, else None."""
    message = getattr(message, "root", message)
    if getattr(message, "method", None) != "notifications/resources/updated":
        return None
    return str(message.params.uri)


async def legacy_era(argv: list[str]) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(message: Any) -> None:
        if (uri := updated_uri(message)) is not None:
            heard.put_nowait(uri)

    async with stdio_client(server_params(argv)) as (read, write):
        async with ClientSession(read, write, message_handler=on_message) as session:
            init = await session.initialize()
            check(init.server_info.name == "toolbridge-mcp", f"legacy: server name is {init.server_info.name!r}")
            check(init.capabilities.tools is not None, "legacy: server does not declare the tools capability")
            listed = await session.list_tools()
            check(listed.next_cursor is None, "legacy: tools/list is paginated; expected one page")
            check_tools(listed.tools, "legacy", 3 if compact(argv) else EXPECTED_TOOLS)
            # One call in this era too, through the session's own output-schema validation.
            title = f"legacy era {uuid.uuid4()}"
            if compact(argv):
                note = await call(session, "write", {"operation": "create", "entity": "notes", "title": title})
            else:
                note = await call(session, "create_note", {"title": title})
            check(note["payload"]["title"] == title, f"legacy: create_note returned {note}")
            await check_surface(session, "legacy", note)

            # Subscribed to the note, a change made through a tool is heard.
            check(init.capabilities.resources.subscribe is True, f"legacy: no resources.subscribe: {init.capabilities}")
            uri = f"toolbridge://notes/{note['uid']}"
            with warnings.catch_warnings():
                # Deprecated in favour of subscriptions/listen, and exactly what this era uses.
                warnings.simplefilter("ignore")
                await session.subscribe_resource(uri)
            patch = {"uid": note["uid"], "title": f"{title} (heard)"}
            if compact(argv):
                await call(session, "write", {"operation": "patch", "entity": "notes", **patch})
            else:
                await call(session, "patch_note", patch)
            got = await asyncio.wait_for(heard.get(), 15)
            check(got == uri, f"legacy: resources/updated for {got}, expected {uri}")
            print(f"legacy era: {init.protocol_version}, {len(listed.tools)} tools, resources, prompts, subscribe ok")


async def modern_era(argv: list[str]) -> None:
    async with Client(server_params(argv), mode="auto") as client:
        check(
            client.protocol_version == MODERN_VERSION,
            f"auto mode negotiated {client.protocol_version!r}, expected {MODERN_VERSION} via server/discover",
        )
        listed = await client.list_tools()
        if compact(argv):
            check_tools(listed.tools, "modern", 3)
            await compact_chain(client)
            return
        check_tools(listed.tools, "modern", EXPECTED_TOOLS)

        title = f"python chain {uuid.uuid4()}"
        note = await call(client, "create_note", {"title": title, "content": "from the Python SDK", "tags": ["sdk"]})
        note_uid = note["uid"]
        check(note["payload"]["title"] == title, f"create_note payload: {note}")
        check(note["version"] == 1, f"create_note version: {note}")
        await check_surface(client, "modern", note)
        await check_listen(client, note, lambda: call(client, "patch_note", {"uid": note_uid, "content": "heard"}))

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


async def check_listen(client: Client, note: dict[str, Any], change: Any) -> None:
    """A `subscriptions/listen` stream naming the note hears `change` of it."""
    uri = f"toolbridge://notes/{note['uid']}"
    async with client.listen(resource_subscriptions=[uri]) as sub:
        honored = sub.honored.resource_subscriptions or []
        check(uri in [str(u) for u in honored], f"modern: listen did not honor {uri}: {sub.honored}")
        await change()
        event = await asyncio.wait_for(sub.__anext__(), 15)
        check(
            isinstance(event, ResourceUpdated) and str(event.uri) == uri,
            f"modern: listen heard {event}, expected resources/updated for {uri}",
        )


async def compact_chain(client: Client) -> None:
    """The modern chain through the three compact tools."""
    title = f"compact chain {uuid.uuid4()}"
    write = lambda operation, entity, **args: call(  # noqa: E731
        client, "write", {"operation": operation, "entity": entity, **args}
    )
    read = lambda operation, entity, **args: call(  # noqa: E731
        client, "read", {"operation": operation, "entity": entity, **args}
    )
    note = await write("create", "notes", title=title, content="from the Python SDK", tags=["sdk"])
    note_uid = note["uid"]
    check(note["payload"]["title"] == title and note["version"] == 1, f"write create notes: {note}")
    await check_surface(client, "modern compact", note)
    await check_listen(client, note, lambda: write("patch", "notes", uid=note_uid, content="heard"))
    comment = await write("create", "comments", parent_type="note", parent_uid=note_uid, content="a comment")
    listed = await read("list", "comments", parent_uid=note_uid)
    check([c["uid"] for c in listed["items"]] == [comment["uid"]], f"read list comments(parent_uid): {listed}")
    resolved = await write("process", "comments", uid=comment["uid"], action="resolve")
    check(resolved["payload"].get("status") == "resolved", f"write process comments resolve: {resolved}")
    found = await call(client, "search", {"query": title.split()[-1]})
    check([h["uid"] for h in found["hits"]] == [note_uid], f"search by a word of the title: {found}")
    patched = await write("patch", "notes", uid=note_uid, title=f"{title} (patched)")
    check(patched["version"] == 3, f"write patch notes: {patched}")
    deleted = await write("delete", "notes", uid=note_uid)
    check(deleted.get("deletedAt"), f"write delete notes returned no deletedAt: {deleted}")
    got = await read("get", "notes", uid=note_uid, include_deleted=True)
    check(got.get("deletedAt") and got["version"] == 4, f"read get notes(include_deleted): {got}")

    bad = await client.call_tool("write", {"operation": "archive", "entity": "notes", "title": "no uid"})
    check(bad.is_error is True, f"write archive without a uid did not return isError: {bad}")
    err = json.loads(bad.content[0].text)
    check(err.get("code") == "invalid_input", f"error code is {err.get('code')!r}, expected invalid_input: {err}")
    print(f"modern era: {client.protocol_version}, compact tools, chain of 9 calls ok, error ok")


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
