//! The MCP surface: an rmcp server handler over the catalog and the service.
//! It knows tools and results; HTTP stays behind [`Service`].

use std::sync::Arc;

use rmcp::ErrorData as McpError;
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::Value;

use crate::catalog::ToolDef;
use crate::service::Service;

/// How the tools fit together, said once instead of in forty descriptions.
pub const INSTRUCTIONS: &str = "ToolBridge notes, tasks, comments, chats and chat messages. \
Items are addressed by uid (a UUID) and carry a version that rises with every write. \
list_* returns a page; pass its nextCursor back as cursor for the next one. \
Pass an item's version as if_version to update/patch/delete to fail with a conflict instead of overwriting someone else's change. \
update_* replaces the fields it takes and clears the ones omitted; patch_* changes only the given fields; additional_fields sets other payload keys. \
A comment needs parent_type (note or task) and parent_uid; a chat message needs chat_uid of an existing chat. \
Deleted items are kept: get with include_deleted returns them. \
Items leave out the server's sync bookkeeping; raw: true on get/list returns it. \
Results are bounded: a list cut short says truncated (continue with nextCursor); an item whose long text was cut says content_truncated and next_offset (pass it as offset to get_* to read on). \
Dates are ISO 8601. \
Failed calls return {code, message, retryable, retry_after_s?}.";

#[derive(Clone)]
pub struct McpServer {
    service: Arc<Service>,
    tools: Arc<Vec<Tool>>,
}

impl McpServer {
    pub fn new(service: Arc<Service>) -> Self {
        let tools = service.catalog().tools().iter().map(to_mcp_tool).collect();
        Self {
            service,
            tools: Arc::new(tools),
        }
    }

    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }
}

pub fn to_mcp_tool(def: &ToolDef) -> Tool {
    let annotations = ToolAnnotations::new()
        .read_only(def.hints.read_only)
        .destructive(def.hints.destructive)
        .idempotent(def.hints.idempotent)
        .open_world(false);
    Tool::new_with_raw(
        def.name.clone(),
        Some(def.description.clone().into()),
        def.input_schema.clone(),
    )
    .with_raw_output_schema(def.output_schema.clone())
    .with_annotations(annotations)
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "toolbridge-mcp",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // An unknown tool is protocol misuse, not a tool failure.
        let Some(tool) = self.service.catalog().get(&request.name) else {
            return Err(McpError::invalid_params(
                self.service.catalog().refusal(&request.name),
                None,
            ));
        };
        let result = match self
            .service
            .run(tool, request.arguments, context.ct.clone())
            .await
        {
            Ok(value) => success(value),
            // The error travels as JSON text, not `structuredContent`: the
            // Inspector and the TypeScript SDK validate structured content
            // against the tool's output schema even on errors, and would
            // swallow the error the model needs to see.
            Err(error) => CallToolResult::error(vec![ContentBlock::text(
                serde_json::to_string(&error).unwrap_or_else(|_| error.summary()),
            )]),
        };
        Ok(result.into())
    }
}

/// `structuredContent` plus the same JSON as text: several hosts hand only the
/// text content to the model. A stale answer adds one plain sentence.
fn success(value: Value) -> CallToolResult {
    let notice = crate::service::stale_notice(&value);
    let mut result = CallToolResult::structured(value);
    if let Some(notice) = notice {
        result.content.push(ContentBlock::text(notice));
    }
    result
}
