//! The MCP surface: an rmcp server handler over the catalog and the service.
//! It knows tools and results; HTTP stays behind [`Service`].
//!
//! It also forwards [`crate::notices`] as MCP log messages
//! (`notifications/message`) to a client that asked for them, as each era
//! asks: `logging/setLevel` once for the session after `initialize`, or a
//! level in each request's `_meta` in the 2026-07-28 era, where only that
//! request's peer may carry them, before its response. A client that did not
//! ask gets nothing, and nothing is built for it.
//!
//! Resource subscriptions (both eras) are [`crate::subscriptions`]'s; this
//! handler only hands them over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use rmcp::ErrorData as McpError;
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    CompletionInfo, ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    Implementation, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Reference, Resource, ResourceContents,
    ResourceTemplate, ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter,
    Tool, ToolAnnotations, UnsubscribeRequestParams,
};
#[allow(deprecated)] // MCP logging: deprecated by SEP-2577, still what hosts show.
use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam, SetLevelRequestParams};
use rmcp::service::{Peer, RequestContext, RoleServer, SubscriptionContext};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::catalog::ToolDef;
use crate::error::ToolError;
use crate::notices::{self, Level, Notice};
use crate::service::{Answer, Service};
use crate::subscriptions::Subscriptions;

/// The `_meta` key of a 2026-07-28 request's log level.
const LOG_LEVEL_META: &str = "io.modelcontextprotocol/logLevel";
/// The `logger` of every log message sent.
const LOGGER: &str = "toolbridge-mcp";

/// How the tools fit together, said once instead of in forty descriptions.
pub const INSTRUCTIONS: &str = "ToolBridge notes, tasks, comments, chats and chat messages. \
Items are addressed by uid (a UUID) and carry a version that rises with every write. \
list_* returns a page; pass its nextCursor back unchanged as cursor for the next one. \
Pass an item's version as if_version to update/patch/delete to fail with a conflict instead of overwriting someone else's change. \
update_* replaces the fields it takes and clears the ones omitted; patch_* changes only the given fields; additional_fields sets other payload keys. \
A comment needs parent_type (note or task) and parent_uid; a chat message needs chat_uid of an existing chat. \
Deleted items are kept: get with include_deleted returns them. \
Items leave out the server's sync bookkeeping; raw: true on get/list returns it. \
Results are bounded: a list cut short says truncated (continue with nextCursor); an item whose long text was cut says content_truncated and next_offset (pass it as offset to get_* to read on). \
Dates are ISO 8601. \
Failed calls return {code, message, retryable, retry_after_s?}.";

const MARKDOWN: &str = "text/markdown";

#[derive(Clone)]
pub struct McpServer {
    service: Arc<Service>,
    tools: Arc<Vec<Tool>>,
    /// The `initialize` era's log level and the task that forwards notices.
    session_log: Arc<SessionLog>,
    subscriptions: Arc<Subscriptions>,
}

impl McpServer {
    pub fn new(service: Arc<Service>) -> Self {
        let tools = service.catalog().tools().iter().map(to_mcp_tool).collect();
        Self {
            subscriptions: Arc::new(Subscriptions::new(service.clone())),
            service,
            tools: Arc::new(tools),
            session_log: Arc::default(),
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
    #[allow(deprecated)] // `enable_logging`: see the imports.
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .enable_completions()
            .enable_logging()
            .build();
        // Only the replica sees changes: without it, nothing to promise.
        if self.subscriptions.available()
            && let Some(resources) = &mut capabilities.resources
        {
            resources.subscribe = Some(true);
            resources.list_changed = Some(true);
        }
        InitializeResult::new(capabilities)
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

    /// The user's items, most recently updated first (from the replica),
    /// a page at a time.
    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        if !is_modern(&context) && self.subscriptions.available() {
            self.subscriptions.listed(&context.peer);
        }
        let cursor = request.and_then(|r| r.cursor);
        let (listed, next) = self
            .service
            .resources(self.service.catalog().entities(), cursor)
            .await
            .map_err(|e| McpError::invalid_params(e.summary(), None))?;
        let resources = listed
            .into_iter()
            .map(|r| {
                let resource = Resource::new(r.uri, r.name).with_mime_type(MARKDOWN);
                match r.size {
                    Some(size) => resource.with_size(size),
                    None => resource,
                }
            })
            .collect();
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = next;
        Ok(result)
    }

    /// One template per entity that is a resource.
    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let templates = crate::service::resource_entities(self.service.catalog().entities())
            .into_iter()
            .map(|e| {
                ResourceTemplate::new(
                    format!("{}{}/{{uid}}", crate::service::RESOURCE_SCHEME, e.plural),
                    e.singular,
                )
                .with_description(format!("A {} as markdown, by uid", e.noun))
                .with_mime_type(MARKDOWN)
            })
            .collect();
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let text = self
            .service
            .read_resource(self.service.catalog().entities(), &request.uri)
            .await
            .map_err(|e| match e.code {
                crate::error::ErrorCode::NotFound | crate::error::ErrorCode::Gone => {
                    McpError::resource_not_found(e.summary(), None)
                }
                _ => McpError::internal_error(e.summary(), None),
            })?;
        let contents = ResourceContents::text(text, request.uri).with_mime_type(MARKDOWN);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    /// The `initialize` era: `uri` is heard updated until unsubscribed.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if !self.subscriptions.available() {
            return Err(McpError::method_not_found::<
                rmcp::model::SubscribeRequestMethod,
            >());
        }
        if !self.subscriptions.accepts(&request.uri) {
            return Err(McpError::invalid_params(
                format!("not a resource of this server: {}", request.uri),
                None,
            ));
        }
        self.subscriptions.subscribe(&context.peer, request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions.unsubscribe(&request.uri);
        Ok(())
    }

    /// The 2026-07-28 era: a stream accepts the resources of this server it
    /// names, and list changes if asked. `None` (no such method) without
    /// the replica.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        if !self.subscriptions.available() {
            return None;
        }
        let uris = requested
            .resource_subscriptions
            .iter()
            .flatten()
            .filter(|uri| self.subscriptions.accepts(uri))
            .cloned();
        let accepted = SubscriptionFilter::builder().resource_subscriptions(uris);
        Some(if requested.resources_list_changed == Some(true) {
            accepted.resources_list_changed().build()
        } else {
            accepted.build()
        })
    }

    /// The 2026-07-28 era: one stream, heard until the client cancels it.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let accepted = context.accepted();
        let uris = accepted.resource_subscriptions.clone().unwrap_or_default();
        let list_changed = accepted.resources_list_changed == Some(true);
        self.subscriptions
            .stream(
                context.sink().clone(),
                uris,
                list_changed,
                context.cancelled(),
            )
            .await;
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let catalog = self.service.catalog();
        let read_only = catalog.tools().iter().all(|t| t.hints.read_only);
        Ok(ListPromptsResult::with_all_items(crate::prompts::list(
            catalog.entities(),
            read_only,
        )))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let catalog = self.service.catalog();
        let read_only = catalog.tools().iter().all(|t| t.hints.read_only);
        if !crate::prompts::list(catalog.entities(), read_only)
            .iter()
            .any(|p| p.name == request.name)
        {
            return Err(McpError::invalid_params(
                format!("unknown prompt: {}", request.name),
                None,
            ));
        }
        let args = request.arguments.unwrap_or_default();
        let (description, messages) = crate::prompts::get(&self.service, &request.name, &args)
            .await
            .map_err(|e| match e.code {
                crate::error::ErrorCode::InvalidInput
                | crate::error::ErrorCode::NotFound
                | crate::error::ErrorCode::Gone => McpError::invalid_params(e.summary(), None),
                _ => McpError::internal_error(e.summary(), None),
            })?;
        Ok(GetPromptResult::new(messages)
            .with_description(description)
            .into())
    }

    /// Completes a resource template's `uid`, and the prompts' `note` and
    /// `uri`, from item titles.
    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let enabled = self.service.catalog().entities();
        let typed = &request.argument.value;
        let notes = format!("{}notes/{{uid}}", crate::service::RESOURCE_SCHEME);
        let values = match (&request.r#ref, request.argument.name.as_str()) {
            (Reference::Resource(template), "uid") => {
                self.service
                    .complete_uid(enabled, &template.uri, typed)
                    .await
            }
            (Reference::Prompt(prompt), "note") if prompt.name == "note_to_tasks" => {
                self.service.complete_uid(enabled, &notes, typed).await
            }
            (Reference::Prompt(prompt), "uri") if prompt.name == "summarize" => {
                self.service.complete_uri(enabled, typed).await
            }
            _ => Ok(Vec::new()),
        }
        .map_err(|e| McpError::internal_error(e.summary(), None))?;
        let info = CompletionInfo::new(values).map_err(|e| McpError::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    /// The `initialize` era: from now on, notices at or above `level` go to
    /// this session's client as they happen. (The 2026-07-28 era has no
    /// `logging/setLevel`: the level comes with each request.)
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if is_modern(&context) {
            return Err(McpError::method_not_found::<
                rmcp::model::SetLevelRequestMethod,
            >());
        }
        self.session_log.set(request.level.into(), &context.peer);
        Ok(())
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
        // The 2026-07-28 era: notices raised while this request runs go back
        // through its own peer, before its response, if it asked for them.
        let mut heard = request_level(&context)?.map(|level| (level, notices::hub().subscribe()));
        let result = match self
            .service
            .answer(tool, request.arguments, context.ct.clone())
            .await
        {
            Ok(answer) => success(answer),
            Err(error) => tool_error(&error),
        };
        if let Some((level, heard)) = &mut heard {
            send_heard(heard, *level, &context.peer).await;
        }
        Ok(result.into())
    }
}

/// A request of the 2026-07-28 era (no `initialize`; the version travels in
/// each request's `_meta`).
fn is_modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .meta
        .protocol_version()
        .is_some_and(|version| !version.has_initialize())
}

/// The log level a 2026-07-28 request asks for in its `_meta`, if any. One
/// that is there but not a level is refused (-32602): rmcp does not check it.
fn request_level(context: &RequestContext<RoleServer>) -> Result<Option<Level>, McpError> {
    if !is_modern(context) || !context.meta.contains_key(LOG_LEVEL_META) {
        return Ok(None);
    }
    #[allow(deprecated)]
    match context.meta.log_level() {
        Some(level) => Ok(Some(level.into())),
        None => Err(McpError::invalid_params(
            format!(
                "_meta[\"{LOG_LEVEL_META}\"] must be one of debug, info, notice, warning, error, critical, alert, emergency"
            ),
            None,
        )),
    }
}

/// Sends what `heard` holds at or above `level` through `peer`, in order.
async fn send_heard(
    heard: &mut broadcast::Receiver<Notice>,
    level: Level,
    peer: &Peer<RoleServer>,
) {
    loop {
        match heard.try_recv() {
            Ok(notice) if notice.level() >= level => {
                // A client gone mid-request has nothing to hear.
                if send(peer, &notice).await.is_err() {
                    return;
                }
            }
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return,
        }
    }
}

#[allow(deprecated)]
async fn send(peer: &Peer<RoleServer>, notice: &Notice) -> Result<(), rmcp::service::ServiceError> {
    let param = LoggingMessageNotificationParam::new(level_of(notice.level()), notice.data())
        .with_logger(LOGGER);
    peer.notify_logging_message(param).await
}

/// The `initialize` era's logging: the level the client set (none until it
/// sets one: then it hears nothing) and the one task that forwards notices
/// to it, stopped when the session's handler is dropped.
#[derive(Default)]
struct SessionLog {
    /// 0: not set; else the [`Level`]'s rank plus one.
    level: Arc<AtomicU8>,
    forwarding: AtomicBool,
    stop: CancellationToken,
}

impl SessionLog {
    fn set(&self, level: Level, peer: &Peer<RoleServer>) {
        self.level.store(level as u8 + 1, Ordering::Relaxed);
        if self.forwarding.swap(true, Ordering::Relaxed) {
            return;
        }
        // Subscribed before `logging/setLevel` is answered: whatever
        // happens after the answer is heard.
        let mut heard = notices::hub().subscribe();
        let (level, stop, peer) = (self.level.clone(), self.stop.clone(), peer.clone());
        tokio::spawn(async move {
            loop {
                let notice = tokio::select! {
                    _ = stop.cancelled() => return,
                    notice = heard.recv() => notice,
                };
                match notice {
                    Ok(notice) if notice.level() as u8 + 1 >= level.load(Ordering::Relaxed) => {
                        if send(&peer, &notice).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}

impl Drop for SessionLog {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[allow(deprecated)]
impl From<LoggingLevel> for Level {
    fn from(level: LoggingLevel) -> Self {
        match level {
            LoggingLevel::Debug => Level::Debug,
            LoggingLevel::Info => Level::Info,
            LoggingLevel::Notice => Level::Notice,
            LoggingLevel::Warning => Level::Warning,
            LoggingLevel::Error => Level::Error,
            LoggingLevel::Critical => Level::Critical,
            LoggingLevel::Alert => Level::Alert,
            LoggingLevel::Emergency => Level::Emergency,
        }
    }
}

#[allow(deprecated)]
fn level_of(level: Level) -> LoggingLevel {
    match level {
        Level::Debug => LoggingLevel::Debug,
        Level::Info => LoggingLevel::Info,
        Level::Notice => LoggingLevel::Notice,
        Level::Warning => LoggingLevel::Warning,
        Level::Error => LoggingLevel::Error,
        Level::Critical => LoggingLevel::Critical,
        Level::Alert => LoggingLevel::Alert,
        Level::Emergency => LoggingLevel::Emergency,
    }
}

/// A failed tool call's result. The error travels as JSON text, not
/// `structuredContent`: the Inspector and the TypeScript SDK validate
/// structured content against the tool's output schema even on errors, and
/// would swallow the error the model needs to see.
pub fn tool_error(error: &ToolError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(
        serde_json::to_string(error).unwrap_or_else(|_| error.summary()),
    )])
}

/// `structuredContent` plus the same JSON as text: several hosts hand only the
/// text content to the model. A stale answer adds one plain sentence.
fn success(answer: Answer) -> CallToolResult {
    let mut content = vec![ContentBlock::text(answer.text)];
    content.extend(crate::service::stale_notice(&answer.value).map(ContentBlock::text));
    let mut result = CallToolResult::success(content);
    result.structured_content = Some(answer.value);
    result
}
