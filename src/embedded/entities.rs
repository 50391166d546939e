//! The five entities as data, and the pure rules that turn a request and the
//! stored item into the item's next state.
//!
//! Every handler is written once and reads its per-entity behaviour (archive
//! effect, process actions, parent requirement) from [`ENTITIES`]. Nothing here
//! touches SQL or HTTP: the rules take the current record and return either the
//! new state or an [`ApiError`], so they run inside the store's write
//! transaction and are unit-tested without a server.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::store::{NewState, ParentLookup, Record};
use crate::catalog::size::{self, MAX_ITEM_BYTES};

/// A JSON payload object.
pub type Payload = Map<String, Value>;

/// A constant payload value; `serde_json::Value` cannot be built in a `const`.
#[derive(Debug, Clone, Copy)]
pub enum Lit {
    Str(&'static str),
    Bool(bool),
}

impl Lit {
    fn to_value(self) -> Value {
        match self {
            Lit::Str(s) => Value::from(s),
            Lit::Bool(b) => Value::from(b),
        }
    }
}

/// Payload keys an operation sets, with their values.
pub type Effect = &'static [(&'static str, Lit)];

/// A named `process` action and what it sets.
#[derive(Debug)]
pub struct Action {
    pub name: &'static str,
    pub sets: Effect,
}

/// One kind of parent an entity may hang off.
#[derive(Debug)]
pub struct ParentKind {
    /// The value of the kind key (`"note"`), and the word used in messages.
    pub name: &'static str,
    /// The parent's storage key (`"notes"`).
    pub entity: &'static str,
}

/// A required reference to a live item of another entity.
#[derive(Debug)]
pub struct ParentRule {
    /// Payload key naming the parent's kind; `None` when only one kind exists.
    pub kind_key: Option<&'static str>,
    /// Payload key holding the parent's uid.
    pub uid_key: &'static str,
    pub kinds: &'static [ParentKind],
}

/// Everything that distinguishes one entity's endpoints from another's.
#[derive(Debug)]
pub struct EntitySpec {
    /// Storage key and last path segment (`"chat_messages"`).
    pub key: &'static str,
    /// Collection path (`"/v1/chat_messages"`).
    pub path: &'static str,
    /// Singular name used in messages (`"chat message"`).
    pub name: &'static str,
    pub archive: Effect,
    pub actions: &'static [Action],
    pub parent: Option<ParentRule>,
}

const fn status(value: &'static str) -> (&'static str, Lit) {
    ("status", Lit::Str(value))
}

const fn flag(key: &'static str, value: bool) -> (&'static str, Lit) {
    (key, Lit::Bool(value))
}

const fn action(name: &'static str, sets: Effect) -> Action {
    Action { name, sets }
}

const fn kind(name: &'static str, entity: &'static str) -> ParentKind {
    ParentKind { name, entity }
}

/// The five entities, in the contract's order.
pub static ENTITIES: [EntitySpec; 5] = [
    EntitySpec {
        key: "notes",
        path: "/v1/notes",
        name: "note",
        archive: &[status("archived")],
        actions: &[
            action("pin", &[flag("pinned", true)]),
            action("unpin", &[flag("pinned", false)]),
            action("archive", &[status("archived")]),
            action("unarchive", &[status("active")]),
        ],
        parent: None,
    },
    EntitySpec {
        key: "tasks",
        path: "/v1/tasks",
        name: "task",
        archive: &[status("archived"), flag("done", true)],
        actions: &[
            action("start", &[status("in_progress"), flag("done", false)]),
            action("complete", &[status("completed"), flag("done", true)]),
            action("reopen", &[status("open"), flag("done", false)]),
        ],
        parent: None,
    },
    EntitySpec {
        key: "comments",
        path: "/v1/comments",
        name: "comment",
        archive: &[status("archived")],
        actions: &[
            action("resolve", &[status("resolved")]),
            action("reopen", &[status("open")]),
        ],
        parent: Some(ParentRule {
            kind_key: Some("parentType"),
            uid_key: "parentUid",
            kinds: &[kind("note", "notes"), kind("task", "tasks")],
        }),
    },
    EntitySpec {
        key: "chats",
        path: "/v1/chats",
        name: "chat",
        archive: &[flag("archived", true)],
        actions: &[
            action("resolve", &[status("resolved")]),
            action("reopen", &[status("active")]),
        ],
        parent: None,
    },
    EntitySpec {
        key: "chat_messages",
        path: "/v1/chat_messages",
        name: "chat message",
        archive: &[flag("archived", true)],
        actions: &[
            action("mark_read", &[flag("read", true)]),
            action("mark_delivered", &[flag("delivered", true)]),
        ],
        parent: Some(ParentRule {
            kind_key: None,
            uid_key: "chatUid",
            kinds: &[kind("chat", "chats")],
        }),
    },
];

/// Keys a client may not set through a patch: the server owns them.
const UNPATCHABLE: [&str; 2] = ["uid", "sync"];

/// How a write treats the item's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    None,
    /// `If-Match`: the stored version must equal this one.
    Version(i64),
}

/// The write a request asks for, before it meets the stored item.
#[derive(Debug)]
pub enum Write {
    /// `POST P`: upsert the whole payload; undeletes a soft-deleted item.
    Create(Payload),
    /// `PUT P/{uid}`: replace the payload of an existing item.
    Replace(Payload, Precondition),
    /// `PATCH P/{uid}`: merge top-level keys into the stored payload.
    Merge(Payload, Precondition),
    /// `DELETE P/{uid}`: soft delete.
    Delete,
    /// `POST P/{uid}/archive`.
    Archive,
    /// `POST P/{uid}/process` with this action name.
    Process(String),
}

impl EntitySpec {
    /// Decides the item's next state, or why the write is refused. Runs inside
    /// the write transaction, so the parent check sees the same snapshot the
    /// write commits against.
    pub fn decide(
        &self,
        write: Write,
        current: Option<&Record>,
        parents: &ParentLookup<'_>,
    ) -> Result<NewState, ApiError> {
        let (payload, deleted) = match write {
            Write::Create(payload) => (payload, false),
            Write::Delete => (self.live(current)?.payload.clone(), true),
            Write::Replace(payload, pre) => {
                check_version(self.live(current)?, pre)?;
                (payload, false)
            }
            Write::Merge(patch, pre) => {
                let live = self.live(current)?;
                check_version(live, pre)?;
                let merged = merge(live.payload.clone(), patch);
                check_merged_size(&merged)?;
                (merged, false)
            }
            Write::Archive => (
                apply(self.live(current)?.payload.clone(), self.archive),
                false,
            ),
            Write::Process(action) => {
                let live = self.live(current)?;
                (
                    apply(live.payload.clone(), self.action(&action)?.sets),
                    false,
                )
            }
        };
        // Deleting never re-checks the parent: a tombstone may outlive it.
        if !deleted {
            self.check_parent(&payload, parents)?;
        }
        Ok(NewState { payload, deleted })
    }

    /// The current item if it exists and is not soft-deleted.
    pub fn live<'r>(&self, current: Option<&'r Record>) -> Result<&'r Record, ApiError> {
        let record = current.ok_or_else(|| self.not_found())?;
        match record.deleted_ms {
            Some(ms) => Err(ApiError::Gone {
                entity: self.name,
                deleted_ms: ms,
            }),
            None => Ok(record),
        }
    }

    pub fn not_found(&self) -> ApiError {
        ApiError::NotFound(format!("{} not found", self.name))
    }

    fn action(&self, name: &str) -> Result<&Action, ApiError> {
        self.actions
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| ApiError::BadRequest(format!("invalid action: {name}")))
    }

    /// The real service answers 500 for every parent problem; we answer 400
    /// for a malformed reference and 422 for one naming no live item.
    fn check_parent(&self, payload: &Payload, parents: &ParentLookup<'_>) -> Result<(), ApiError> {
        let Some(rule) = &self.parent else {
            return Ok(());
        };
        let kind = rule.kind_of(payload)?;
        let uid = rule.uid_of(payload)?;
        if parents.is_live(kind.entity, uid)? {
            Ok(())
        } else {
            Err(ApiError::Unprocessable(format!(
                "parent {} {uid} does not exist or is deleted",
                kind.name
            )))
        }
    }
}

impl ParentRule {
    fn kind_of(&self, payload: &Payload) -> Result<&ParentKind, ApiError> {
        let Some(key) = self.kind_key else {
            // A rule without a kind key has exactly one kind.
            return self
                .kinds
                .first()
                .ok_or_else(|| ApiError::Internal("parent rule without kinds".into()));
        };
        let allowed = || {
            let names: Vec<_> = self.kinds.iter().map(|k| k.name).collect();
            names.join(" or ")
        };
        let Some(given) = payload.get(key) else {
            return Err(ApiError::BadRequest(format!(
                "{key} is required ({})",
                allowed()
            )));
        };
        self.kinds
            .iter()
            .find(|k| given.as_str() == Some(k.name))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("invalid {key}: {given} (must be {})", allowed()))
            })
    }

    fn uid_of(&self, payload: &Payload) -> Result<Uuid, ApiError> {
        payload
            .get(self.uid_key)
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| {
                ApiError::BadRequest(format!("{} is required and must be a UUID", self.uid_key))
            })
    }
}

fn check_version(record: &Record, pre: Precondition) -> Result<(), ApiError> {
    match pre {
        Precondition::Version(expected) if expected != record.version => {
            Err(ApiError::VersionMismatch {
                expected,
                actual: record.version,
            })
        }
        _ => Ok(()),
    }
}

/// The keys the store stamps on every write (`store::stamp`): not part of
/// the item as a client sends it, so not counted against its size.
const STAMPED: [&str; 4] = ["uid", "updatedTs", "updateTime", "sync"];

/// A patch sends only what changes, so the body check alone would let
/// patches grow an item past the largest a create or an update may send.
/// Measured as that check measures a body, without the stamped keys.
fn check_merged_size(payload: &Payload) -> Result<(), ApiError> {
    let size = sent_size(payload);
    if size <= MAX_ITEM_BYTES {
        return Ok(());
    }
    Err(ApiError::TooLarge(format!(
        "the item would be {} bytes as JSON after this patch; the largest item is {}",
        size::grouped(size),
        size::max_item_text()
    )))
}

/// The length of `payload` as compact JSON without the stamped keys.
fn sent_size(payload: &Payload) -> usize {
    let kept: Vec<(&String, &Value)> = payload
        .iter()
        .filter(|(key, _)| !STAMPED.contains(&key.as_str()))
        .collect();
    let entries: usize = kept
        .iter()
        .map(|(key, value)| size::json_len(key) + 1 + size::json_len(value))
        .sum();
    // The braces, and a comma between entries.
    2 + entries + kept.len().saturating_sub(1)
}

fn merge(mut base: Payload, patch: Payload) -> Payload {
    for (key, value) in patch {
        if !UNPATCHABLE.contains(&key.as_str()) {
            base.insert(key, value);
        }
    }
    base
}

fn apply(mut payload: Payload, effect: Effect) -> Payload {
    for (key, value) in effect {
        payload.insert((*key).to_owned(), value.to_value());
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(v: Value) -> Payload {
        match v {
            Value::Object(map) => map,
            _ => Payload::new(),
        }
    }

    fn record(version: i64, deleted_ms: Option<i64>, body: Value) -> Record {
        Record {
            uid: Uuid::nil(),
            version,
            updated_ms: 1,
            deleted_ms,
            payload: payload(body),
        }
    }

    fn by_key(key: &str) -> Option<&'static EntitySpec> {
        ENTITIES.iter().find(|e| e.key == key)
    }

    fn spec(key: &str) -> &'static EntitySpec {
        by_key(key).expect("entity exists")
    }

    #[test]
    fn every_entity_is_reachable_by_key_and_path_matches_key() {
        for e in &ENTITIES {
            assert_eq!(by_key(e.key).map(|s| s.path), Some(e.path));
            assert_eq!(e.path, format!("/v1/{}", e.key));
        }
    }

    #[test]
    fn parent_kinds_name_existing_entities() {
        for rule in ENTITIES.iter().filter_map(|e| e.parent.as_ref()) {
            for kind in rule.kinds {
                assert!(by_key(kind.entity).is_some(), "{}", kind.entity);
            }
        }
    }

    #[test]
    fn sent_size_is_the_compact_json_without_the_stamped_keys() {
        let stored = payload(json!({
            "uid": "u", "title": "té\"", "tags": ["a", "b"], "sync": {"version": 2},
            "updatedTs": 1, "updateTime": "x", "n": 1.5, "e": {}
        }));
        let sent = json!({"title": "té\"", "tags": ["a", "b"], "n": 1.5, "e": {}});
        assert_eq!(sent_size(&stored), size::json_len(&sent));
        assert_eq!(sent_size(&Payload::new()), 2);
    }

    #[test]
    fn merge_ignores_server_keys() {
        let merged = merge(
            payload(json!({"uid": "a", "title": "t", "sync": {"version": 1}})),
            payload(json!({"uid": "b", "sync": {}, "title": "u", "extra": 1})),
        );
        assert_eq!(
            Value::Object(merged),
            json!({"uid": "a", "title": "u", "sync": {"version": 1}, "extra": 1})
        );
    }

    #[test]
    fn task_actions_set_status_and_done() {
        let tasks = spec("tasks");
        let done = |name: &str| {
            let action = tasks.action(name).expect("known action");
            Value::Object(apply(Payload::new(), action.sets))
        };
        assert_eq!(
            done("start"),
            json!({"status": "in_progress", "done": false})
        );
        assert_eq!(
            done("complete"),
            json!({"status": "completed", "done": true})
        );
        assert_eq!(done("reopen"), json!({"status": "open", "done": false}));
        assert!(
            matches!(tasks.action("pin"), Err(ApiError::BadRequest(m)) if m == "invalid action: pin")
        );
    }

    #[test]
    fn live_distinguishes_missing_and_deleted() {
        let notes = spec("notes");
        assert!(matches!(notes.live(None), Err(ApiError::NotFound(m)) if m == "note not found"));
        let gone = record(2, Some(5), json!({}));
        assert!(matches!(
            notes.live(Some(&gone)),
            Err(ApiError::Gone {
                entity: "note",
                deleted_ms: 5
            })
        ));
    }

    #[test]
    fn stale_precondition_is_a_version_mismatch() {
        let r = record(3, None, json!({}));
        assert!(check_version(&r, Precondition::None).is_ok());
        assert!(check_version(&r, Precondition::Version(3)).is_ok());
        assert!(matches!(
            check_version(&r, Precondition::Version(2)),
            Err(ApiError::VersionMismatch {
                expected: 2,
                actual: 3
            })
        ));
    }

    #[test]
    fn comment_parent_kind_is_validated() {
        let rule = spec("comments")
            .parent
            .as_ref()
            .expect("comments have parents");
        assert_eq!(
            rule.kind_of(&payload(json!({"parentType": "task"})))
                .map(|k| k.entity)
                .ok(),
            Some("tasks")
        );
        assert!(matches!(
            rule.kind_of(&payload(json!({}))),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            rule.kind_of(&payload(json!({"parentType": "chat"}))),
            Err(ApiError::BadRequest(m)) if m.contains("must be note or task")
        ));
        assert!(matches!(
            rule.uid_of(&payload(json!({"parentUid": "x"}))),
            Err(ApiError::BadRequest(_))
        ));
    }
}

/// The client's entity table (`crate::catalog::entities`) and this one sit
/// in separate layers on purpose, and must still describe the same API:
/// this ties them, so a change to one side alone fails here.
#[cfg(test)]
mod agree_with_the_client {
    use serde_json::{Value, json};

    use super::{ENTITIES, EntitySpec, Lit};
    use crate::catalog::entities::{ENTITIES as CLIENT, Entity};

    fn pairs() -> impl Iterator<Item = (&'static Entity, &'static EntitySpec)> {
        CLIENT.iter().zip(ENTITIES.iter())
    }

    fn lit(value: Lit) -> String {
        match value {
            Lit::Str(s) => s.to_owned(),
            Lit::Bool(b) => b.to_string(),
        }
    }

    /// The wire key and value the client sends for `param`, trying each
    /// candidate value in turn (the first its codec accepts).
    fn wire(entity: &Entity, param: &str, candidates: &[Value]) -> Option<(String, Value)> {
        candidates.iter().find_map(|value| {
            let mut args = serde_json::Map::new();
            args.insert(param.to_owned(), value.clone());
            (entity.fields.to_wire)(&args).ok()?.into_iter().next()
        })
    }

    #[test]
    fn same_entities_in_the_same_order_at_the_same_paths() {
        assert_eq!(CLIENT.len(), ENTITIES.len());
        for (client, server) in pairs() {
            assert_eq!(client.plural, server.key);
            assert_eq!(client.path, server.path, "{}", client.plural);
            assert_eq!(client.noun, server.name, "{}", client.plural);
        }
    }

    #[test]
    fn same_process_actions() {
        for (client, server) in pairs() {
            let served: Vec<&str> = server.actions.iter().map(|a| a.name).collect();
            assert_eq!(client.actions, served.as_slice(), "{}", client.plural);
        }
    }

    /// What the tool descriptions say the actions and archive do is what the
    /// API does: archive's effect word for word; each action's effect named
    /// in the summary by its value (a status) or its key (a flag).
    #[test]
    fn descriptions_name_the_effects() {
        for (client, server) in pairs() {
            let archive: Vec<String> = server
                .archive
                .iter()
                .map(|(key, value)| format!("{key} {}", lit(*value)))
                .collect();
            assert_eq!(
                client.archive_effect,
                archive.join(", "),
                "{}",
                client.plural
            );
            for action in server.actions {
                for (key, value) in action.sets {
                    let named = match value {
                        Lit::Str(s) => client.actions_summary.contains(s),
                        Lit::Bool(_) => false,
                    } || client.actions_summary.contains(key);
                    assert!(
                        named,
                        "{} {}: `{key}` = {} is not in \"{}\"",
                        client.plural,
                        action.name,
                        lit(*value),
                        client.actions_summary
                    );
                }
            }
        }
    }

    /// An entity the API requires a parent for is one whose writes the
    /// client requires parent parameters for; those parameters go out as the
    /// rule's payload keys, the kind parameter accepts exactly the API's
    /// kinds, and the list filter reads the same uid key.
    #[test]
    fn same_parent_rules() {
        let uid = json!("6f1c2a39-8d2b-4c1e-9f3a-2b7c4d5e6f70");
        for (client, server) in pairs() {
            let name = client.plural;
            let Some(rule) = &server.parent else {
                assert!(client.required.is_empty(), "{name}: no parent upstream");
                continue;
            };
            let kinds: Vec<Value> = rule.kinds.iter().map(|k| json!(k.name)).collect();
            let mut sent: Vec<String> = Vec::new();
            for param in client.required {
                let mut candidates = kinds.clone();
                candidates.push(uid.clone());
                let (key, _) = wire(client, param, &candidates)
                    .unwrap_or_else(|| panic!("{name}: `{param}` takes no kind nor uid"));
                sent.push(key);
            }
            let mut expected: Vec<String> = rule.kind_key.into_iter().map(str::to_owned).collect();
            expected.push(rule.uid_key.to_owned());
            sent.sort();
            expected.sort();
            assert_eq!(sent, expected, "{name}: parent payload keys");

            if let Some(kind_key) = rule.kind_key {
                let param = client
                    .required
                    .iter()
                    .find(|p| wire(client, p, &kinds[..1]).is_some_and(|(k, _)| k == kind_key))
                    .unwrap_or_else(|| panic!("{name}: no parameter for {kind_key}"));
                for kind in &kinds {
                    assert_eq!(
                        wire(client, param, std::slice::from_ref(kind)),
                        Some((kind_key.to_owned(), kind.clone())),
                        "{name}: kind {kind}"
                    );
                }
                let schema = (client.fields.schema)();
                let offered = &schema["properties"][*param]["enum"];
                assert_eq!(offered, &Value::Array(kinds.clone()), "{name}: {param}");
            }
            if let Some(filter) = &client.list_filter {
                assert_eq!(filter.wire, rule.uid_key, "{name}: list filter");
            }
        }
    }

    /// A parent the client checks itself names one of the API's collections.
    #[test]
    fn checked_parents_are_collections() {
        for client in &CLIENT {
            if let Some(parent) = &client.checked_parent {
                assert!(
                    ENTITIES.iter().any(|e| e.path == parent.path),
                    "{}: {}",
                    client.plural,
                    parent.path
                );
            }
        }
    }
}
