//! Items as MCP resources a person can attach: `toolbridge://<entity>/<uid>`,
//! listed newest first from the replica and read as compact markdown meant
//! for a model (the item's fields and body, and a note's or task's comments,
//! a chat's latest messages, each with its uid so the tools can act on it).

use serde_json::{Value, json};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Service, off_the_runtime};
use crate::catalog::cursor::{self, Listing};
use crate::catalog::{Entity, Operation};
use crate::error::{ErrorCode, ToolError};
use crate::replica;
use crate::upstream::Call;

pub const SCHEME: &str = "toolbridge://";
/// Items per `resources/list` page.
const PAGE: usize = 50;
/// Comments or messages shown with an item.
const CHILDREN: u32 = 20;
/// Values a completion offers.
const COMPLETIONS: usize = 20;

/// The entities that are resources: a chat message is read with its chat.
pub fn resource_entities(enabled: &[&'static Entity]) -> Vec<&'static Entity> {
    enabled
        .iter()
        .copied()
        .filter(|e| is_resource(e.plural))
        .collect()
}

/// Whether the entity named `plural` is a resource.
pub fn is_resource(plural: &str) -> bool {
    plural != "chat_messages"
}

/// The entity whose items a resource of `plural` shows below its own (a
/// note's or task's comments, a chat's messages), with their heading.
pub fn shown_with(plural: &str) -> Option<(&'static str, &'static str)> {
    match plural {
        "notes" | "tasks" => Some(("comments", "Comments")),
        "chats" => Some(("chat_messages", "Latest messages")),
        _ => None,
    }
}

/// The URI of item `uid` of the entity named `plural`.
pub fn resource_uri(plural: &str, uid: impl std::fmt::Display) -> String {
    format!("{SCHEME}{plural}/{uid}")
}

/// One listed resource.
pub struct Listed {
    pub uri: String,
    pub name: String,
    /// Bytes of the markdown `read_resource` returns for it now; `None`
    /// when the replica cannot tell (the items shown with it are not
    /// synced yet).
    pub size: Option<u64>,
}

impl Service {
    /// A page of resources, most recently updated first, and the cursor of
    /// the next page. Needs the replica (the API cannot list newest first).
    pub async fn resources(
        &self,
        enabled: &[&'static Entity],
        cursor: Option<String>,
    ) -> Result<(Vec<Listed>, Option<String>), ToolError> {
        // Checked first: without a usable replica the page is empty, and a
        // bad cursor must not pass for the end of the list.
        if let Some(cursor) = &cursor {
            cursor::check(Listing::Search, cursor)?;
        }
        let entities = resource_entities(enabled);
        let Some((store, page)) = self.search_replica(&entities, "", PAGE, cursor).await? else {
            return Ok((Vec::new(), None));
        };
        let enabled = enabled.to_vec();
        let hits = page.hits;
        // Each size is its rendition's, made from the replica: about 50
        // SQLite reads a page, kept off the runtime's worker threads.
        let listed = off_the_runtime(move || {
            // What is shown with an item counts only once it is synced.
            let mut synced = Vec::new();
            for entity in &enabled {
                if store.feed(entity.plural)?.complete {
                    synced.push(entity.plural);
                }
            }
            hits.into_iter()
                .map(|hit| {
                    let size = rendition_size(&store, &enabled, &synced, hit.entity, hit.uid)?;
                    Ok(Listed {
                        uri: resource_uri(hit.entity, hit.uid),
                        name: if hit.title.is_empty() {
                            hit.uid.to_string()
                        } else {
                            hit.title
                        },
                        size,
                    })
                })
                .collect::<Result<Vec<_>, replica::ReplicaError>>()
        })
        .await?;
        Ok((listed, page.next_cursor))
    }

    /// Completes a resource template's `uid` from what the person typed:
    /// items whose title words start with it, best match first, at most
    /// [`COMPLETIONS`]; the latest items when nothing is typed yet.
    pub async fn complete_uid(
        &self,
        enabled: &[&'static Entity],
        template: &str,
        typed: &str,
    ) -> Result<Vec<String>, ToolError> {
        let entities = resource_entities(enabled);
        let Some(entity) = entities
            .iter()
            .find(|e| template == format!("{SCHEME}{}/{{uid}}", e.plural))
        else {
            return Ok(Vec::new());
        };
        let Some((_, page)) = self
            .search_replica(&[*entity], typed, COMPLETIONS, None)
            .await?
        else {
            return Ok(Vec::new());
        };
        Ok(page.hits.into_iter().map(|h| h.uid.to_string()).collect())
    }

    /// Completes a resource URI (a prompt's `uri`) from titles across the
    /// resource entities.
    pub async fn complete_uri(
        &self,
        enabled: &[&'static Entity],
        typed: &str,
    ) -> Result<Vec<String>, ToolError> {
        let entities = resource_entities(enabled);
        let words = typed.strip_prefix(SCHEME).map_or(typed, |_| "");
        let Some((_, page)) = self
            .search_replica(&entities, words, COMPLETIONS, None)
            .await?
        else {
            return Ok(Vec::new());
        };
        Ok(page
            .hits
            .into_iter()
            .map(|h| resource_uri(h.entity, h.uid))
            .collect())
    }

    /// The markdown rendition of the resource at `uri`.
    pub async fn read_resource(
        &self,
        enabled: &[&'static Entity],
        uri: &str,
    ) -> Result<String, ToolError> {
        let (entity, uid) = parse_uri(&resource_entities(enabled), uri)?;
        let item = self
            .read(entity, Operation::Get, json!({"uid": uid}))
            .await?;
        let Some(children) = Children::of(enabled, entity) else {
            return Ok(rendition(entity, &item, None));
        };
        let mut args = json!({children.parent_param: uid, "limit": CHILDREN});
        // Without the replica, lists are oldest first only.
        if children.newest_first && self.follower.is_some() {
            args["order"] = json!("newest");
        }
        let page = self.read(children.entity, Operation::List, args).await?;
        let items = page["items"].as_array().map_or(&[][..], Vec::as_slice);
        Ok(rendition(entity, &item, Some((&children, items))))
    }

    /// A search of the replica over `entities` (each refreshed as a read
    /// would be), and the replica; `None` without a usable replica.
    async fn search_replica(
        &self,
        entities: &[&'static Entity],
        text: &str,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Option<(Arc<replica::Replica>, replica::SearchPage)>, ToolError> {
        let Some(follower) = &self.follower else {
            return Ok(None);
        };
        let call = Call::new(self.call_timeout, CancellationToken::new());
        let mut store = None;
        for entity in entities {
            if let Some(ready) = follower.ready(entity, &call, true).await? {
                store = Some(ready.replica);
            }
        }
        let Some(store) = store else {
            return Ok(None);
        };
        let query = replica::SearchQuery {
            text: text.to_owned(),
            entities: entities.iter().map(|e| e.plural.to_owned()).collect(),
            limit,
            cursor,
            ..Default::default()
        };
        let searched = store.clone();
        off_the_runtime(move || searched.search(&query))
            .await
            .map(|page| Some((store, page)))
    }

    /// The resource URIs of `entity`'s items a list with `args` returns
    /// (`status`, `due_before`, `updated_after`, ... as `list_*` takes them).
    pub async fn resource_uris(
        &self,
        entity: &'static Entity,
        args: Value,
    ) -> Result<Vec<String>, ToolError> {
        let page = self.read(entity, Operation::List, args).await?;
        Ok(page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["uid"].as_str())
                    .map(|uid| resource_uri(entity.plural, uid))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A read through the same path as the tools (replica or upstream).
    async fn read(
        &self,
        entity: &'static Entity,
        operation: Operation,
        args: Value,
    ) -> Result<Value, ToolError> {
        let args = args.as_object().cloned().unwrap_or_default();
        let plan = operation.plan(entity, &args)?;
        let call = Call::new(self.call_timeout, CancellationToken::new());
        self.execute(entity, operation, &plan, &call).await
    }
}

/// `toolbridge://notes/<uid>` → the entity and the uid, for enabled
/// resource entities only.
pub fn parse_uri(
    entities: &[&'static Entity],
    uri: &str,
) -> Result<(&'static Entity, Uuid), ToolError> {
    let unknown = || ToolError::new(ErrorCode::NotFound, format!("no such resource: {uri}"));
    let rest = uri.strip_prefix(SCHEME).ok_or_else(unknown)?;
    let (plural, uid) = rest.split_once('/').ok_or_else(unknown)?;
    let entity = entities
        .iter()
        .find(|e| e.plural == plural)
        .ok_or_else(unknown)?;
    let uid = Uuid::parse_str(uid).map_err(|_| unknown())?;
    Ok((entity, uid))
}

/// What a resource shows below its item: a note's or task's comments
/// (oldest first), a chat's latest messages; only when their entity is
/// enabled.
struct Children {
    entity: &'static Entity,
    heading: &'static str,
    /// The list parameter naming the parent.
    parent_param: &'static str,
    newest_first: bool,
}

impl Children {
    fn of(enabled: &[&'static Entity], entity: &Entity) -> Option<Self> {
        let (plural, heading) = shown_with(entity.plural)?;
        let entity = enabled.iter().copied().find(|e| e.plural == plural)?;
        let by_chat = plural == "chat_messages";
        Some(Self {
            entity,
            heading,
            parent_param: if by_chat { "chat_uid" } else { "parent_uid" },
            newest_first: by_chat,
        })
    }

    /// The replica list that `read_resource`'s list of them reads.
    fn query(&self, parent: Uuid) -> replica::ListQuery {
        let mut filters = replica::Filters::default();
        if self.parent_param == "chat_uid" {
            filters.chat_uid = Some(parent);
        } else {
            filters.parent_uid = Some(parent);
        }
        replica::ListQuery {
            order: if self.newest_first {
                replica::Order::Newest
            } else {
                replica::Order::Oldest
            },
            limit: CHILDREN as usize,
            cursor: None,
            filters,
        }
    }
}

/// The byte size of item `uid`'s rendition, made from the replica alone
/// (what `read_resource` returns while the replica is in step); `None` when
/// the replica does not hold it, or what it shows with it is not among the
/// `synced` entities.
fn rendition_size(
    store: &replica::Replica,
    enabled: &[&'static Entity],
    synced: &[&str],
    plural: &str,
    uid: Uuid,
) -> Result<Option<u64>, replica::ReplicaError> {
    let Some(entity) = enabled.iter().find(|e| e.plural == plural) else {
        return Ok(None);
    };
    let Some(item) = store.get(plural, uid)? else {
        return Ok(None);
    };
    let text = match Children::of(enabled, entity) {
        None => rendition(entity, &item, None),
        Some(children) => {
            if !synced.contains(&children.entity.plural) {
                return Ok(None);
            }
            let page = store.list(children.entity.plural, &children.query(uid))?;
            rendition(entity, &item, Some((&children, &page.items)))
        }
    };
    Ok(Some(text.len() as u64))
}

/// The resource's markdown: its item, then what is shown with it.
fn rendition(entity: &Entity, item: &Value, children: Option<(&Children, &[Value])>) -> String {
    let mut text = render(entity, item);
    if let Some((children, items)) = children {
        text.push_str(&format!("\n## {} ({})\n\n", children.heading, items.len()));
        for item in items {
            let payload = &item["payload"];
            let who = payload["author"]
                .as_str()
                .or(payload["sender"].as_str())
                .unwrap_or(children.entity.noun);
            text.push_str(&format!(
                "- {who} ({}, {}): {}\n",
                item["uid"].as_str().unwrap_or_default(),
                item["updatedAt"].as_str().unwrap_or_default(),
                payload["content"].as_str().unwrap_or_default().trim()
            ));
        }
    }
    text
}

/// The item as compact markdown: its title, the fields that matter, its body.
fn render(entity: &Entity, item: &Value) -> String {
    let payload = &item["payload"];
    let text = |key: &str| {
        payload[key]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let title = text("title").map_or_else(
        || {
            let start: String = text("content")
                .unwrap_or(entity.noun)
                .chars()
                .take(60)
                .collect();
            start
        },
        str::to_owned,
    );
    let mut out = format!("# {title}\n\n");
    out.push_str(&format!(
        "- {} `{}`, version {}, updated {}\n",
        entity.noun,
        item["uid"].as_str().unwrap_or_default(),
        item["version"],
        item["updatedAt"].as_str().unwrap_or_default()
    ));
    for (label, key) in [
        ("status", "status"),
        ("priority", "priority"),
        ("due", "dueDate"),
        ("parent", "parentUid"),
        ("chat", "chatUid"),
        ("author", "author"),
        ("sender", "sender"),
    ] {
        if let Some(value) = text(key) {
            out.push_str(&format!("- {label}: {value}\n"));
        }
    }
    for (label, key) in [("tags", "tags"), ("participants", "participants")] {
        if let Some(values) = payload[key].as_array().filter(|v| !v.is_empty()) {
            let values: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
            out.push_str(&format!("- {label}: {}\n", values.join(", ")));
        }
    }
    for flag in ["pinned", "done", "archived", "read", "delivered"] {
        if payload[flag] == json!(true) {
            out.push_str(&format!("- {flag}\n"));
        }
    }
    for key in ["description", "content"] {
        if let Some(body) = text(key) {
            out.push_str(&format!("\n{body}\n"));
        }
    }
    out
}
