"""The FastMCP peer for `cargo bench --bench sidecar`.

The common way to put a REST API behind MCP in Python, as the upstream's own
Python layer did: FastMCP with one async tool, a new `httpx.AsyncClient` per
call, and a new sync session per call (POST /v1/sync/sessions, then the GET).

Configured by the bench through PEER_API_URL, PEER_TOKEN and PEER_TENANT.
"""

import os

import httpx
from fastmcp import FastMCP

API_URL = os.environ["PEER_API_URL"]
TOKEN = os.environ.get("PEER_TOKEN", "x")
TENANT = os.environ.get("PEER_TENANT", "t")

mcp = FastMCP("toolbridge-peer")


@mcp.tool
async def get_note(uid: str, include_deleted: bool = False) -> dict:
    """Get one note by uid."""
    headers = {"Authorization": f"Bearer {TOKEN}", "X-TB-Tenant-ID": TENANT}
    async with httpx.AsyncClient(base_url=API_URL, headers=headers, timeout=30.0) as client:
        session = await client.post("/v1/sync/sessions")
        session.raise_for_status()
        body = session.json()
        params = {"includeDeleted": "true"} if include_deleted else None
        note = await client.get(
            f"/v1/notes/{uid}",
            params=params,
            headers={"X-Sync-Session": str(body["id"]), "X-Sync-Epoch": str(body["epoch"])},
        )
        note.raise_for_status()
        return note.json()


if __name__ == "__main__":
    mcp.run(transport="stdio", show_banner=False)
