//! The protocol floor: a minimal rmcp stdio server with one `get_note` tool
//! that does no I/O and returns the same item the upstream serves. It runs in
//! this bench's own executable when `SIDECAR_BENCH_FLOOR=1` is set, on the
//! same runtime shape (multi-thread, one worker per core) and the same
//! non-blocking pipe transport as the sidecar. What the sidecar costs above
//! it is HTTP plus the sidecar's own work.

use std::process::ExitCode;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, InitializeResult,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler, ServiceExt};
use serde_json::{Value, json};

pub const ENV: &str = "SIDECAR_BENCH_FLOOR";

#[derive(Clone)]
struct Floor {
    tools: Arc<Vec<Tool>>,
    item: Arc<Value>,
}

impl ServerHandler for Floor {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("sidecar-bench-floor", "0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name != "get_note" {
            return Err(McpError::invalid_params("unknown tool", None));
        }
        Ok(CallToolResult::structured(self.item.as_ref().clone()).into())
    }
}

/// Serves the floor on stdin/stdout until stdin closes.
pub fn serve() -> ExitCode {
    let schema = json!({
        "type": "object",
        "properties": {"uid": {"type": "string", "format": "uuid"}},
        "required": ["uid"],
        "additionalProperties": false
    });
    let Value::Object(schema) = schema else {
        return ExitCode::FAILURE;
    };
    let floor = Floor {
        tools: Arc::new(vec![Tool::new("get_note", "Get one note by uid.", schema)]),
        item: Arc::new(super::upstream::note()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("floor: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match floor.serve(rmcp::transport::stdio_pipes()).await {
            Ok(running) => {
                let _ = running.waiting().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("floor: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
