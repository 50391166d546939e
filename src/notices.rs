//! What a person should know while it happens: the circuit opened or closed,
//! the upstream asked us to pause, the session was renewed after a wipe
//! elsewhere, a read was answered from the local copy, the replica was
//! rebuilt. Each is a [`Notice`], published where it happens and heard by
//! whoever listens (the MCP layer forwards them to a client that asked for
//! log messages; see [`crate::mcp`]).
//!
//! The hub is one per process, like tracing's dispatcher: the places that
//! publish sit deep in the client and the replica (one of them on a blocking
//! thread), and one process serves one MCP client. Publishing costs one
//! check when nobody listens: the notice is built only for a listener.
//!
//! A notice carries no token, no payload and no URL: only what happened, an
//! entity name, seconds, epochs and a timestamp.

use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Notices held for a listener that has not caught up; an older one is
/// dropped past this (a burst of them says no more than its last few).
const CAPACITY: usize = 64;

/// The syslog severities MCP uses, least severe first: ordered, unlike
/// rmcp's `LoggingLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

/// Why the replica was started again, empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebuildCause {
    /// The upstream's data epoch rose: its data was wiped elsewhere.
    EpochChanged { from: u64, to: u64 },
    /// The file was not a usable replica (the kind of damage, never
    /// contents).
    Unusable(&'static str),
}

/// One thing a person should know.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Calls fail fast for `cooldown`, then one probe goes out.
    CircuitOpened {
        cooldown: Duration,
        /// A probe failed: it was open before.
        after_probe: bool,
    },
    /// The upstream answered again.
    CircuitClosed,
    /// The upstream asked us to pause every request this long: a 429 or a
    /// 503 with `Retry-After`, or an exhausted bucket (`status` of the answer
    /// that said so).
    RateLimited { pause: Duration, status: u16 },
    /// A new sync session replaced one the upstream refused.
    SessionRenewed { from_epoch: u64, to_epoch: u64 },
    /// A read was answered from the local replica because the upstream could
    /// not be reached. `as_of`: its last refresh (RFC 3339), if any.
    StaleRead {
        entity: &'static str,
        as_of: Option<String>,
    },
    /// The local replica was emptied and is being filled again.
    ReplicaRebuilt(RebuildCause),
}

impl Notice {
    /// How severe: what a client's chosen level is compared with.
    pub fn level(&self) -> Level {
        match self {
            Self::CircuitOpened { .. } | Self::RateLimited { .. } | Self::StaleRead { .. } => {
                Level::Warning
            }
            Self::ReplicaRebuilt(_) => Level::Warning,
            Self::SessionRenewed {
                from_epoch,
                to_epoch,
            } if from_epoch != to_epoch => Level::Warning,
            // An expired or forgotten session: routine.
            Self::SessionRenewed { .. } => Level::Info,
            Self::CircuitClosed => Level::Notice,
        }
    }

    /// A stable name for programs: `data.event` of the message.
    pub fn event(&self) -> &'static str {
        match self {
            Self::CircuitOpened { .. } => "circuit_opened",
            Self::CircuitClosed => "circuit_closed",
            Self::RateLimited { .. } => "rate_limited",
            Self::SessionRenewed { .. } => "session_renewed",
            Self::StaleRead { .. } => "stale_read",
            Self::ReplicaRebuilt(_) => "replica_rebuilt",
        }
    }

    /// One plain sentence for a person.
    pub fn message(&self) -> String {
        match self {
            Self::CircuitOpened {
                cooldown,
                after_probe: false,
            } => format!(
                "The ToolBridge API keeps failing: calls fail at once for {} s, then one is let through to test it.",
                whole_seconds(*cooldown)
            ),
            Self::CircuitOpened {
                cooldown,
                after_probe: true,
            } => format!(
                "The ToolBridge API still fails: calls fail at once for another {} s.",
                whole_seconds(*cooldown)
            ),
            Self::CircuitClosed => "The ToolBridge API answers again: calls go through.".into(),
            Self::RateLimited { pause, status: 503 } => format!(
                "The ToolBridge API is unavailable and asked to be left alone: requests pause for {} s.",
                whole_seconds(*pause)
            ),
            Self::RateLimited { pause, .. } => format!(
                "The ToolBridge API rate-limited this sidecar: requests pause for {} s.",
                whole_seconds(*pause)
            ),
            Self::SessionRenewed {
                from_epoch,
                to_epoch,
            } if from_epoch != to_epoch => format!(
                "The ToolBridge data was reset elsewhere (epoch {from_epoch} to {to_epoch}): a new session was opened, and items read before may be gone."
            ),
            Self::SessionRenewed { .. } => {
                "The ToolBridge API ended the sync session: a new one was opened.".into()
            }
            Self::StaleRead {
                entity,
                as_of: Some(as_of),
            } => format!(
                "The ToolBridge API could not be reached: {entity} were read from the local copy as of {as_of}, and may be out of date."
            ),
            Self::StaleRead {
                entity,
                as_of: None,
            } => format!(
                "The ToolBridge API could not be reached: {entity} were read from the local copy, and may be out of date."
            ),
            Self::ReplicaRebuilt(RebuildCause::EpochChanged { from, to }) => format!(
                "The local copy was emptied because the ToolBridge data was reset elsewhere (epoch {from} to {to}); it fills again as tools read."
            ),
            Self::ReplicaRebuilt(RebuildCause::Unusable(reason)) => format!(
                "The local copy was unusable ({reason}) and was started again empty; it fills again as tools read."
            ),
        }
    }

    /// The `data` of an MCP log message: the event, the sentence, and the
    /// numbers behind it.
    pub fn data(&self) -> Value {
        let mut data = json!({"event": self.event(), "message": self.message()});
        let extra = match self {
            Self::CircuitOpened {
                cooldown,
                after_probe,
            } => json!({"cooldown_s": whole_seconds(*cooldown), "after_probe": after_probe}),
            Self::CircuitClosed => json!({}),
            Self::RateLimited { pause, status } => {
                json!({"pause_s": whole_seconds(*pause), "status": status})
            }
            Self::SessionRenewed {
                from_epoch,
                to_epoch,
            } => json!({"from_epoch": from_epoch, "to_epoch": to_epoch}),
            Self::StaleRead { entity, as_of } => json!({"entity": entity, "as_of": as_of}),
            Self::ReplicaRebuilt(RebuildCause::EpochChanged { from, to }) => {
                json!({"cause": "epoch_changed", "from_epoch": from, "to_epoch": to})
            }
            Self::ReplicaRebuilt(RebuildCause::Unusable(reason)) => {
                json!({"cause": "unusable", "reason": reason})
            }
        };
        if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
            data.extend(extra);
        }
        data
    }
}

/// Seconds rounded up, at least one: "pause for 0 s" would mislead.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// Where notices are published and heard.
pub struct Hub {
    sender: broadcast::Sender<Notice>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            sender: broadcast::Sender::new(CAPACITY),
        }
    }

    /// Publishes the notice `make` builds, if anyone listens (otherwise
    /// `make` is not called).
    pub fn publish(&self, make: impl FnOnce() -> Notice) {
        if self.sender.receiver_count() > 0 {
            // Only fails when the last listener left meanwhile.
            let _ = self.sender.send(make());
        }
    }

    /// Hears every notice published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.sender.subscribe()
    }
}

static HUB: LazyLock<Hub> = LazyLock::new(Hub::new);

/// The process's hub.
pub fn hub() -> &'static Hub {
    &HUB
}

/// Publishes to the process's hub; see [`Hub::publish`].
pub fn publish(make: impl FnOnce() -> Notice) {
    HUB.publish(make);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing is built without a listener; a listener hears what is
    /// published after it subscribed, in order.
    #[test]
    fn built_only_for_a_listener() {
        let hub = Hub::new();
        let mut built = 0;
        hub.publish(|| {
            built += 1;
            Notice::CircuitClosed
        });
        assert_eq!(built, 0);
        let mut rx = hub.subscribe();
        hub.publish(|| Notice::CircuitClosed);
        hub.publish(|| Notice::RateLimited {
            pause: Duration::from_millis(1500),
            status: 429,
        });
        assert_eq!(rx.try_recv().ok(), Some(Notice::CircuitClosed));
        let Ok(limited) = rx.try_recv() else {
            panic!("the second notice is missing");
        };
        assert_eq!(limited.data()["pause_s"], 2);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn levels_are_ranked() {
        assert!(Level::Debug < Level::Info);
        assert!(Level::Warning < Level::Error);
        assert!(Level::Alert < Level::Emergency);
        let renewed = |from_epoch, to_epoch| Notice::SessionRenewed {
            from_epoch,
            to_epoch,
        };
        assert_eq!(renewed(3, 3).level(), Level::Info);
        assert_eq!(renewed(3, 4).level(), Level::Warning);
        assert_eq!(Notice::CircuitClosed.level(), Level::Notice);
    }

    /// The data names the event, says it in a sentence, and carries the
    /// numbers.
    #[test]
    fn data_says_what_happened() {
        let opened = Notice::CircuitOpened {
            cooldown: Duration::from_secs(15),
            after_probe: false,
        };
        let data = opened.data();
        assert_eq!(data["event"], "circuit_opened");
        assert_eq!(data["cooldown_s"], 15);
        assert!(
            data["message"].as_str().is_some_and(|m| m.contains("15 s")),
            "{data}"
        );
        let stale = Notice::StaleRead {
            entity: "notes",
            as_of: Some("2026-11-30T10:00:00Z".into()),
        };
        assert!(
            stale
                .message()
                .contains("notes were read from the local copy as of 2026-11-30T10:00:00Z")
        );
        let rebuilt = Notice::ReplicaRebuilt(RebuildCause::EpochChanged { from: 1, to: 2 });
        assert_eq!(rebuilt.data()["cause"], "epoch_changed");
    }
}
