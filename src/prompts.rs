//! Prompts a person starts a conversation from (a slash command in Claude
//! Desktop, VS Code or Claude Code): each short, each embedding the items it
//! is about as resources, so the model starts with them in hand.

use rmcp::model::{Prompt, PromptArgument, PromptMessage, ResourceContents, Role};
use serde_json::{Value, json};

use crate::catalog::Entity;
use crate::error::ToolError;
use crate::service::Service;

/// Items embedded per kind in a daily review.
const REVIEW_ITEMS: u32 = 10;

/// The prompts this server offers: `note_to_tasks` only with write access
/// and notes and tasks enabled; the others where their entities are.
pub fn list(enabled: &[&'static Entity], read_only: bool) -> Vec<Prompt> {
    let has = |plural: &str| enabled.iter().any(|e| e.plural == plural);
    let mut prompts = Vec::new();
    if has("tasks") || has("notes") {
        prompts.push(Prompt::new(
            "daily_review",
            Some("Review my day: tasks due soon or overdue, and notes changed since yesterday."),
            None,
        ));
    }
    prompts.push(Prompt::new(
        "summarize",
        Some("Summarize a note, task or chat with its comments or messages."),
        Some(vec![
            PromptArgument::new("uri")
                .with_description("toolbridge://<notes|tasks|chats>/<uid>")
                .with_required(true),
        ]),
    ));
    if !read_only && has("notes") && has("tasks") {
        prompts.push(Prompt::new(
            "note_to_tasks",
            Some("Turn a note into tasks: proposed first, created once you agree."),
            Some(vec![
                PromptArgument::new("note")
                    .with_description("The note's uid")
                    .with_required(true),
            ]),
        ));
    }
    prompts
}

/// The messages of prompt `name` with `args`.
pub async fn get(
    service: &Service,
    name: &str,
    args: &serde_json::Map<String, Value>,
) -> Result<(String, Vec<PromptMessage>), ToolError> {
    let enabled = service.catalog().entities();
    let arg = |key: &str| {
        args.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ToolError::invalid_input(format!("{key}: missing")))
    };
    match name {
        "daily_review" => {
            let now = time::OffsetDateTime::now_utc();
            let iso = |t: time::OffsetDateTime| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            };
            let mut uris = Vec::new();
            if let Some(tasks) = entity(enabled, "tasks") {
                for status in ["open", "in_progress"] {
                    let args = json!({
                        "status": status,
                        "due_before": iso(now + time::Duration::days(2)),
                        "limit": REVIEW_ITEMS
                    });
                    uris.extend(service.resource_uris(tasks, args).await?);
                }
            }
            if let Some(notes) = entity(enabled, "notes") {
                let args = json!({
                    "updated_after": iso(now - time::Duration::days(1)),
                    "order": "newest",
                    "limit": REVIEW_ITEMS
                });
                uris.extend(service.resource_uris(notes, args).await?);
            }
            let intro = format!(
                "Here are my open and in-progress tasks due by {} (or overdue), and my notes changed since yesterday ({} items). Review my day: what is overdue, what is due next, what changed, and what should I do first?",
                iso(now + time::Duration::days(2)),
                uris.len()
            );
            let mut messages = vec![PromptMessage::new_text(Role::User, intro)];
            for uri in uris {
                messages.push(embedded(service, &uri).await?);
            }
            Ok(("Review my day".into(), messages))
        }
        "summarize" => {
            let uri = arg("uri")?;
            Ok((
                "Summarize".into(),
                vec![
                    PromptMessage::new_text(
                        Role::User,
                        "Summarize this item in a few sentences: what it is about, where it stands, and any open question in its comments or messages.",
                    ),
                    embedded(service, uri).await?,
                ],
            ))
        }
        "note_to_tasks" => {
            let note = arg("note")?;
            let uri = format!("{}notes/{note}", crate::service::RESOURCE_SCHEME);
            Ok((
                "Note to tasks".into(),
                vec![
                    PromptMessage::new_text(
                        Role::User,
                        "Read this note and propose the tasks it implies, each with a title and, where the note says so, a due date (ISO 8601). Show me the list first; create them with create_task (or write, operation create, entity tasks) only after I agree.",
                    ),
                    embedded(service, &uri).await?,
                ],
            ))
        }
        other => Err(ToolError::invalid_input(format!("unknown prompt: {other}"))),
    }
}

fn entity(enabled: &[&'static Entity], plural: &str) -> Option<&'static Entity> {
    enabled.iter().copied().find(|e| e.plural == plural)
}

/// The resource at `uri`, read as the person would attach it.
async fn embedded(service: &Service, uri: &str) -> Result<PromptMessage, ToolError> {
    let text = service
        .read_resource(service.catalog().entities(), uri)
        .await?;
    let contents = ResourceContents::text(text, uri).with_mime_type("text/markdown");
    Ok(PromptMessage::new(
        Role::User,
        rmcp::model::ContentBlock::resource(contents),
    ))
}
