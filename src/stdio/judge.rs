//! What each line from the client gets: handed to rmcp, answered here with a
//! JSON-RPC error, or dropped. rmcp drops a line that is not JSON, answers
//! any other misfit with an `Invalid Request` without the request's id, and
//! takes a known method whose params do not fit it for an unknown method
//! (-32601); here each gets the answer JSON-RPC 2.0 prescribes, with its id.
//!
//! A `tools/call` is parsed once, as rmcp would but to its own type (see
//! [`tool_call`]); any other valid message once more, as rmcp would; only a
//! line that fails both is looked at again.

#[allow(deprecated)] // MCP logging: deprecated by SEP-2577, still what hosts send.
use rmcp::model::SetLevelRequest;
use rmcp::model::{
    CallToolRequest, ClientJsonRpcMessage, ClientRequest, CompleteRequest, ConstString,
    CustomRequest, DiscoverRequest, ErrorCode, GetPromptRequest, InitializeRequest, JsonRpcMessage,
    JsonRpcRequest, ListPromptsRequest, ListResourceTemplatesRequest, ListResourcesRequest,
    ListToolsRequest, PingRequest, ReadResourceRequest,
};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::oversized::Found;
use crate::error::ToolError;

/// The longest line (one JSON-RPC message, without its newline) read whole.
/// A longer one is walked past without being kept and answered when its id
/// can be read. rmcp's own stdio transport has the same cap.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// What a line gets.
// Moved once, straight to rmcp: a box would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Verdict {
    /// A message for rmcp.
    Deliver(ClientJsonRpcMessage),
    /// A JSON-RPC error (or, for a tool call, a tool result) written back
    /// here: one line, with its newline.
    Reply(Vec<u8>),
    /// Nothing is owed: a blank line, a malformed notification or response
    /// (answering those could start an error storm with a client that
    /// answers errors).
    Drop(&'static str),
}

/// Judges one whole line (without its newline).
pub fn judge(line: &[u8]) -> Verdict {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
        return Verdict::Drop("a blank line");
    }
    if let Some(call) = tool_call(line) {
        return Verdict::Deliver(call);
    }
    match serde_json::from_slice::<ClientJsonRpcMessage>(line) {
        Ok(JsonRpcMessage::Request(request)) => match &request.request {
            ClientRequest::CustomRequest(custom) => match misfit(custom) {
                Some(reason) => Verdict::Reply(error(
                    &request.id.into_json_value(),
                    ErrorCode::INVALID_PARAMS,
                    &format!("Invalid params for {}: {reason}", custom.method),
                )),
                None => Verdict::Deliver(JsonRpcMessage::Request(request)),
            },
            _ => Verdict::Deliver(JsonRpcMessage::Request(request)),
        },
        Ok(message) => Verdict::Deliver(message),
        Err(_) => invalid(line),
    }
}

/// A `tools/call` request (nearly every line of a session), parsed by rmcp's
/// own message parser with the request type narrowed to `CallToolRequest`:
/// the same checks and the same message, without trying the thirteen request
/// types rmcp's untagged `ClientRequest` lists before it, each building an
/// error when its method does not match (about a tenth of a call's CPU).
/// `None` for any other line, which then takes the whole path.
fn tool_call(line: &[u8]) -> Option<ClientJsonRpcMessage> {
    match serde_json::from_slice::<JsonRpcMessage<CallToolRequest, Unmatched, Unmatched>>(line) {
        Ok(JsonRpcMessage::Request(call)) => Some(JsonRpcMessage::Request(JsonRpcRequest {
            jsonrpc: call.jsonrpc,
            id: call.id,
            request: ClientRequest::CallToolRequest(call.request),
        })),
        _ => None,
    }
}

/// What no line deserializes to: [`tool_call`] takes requests only.
struct Unmatched;

impl<'de> Deserialize<'de> for Unmatched {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(D::Error::custom("not a tools/call request"))
    }
}

/// Why a request rmcp could only take as a custom one was refused: its
/// method is one this server answers, so its params did not fit. `None` for
/// a method it does not know (rmcp answers -32601 with the id).
#[allow(deprecated)] // `SetLevelRequest`: see the imports.
fn misfit(request: &CustomRequest) -> Option<String> {
    fn reason<T: DeserializeOwned>(request: &CustomRequest) -> Option<String> {
        let fits = serde_json::to_value(request).and_then(serde_json::from_value::<T>);
        Some(match fits {
            Err(e) => e.to_string(),
            Ok(_) => "they do not fit the method".to_owned(),
        })
    }
    // The methods of the capabilities `McpServer::get_info` enables; rmcp
    // answers the others -32601 whatever their params.
    match request.method.as_str() {
        m if m == PingRequest::method_name() => reason::<PingRequest>(request),
        m if m == InitializeRequest::method_name() => reason::<InitializeRequest>(request),
        m if m == DiscoverRequest::method_name() => reason::<DiscoverRequest>(request),
        m if m == CallToolRequest::method_name() => reason::<CallToolRequest>(request),
        m if m == ListToolsRequest::method_name() => reason::<ListToolsRequest>(request),
        m if m == ListResourcesRequest::method_name() => reason::<ListResourcesRequest>(request),
        m if m == ListResourceTemplatesRequest::method_name() => {
            reason::<ListResourceTemplatesRequest>(request)
        }
        m if m == ReadResourceRequest::method_name() => reason::<ReadResourceRequest>(request),
        m if m == ListPromptsRequest::method_name() => reason::<ListPromptsRequest>(request),
        m if m == GetPromptRequest::method_name() => reason::<GetPromptRequest>(request),
        m if m == CompleteRequest::method_name() => reason::<CompleteRequest>(request),
        m if m == SetLevelRequest::method_name() => reason::<SetLevelRequest>(request),
        _ => None,
    }
}

/// The method string of a request type, from rmcp's own constant.
trait MethodName {
    fn method_name() -> &'static str;
}

impl<M: ConstString, P> MethodName for rmcp::model::Request<M, P> {
    fn method_name() -> &'static str {
        M::VALUE
    }
}

impl<M: ConstString, P> MethodName for rmcp::model::RequestOptionalParam<M, P> {
    fn method_name() -> &'static str {
        M::VALUE
    }
}

impl<M: ConstString> MethodName for rmcp::model::RequestNoParam<M> {
    fn method_name() -> &'static str {
        M::VALUE
    }
}

/// A line that is not a message rmcp reads: not JSON (-32700), or JSON that
/// is not a JSON-RPC 2.0 message (-32600, with its id when it has a usable
/// one).
fn invalid(line: &[u8]) -> Verdict {
    let message: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(e) => {
            return Verdict::Reply(error(
                &Value::Null,
                ErrorCode::PARSE_ERROR,
                &format!("Parse error: the line is not JSON ({e})"),
            ));
        }
    };
    let Some(object) = message.as_object() else {
        return Verdict::Reply(error(
            &Value::Null,
            ErrorCode::INVALID_REQUEST,
            "Invalid Request: a message is one JSON object (batches are not supported)",
        ));
    };
    let method = object.get("method");
    let id = object.get("id");
    let response = object.contains_key("result") || object.contains_key("error");
    match (method, id) {
        (Some(Value::String(_)), None) => return Verdict::Drop("a malformed notification"),
        (None, _) if response => return Verdict::Drop("a malformed response"),
        _ => {}
    }
    let problem = if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        Some("jsonrpc must be \"2.0\"")
    } else if id.is_some_and(|id| !id.is_string() && id.as_i64().is_none()) {
        Some("id must be a string or an integer")
    } else if response {
        Some("a request carries no result or error")
    } else {
        None
    };
    let id = usable_id(id);
    match (problem, method) {
        (None, Some(Value::String(method))) => {
            // A well-formed request whose params are no object (rmcp reads
            // no other): refused as the params of a known method, or as an
            // unknown method, as rmcp answers one with object params.
            let request = CustomRequest::new(method.clone(), object.get("params").cloned());
            Verdict::Reply(match misfit(&request) {
                Some(reason) => error(
                    &id,
                    ErrorCode::INVALID_PARAMS,
                    &format!("Invalid params for {method}: {reason}"),
                ),
                None => error(&id, ErrorCode::METHOD_NOT_FOUND, method),
            })
        }
        (problem, _) => Verdict::Reply(error(
            &id,
            ErrorCode::INVALID_REQUEST,
            &format!(
                "Invalid Request: {}",
                problem.unwrap_or("method must be a string")
            ),
        )),
    }
}

/// The id to answer with: the request's when it is a string or a number
/// (echoed as sent), else null.
fn usable_id(id: Option<&Value>) -> Value {
    match id {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    }
}

/// What a line over [`MAX_MESSAGE_BYTES`] gets, from what could be read of
/// it; logged (never its content).
pub fn oversized(found: &Found) -> Verdict {
    let limit = format!(
        "the message is {} bytes, over the limit of {MAX_MESSAGE_BYTES} bytes per message",
        found.bytes
    );
    let id = usable_id(found.id.as_ref());
    let is_call = found.method.as_deref() == Some(CallToolRequest::method_name());
    let correlation_id = is_call.then(|| uuid::Uuid::new_v4().to_string());
    let verdict = match (&found.method, found.has_id) {
        (Some(_), false) => Verdict::Drop("an oversized notification"),
        (None, _) if found.response => Verdict::Drop("an oversized response"),
        _ => match &correlation_id {
            // A failure the model must see: the tool result every invalid
            // argument gets, not a JSON-RPC error a host may hide.
            Some(correlation_id) if !id.is_null() => {
                let refusal = ToolError::invalid_input(format!(
                    "{limit}; send less in one call (split long content over several writes)"
                ))
                .with_correlation_id(correlation_id);
                let result = crate::mcp::tool_error(&refusal);
                Verdict::Reply(line(&json!({"jsonrpc": "2.0", "id": id, "result": result})))
            }
            _ => Verdict::Reply(error(
                &id,
                ErrorCode::INVALID_REQUEST,
                &format!("Invalid Request: {limit}"),
            )),
        },
    };
    tracing::warn!(
        bytes = found.bytes,
        limit = MAX_MESSAGE_BYTES,
        method = found.method.as_deref(),
        has_id = !id.is_null(),
        correlation_id,
        answered = matches!(verdict, Verdict::Reply(_)),
        "a message over the size limit"
    );
    verdict
}

/// A JSON-RPC error response, as one line.
fn error(id: &Value, code: ErrorCode, message: &str) -> Vec<u8> {
    line(&json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": code.0, "message": message},
    }))
}

fn line(message: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail (its keys are strings).
    let mut bytes = serde_json::to_vec(message).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use rmcp::model::{ClientNotification, ClientResult};

    use super::*;

    fn reply(line: &str) -> Value {
        match judge(line.as_bytes()) {
            Verdict::Reply(bytes) => {
                assert_eq!(bytes.last(), Some(&b'\n'));
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            }
            other => Value::String(format!("{other:?}")),
        }
    }

    #[test]
    fn valid_messages_go_to_rmcp() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_note","arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"notes/frobnicate","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}\r",
        ] {
            assert!(
                matches!(judge(line.as_bytes()), Verdict::Deliver(_)),
                "{line}"
            );
        }
    }

    #[test]
    fn each_misfit_gets_its_code_and_id() {
        for (line, code, id) in [
            ("{not json", -32700, Value::Null),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"ping""#,
                -32700,
                Value::Null,
            ),
            ("[1, 2]", -32600, Value::Null),
            ("42", -32600, Value::Null),
            (
                r#"{"jsonrpc":"1.0","id":5,"method":"ping"}"#,
                -32600,
                json!(5),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                -32600,
                json!(1.5),
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
                -32600,
                Value::Null,
            ),
            (
                r#"{"jsonrpc":"2.0","id":"s","method":7}"#,
                -32600,
                json!("s"),
            ),
            (r#"{"jsonrpc":"2.0","method":7}"#, -32600, Value::Null),
            (
                r#"{"jsonrpc":"2.0","id":6,"method":"ping","result":1}"#,
                -32600,
                json!(6),
            ),
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":42}"#,
                -32602,
                json!(7),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":3}}"#,
                -32602,
                json!("x"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":8,"method":"tools/call"}"#,
                -32602,
                json!(8),
            ),
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"resources/read","params":{"uri":[]}}"#,
                -32602,
                json!(9),
            ),
            (
                r#"{"jsonrpc":"2.0","id":10,"method":"tools/list","params":"x"}"#,
                -32602,
                json!(10),
            ),
            (
                r#"{"jsonrpc":"2.0","id":12,"method":"ping","params":"x"}"#,
                -32602,
                json!(12),
            ),
            (
                r#"{"jsonrpc":"2.0","id":11,"method":"notes/frobnicate","params":[1]}"#,
                -32601,
                json!(11),
            ),
        ] {
            let answer = reply(line);
            assert_eq!(answer["error"]["code"], code, "{line} -> {answer}");
            assert_eq!(answer["id"], id, "{line} -> {answer}");
        }
    }

    /// A tool call's short path gives rmcp the message its whole path gives,
    /// and leaves every other line, and every call rmcp would refuse, to it.
    #[test]
    fn tool_calls_are_parsed_as_rmcp_parses_them() {
        let whole =
            |line: &str| match serde_json::from_slice::<ClientJsonRpcMessage>(line.as_bytes()) {
                Ok(JsonRpcMessage::Request(r))
                    if matches!(r.request, ClientRequest::CallToolRequest(_)) =>
                {
                    Some(
                        serde_json::to_value(
                            JsonRpcMessage::<_, ClientResult, ClientNotification>::Request(r),
                        )
                        .unwrap(),
                    )
                }
                _ => None,
            };
        let mut taken = 0;
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_note","arguments":{"uid":"x"}}}"#,
            r#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"list_notes"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"n","arguments":{},"_meta":{"progressToken":7,"x":[1]}}}"#,
            r#"{"params":{"arguments":{"a":{"b":[null,1.5,"é"]}},"name":"n"},"method":"tools/call","id":3,"jsonrpc":"2.0"}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"n"},"extra":true}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"n"},"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"n"},"error":{"code":1,"message":"m"}}"#,
            r#"{"jsonrpc":"1.0","id":7,"method":"tools/call","params":{"name":"n"}}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"n"}}"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"n"}}"#,
            r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":3}}"#,
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":10,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":11,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":12,"error":{"code":-1,"message":"m"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        ] {
            let short = tool_call(line.as_bytes()).map(|m| serde_json::to_value(m).unwrap());
            assert_eq!(short, whole(line), "{line}");
            taken += usize::from(short.is_some());
        }
        assert_eq!(taken, 5, "the well-formed calls take the short path");
    }

    #[test]
    fn blank_lines_and_malformed_notifications_get_nothing() {
        for line in [
            "",
            "  \t",
            "\r",
            r#"{"method":"notifications/initialized"}"#,
            r#"{"id":3,"result":{}}"#,
        ] {
            assert!(
                matches!(judge(line.as_bytes()), Verdict::Drop(_)),
                "{line:?}"
            );
        }
    }
}
