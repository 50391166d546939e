// Drive toolbridge-mcp with the official TypeScript SDK (@modelcontextprotocol/sdk v1).
//
// Usage: node ts_client.mjs SCENARIO BIN DBPATH LOGDIR [EXTRA_SERVER_ARGS...]
//   SCENARIO "chain":      connect, listTools (41), create_task, process_task complete.
//   SCENARIO "tool-error": a call the server refuses must come back as an isError result.
//   SCENARIO "surface":    resources (list, templates, read), completion, prompts, subscribe.
//   SCENARIO "compact":    with --tool-mode compact: 3 tools, a task chain through
//                          write/read/search.
//
// Client.callTool validates structuredContent against the tool's outputSchema
// (cached by listTools), so every successful call below also proves the result
// matches its declared schema. Exits non-zero with a message on the first failed
// check. Run by tests/real_clients.rs with NODE_PATH unset, from the directory
// where `npm ci` installed the SDK.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const EXPECTED_TOOLS = 41; // 40 entity tools and search

class CheckFailed extends Error {}

function check(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

async function connect(bin, dbPath, logDir, extra) {
  const transport = new StdioClientTransport({
    command: bin,
    args: ["--db-path", dbPath, ...extra],
    // The SDK passes only a few default variables (HOME, PATH, ...); the rest
    // is given explicitly, as a host's config would.
    env: { TOOLBRIDGE_LOG_DIR: logDir },
    stderr: "inherit",
  });
  const client = new Client({ name: "toolbridge-ts-test", version: "1.0.0" });
  await client.connect(transport);
  const server = client.getServerVersion();
  check(server?.name === "toolbridge-mcp", `server name is ${JSON.stringify(server)}`);
  return client;
}

async function listAllTools(client, expected = EXPECTED_TOOLS) {
  const { tools, nextCursor } = await client.listTools();
  check(nextCursor === undefined, "tools/list is paginated; expected one page");
  const names = tools.map((t) => t.name);
  check(tools.length === expected, `expected ${expected} tools, got ${tools.length}: ${names}`);
  for (const t of tools) {
    check(t.outputSchema !== undefined, `${t.name} has no outputSchema`);
  }
  return tools;
}

async function call(client, name, args) {
  // Throws McpError -32602 when structuredContent does not match the outputSchema.
  const result = await client.callTool({ name, arguments: args });
  const text = (result.content ?? []).map((c) => c.text ?? "").join(" ");
  check(result.isError !== true, `${name}(${JSON.stringify(args)}) failed: ${text}`);
  check(result.structuredContent !== undefined, `${name} returned no structuredContent`);
  check(JSON.stringify(JSON.parse(text)) === JSON.stringify(result.structuredContent),
    `${name}: text content is not the same JSON as structuredContent`);
  return result.structuredContent;
}

async function chain(client) {
  const tools = await listAllTools(client);
  // The SDK compiled a validator for each output schema while listing: the
  // callTool path below is the validating one, not a pass-through.
  check(typeof client.getToolOutputValidator === "function", "SDK has no getToolOutputValidator (API changed?)");
  check(client.getToolOutputValidator("process_task") !== undefined,
    "SDK compiled no output validator for process_task: callTool would skip validation");

  const title = `ts chain ${Date.now()}`;
  const task = await call(client, "create_task", { title, priority: "high", tags: ["sdk"] });
  check(task.payload.title === title, `create_task payload: ${JSON.stringify(task)}`);
  const done = await call(client, "process_task", { uid: task.uid, action: "complete" });
  check(done.uid === task.uid, `process_task answered for another uid: ${JSON.stringify(done)}`);
  check(done.payload.status === "completed", `process_task complete: status is ${done.payload.status}`);
  check(done.version > task.version, `process_task did not raise the version: ${task.version} -> ${done.version}`);
  const got = await call(client, "get_task", { uid: task.uid });
  check(got.payload.status === "completed" && got.payload.done === true, `get_task after complete: ${JSON.stringify(got)}`);
  console.log(`chain ok: ${tools.length} tools, create_task -> process_task complete -> get_task, all schema-validated`);
}

async function toolError(client) {
  await listAllTools(client);
  let result;
  try {
    result = await client.callTool({ name: "get_task", arguments: { uid: "not-a-uuid" } });
  } catch (e) {
    throw new CheckFailed(
      `a refused call (get_task with a bad uid) must resolve to an isError result the model can read, ` +
        `but the SDK threw instead: ${e?.message ?? e}`,
    );
  }
  check(result.isError === true, `get_task with a bad uid did not return isError: ${JSON.stringify(result)}`);
  // The code is in structuredContent, or (for hosts that only show text) in the text.
  const text = (result.content ?? []).map((c) => c.text ?? "").join(" ");
  const code = result.structuredContent?.code ?? (text.includes("invalid_input") ? "invalid_input" : undefined);
  check(code === "invalid_input", `error code is ${code}, expected invalid_input: ${JSON.stringify(result)}`);
  console.log("tool-error ok: isError result with code invalid_input");
}

async function surface(client) {
  const title = `ts surface ${Date.now()}`;
  const note = await call(client, "create_note", { title, content: "attached from a picker" });
  const comment = await call(client, "create_comment", { parent_type: "note", parent_uid: note.uid, content: "a remark" });
  const uri = `toolbridge://notes/${note.uid}`;

  const { resources } = await client.listResources();
  const newest = resources.slice(0, 2).map((r) => r.uri);
  check(JSON.stringify(newest) === JSON.stringify([`toolbridge://comments/${comment.uid}`, uri]),
    `not newest first (the comment, then its note): ${JSON.stringify(newest)}`);
  check(resources[1].name === title && resources[1].mimeType === "text/markdown",
    `resource entry: ${JSON.stringify(resources[1])}`);
  const { resourceTemplates } = await client.listResourceTemplates();
  check(resourceTemplates.some((t) => t.uriTemplate === "toolbridge://notes/{uid}"),
    `no notes template: ${JSON.stringify(resourceTemplates)}`);

  const { contents } = await client.readResource({ uri });
  check(contents[0].text.includes(title) && contents[0].text.includes(comment.uid),
    `resources/read lacks the title or the comment's uid: ${contents[0].text}`);

  const done = await client.complete({
    ref: { type: "ref/resource", uri: "toolbridge://notes/{uid}" },
    argument: { name: "uid", value: "ts surf" },
  });
  check(done.completion.values.includes(note.uid), `uid completion: ${JSON.stringify(done.completion)}`);

  const { prompts } = await client.listPrompts();
  check(["daily_review", "note_to_tasks", "summarize"].every((n) => prompts.some((p) => p.name === n)),
    `prompts: ${JSON.stringify(prompts.map((p) => p.name))}`);
  const prompt = await client.getPrompt({ name: "summarize", arguments: { uri } });
  check(prompt.messages.some((m) => m.content.type === "resource" && m.content.resource.uri === uri),
    `summarize does not embed ${uri}: ${JSON.stringify(prompt.messages)}`);

  // Subscribed to the note, a change made through a tool is heard.
  check(client.getServerCapabilities()?.resources?.subscribe === true, "no resources.subscribe capability");
  const heard = new Promise((resolve) =>
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => resolve(n.params.uri)));
  await client.subscribeResource({ uri });
  await call(client, "patch_note", { uid: note.uid, content: "changed while subscribed" });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed("no resources/updated within 15 s")), 15000);
  });
  const got = await Promise.race([heard, timeout]).finally(() => clearTimeout(timer));
  check(got === uri, `resources/updated for ${got}, expected ${uri}`);
  console.log("surface ok: resources, templates, read, completion, prompts, subscribe");
}

async function compact(client) {
  await listAllTools(client, 3);
  const title = `ts compact ${Date.now()}`;
  const task = await call(client, "write", { operation: "create", entity: "tasks", title, priority: "high" });
  const done = await call(client, "write", { operation: "process", entity: "tasks", uid: task.uid, action: "complete" });
  check(done.payload.status === "completed" && done.version === task.version + 1, `process complete: ${JSON.stringify(done)}`);
  const got = await call(client, "read", { operation: "get", entity: "tasks", uid: task.uid });
  check(got.payload.status === "completed", `read get after complete: ${JSON.stringify(got)}`);
  const found = await call(client, "search", { query: title, entity: "tasks" });
  check(found.hits.length === 1 && found.hits[0].uid === task.uid, `search by title: ${JSON.stringify(found)}`);
  console.log("compact ok: 3 tools, write create -> write process -> read get -> search, all schema-validated");
}

const [scenario, bin, dbPath, logDir, ...extra] = process.argv.slice(2);
const scenarios = { chain, "tool-error": toolError, surface, compact };
if (!scenarios[scenario] || !logDir) {
  console.error("usage: node ts_client.mjs chain|tool-error|surface|compact BIN DBPATH LOGDIR [EXTRA_SERVER_ARGS...]");
  process.exit(2);
}
let client;
try {
  client = await connect(bin, dbPath, logDir, extra);
  await scenarios[scenario](client);
  console.log("ts_client.mjs: all checks passed");
} catch (e) {
  const what = e instanceof CheckFailed ? "CHECK FAILED" : "ERROR";
  console.error(`ts_client.mjs: ${what}: ${e instanceof CheckFailed ? e.message : (e?.stack ?? e)}`);
  process.exitCode = 1;
} finally {
  await client?.close();
}
