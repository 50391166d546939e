//! Live resource updates: who watches which resources, the notifications
//! the replica's changes become, and the polling that keeps watched
//! entities current between reads.
//!
//! One hub, two eras. In the `initialize` era the session subscribes with
//! `resources/subscribe` (and `resources/unsubscribe`), and hears
//! `notifications/resources/list_changed` once it has listed resources or
//! subscribed; both go through the session's peer. In the 2026-07-28 era
//! each `subscriptions/listen` request is a stream of its own, with the URIs
//! and the list changes its filter accepted, until the client cancels it;
//! its notifications go through the stream's sink, which tags them with the
//! stream's id (a bare peer notification would go out untagged).
//!
//! What is heard is what the replica stores ([`Follower::changes`]): writes
//! through the tools, the refreshes of reads, and this hub's own polling.
//! While a resource is subscribed, or a stream wants list changes, the
//! entities behind them (a note's comments and a chat's messages included:
//! they are part of its markdown) are refreshed every `--max-staleness`, at
//! least [`MIN_POLL_INTERVAL`] apart, so a change made on another device is
//! heard within that bound; polling stops with the last subscription. An
//! `initialize`-era session that only listed resources asked for nothing, so
//! nothing is polled for it: it hears the list changes the replica sees
//! anyway.
//!
//! Sidecars may share one replica file, and what another one stores is no
//! change to this one (its own refresh finds the same version). So after
//! each poll what the replica holds of each subscribed item is observed too
//! ([`Seen`]: its version and those of the comments or messages shown with
//! it): one that differs from what was last heard is an update. While a
//! stream wants list changes, how many resources (and tombstones) the
//! replica holds is observed the same way: a difference is a list change.
//!
//! `list_changed` is coalesced: the first create or delete after a quiet
//! spell starts a [`LIST_CHANGED_PERIOD`] timer, and one notification goes
//! out when it ends, whatever came meanwhile: at most one per period.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::{Peer, RoleServer, SubscriptionSink};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::catalog::Entity;
use crate::replica::{Change, ChangeKind, Follower};
use crate::service::{self, Service};
use crate::upstream::Call;

/// The most `notifications/resources/list_changed` a subscriber hears: one
/// per period.
pub const LIST_CHANGED_PERIOD: Duration = Duration::from_secs(1);
/// The shortest time between two polls of the watched entities, whatever
/// `--max-staleness` says (0 would poll without pause).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What the poller observes in the replica.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Watched {
    /// A subscribed resource, by URI.
    Item(String),
    /// The resource list.
    List,
}

/// What the replica holds of a [`Watched`]. Of an item's markdown: the
/// item's version and the sum of the versions of the items shown with it (a
/// note's comments, a chat's messages); versions only grow, so any write to
/// any of them changes it. Of the list: how many resources and tombstones;
/// a create or a delete changes it.
type Seen = (i64, i64);

/// Reads what the replica holds of a [`Watched`] now (`None` when it cannot
/// tell).
type See = Arc<dyn Fn(&Watched) -> Option<Seen> + Send + Sync>;

/// What the replica held, seen by polling.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    watched: Watched,
    seen: Seen,
}

/// What a subscriber is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Updated(String),
    ListChanged,
}

/// Where one subscriber's notifications go.
#[derive(Clone)]
enum Outlet {
    /// The `initialize` era: the session's peer.
    Session(Peer<RoleServer>),
    /// The 2026-07-28 era: one `subscriptions/listen` stream.
    Stream(SubscriptionSink),
    #[cfg(test)]
    Recorder(tokio::sync::mpsc::UnboundedSender<Sent>),
}

impl Outlet {
    async fn send(&self, sent: &Sent) {
        let failed = match (self, sent) {
            (Self::Session(peer), Sent::Updated(uri)) => peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri.clone()))
                .await
                .err()
                .map(|e| e.to_string()),
            (Self::Session(peer), Sent::ListChanged) => peer
                .notify_resource_list_changed()
                .await
                .err()
                .map(|e| e.to_string()),
            (Self::Stream(sink), Sent::Updated(uri)) => sink
                .notify_resource_updated(uri.clone())
                .await
                .err()
                .map(|e| e.to_string()),
            (Self::Stream(sink), Sent::ListChanged) => sink
                .notify_resource_list_changed()
                .await
                .err()
                .map(|e| e.to_string()),
            #[cfg(test)]
            (Self::Recorder(sent_to), sent) => {
                sent_to.send(sent.clone()).err().map(|e| e.to_string())
            }
        };
        // A client that left (or a stream just cancelled) has nothing to
        // hear; its subscriber is removed with it.
        if let Some(error) = failed {
            tracing::debug!(%error, "a resource notification was not sent");
        }
    }
}

struct Subscriber {
    outlet: Outlet,
    /// Resource URIs it hears `notifications/resources/updated` for.
    uris: HashSet<String>,
    /// Whether it hears `notifications/resources/list_changed`.
    list_changed: bool,
    /// Whether list changes are polled for (it asked for them).
    polls_lists: bool,
}

#[derive(Default)]
struct Subscribers {
    /// The `initialize` era's session, once it listed or subscribed.
    session: Option<Subscriber>,
    /// The 2026-07-28 era's open `subscriptions/listen` streams.
    streams: HashMap<u64, Subscriber>,
    next_stream: u64,
}

impl Subscribers {
    fn all(&self) -> impl Iterator<Item = &Subscriber> {
        self.session.iter().chain(self.streams.values())
    }

    fn session(&mut self, peer: &Peer<RoleServer>) -> &mut Subscriber {
        self.session.get_or_insert_with(|| Subscriber {
            outlet: Outlet::Session(peer.clone()),
            uris: HashSet::new(),
            list_changed: true,
            polls_lists: false,
        })
    }

    /// The entities to keep fresh, in `enabled` order: those of the
    /// subscribed URIs and what their markdown shows, and every resource
    /// entity while someone asked for list changes.
    fn watched(&self, enabled: &[&'static Entity]) -> Vec<&'static Entity> {
        let mut names = HashSet::new();
        for subscriber in self.all() {
            if subscriber.polls_lists {
                names.extend(service::resource_entities(enabled).iter().map(|e| e.plural));
            }
            for uri in &subscriber.uris {
                if let Ok((entity, _)) = service::parse_uri(enabled, uri) {
                    names.insert(entity.plural);
                    names.extend(service::shown_with(entity.plural).map(|(child, _)| child));
                }
            }
        }
        enabled
            .iter()
            .copied()
            .filter(|e| names.contains(e.plural))
            .collect()
    }

    /// Who hears which of `uris` updated.
    fn updated(&self, uris: &[String]) -> Vec<(Outlet, Sent)> {
        self.all()
            .flat_map(|s| {
                uris.iter()
                    .filter(|uri| s.uris.contains(*uri))
                    .map(|uri| (s.outlet.clone(), Sent::Updated(uri.clone())))
            })
            .collect()
    }

    /// Every subscribed URI, each to its subscriber: after missing changes,
    /// any of them may have changed.
    fn everything(&self) -> Vec<(Outlet, Sent)> {
        self.all()
            .flat_map(|s| {
                s.uris
                    .iter()
                    .map(|uri| (s.outlet.clone(), Sent::Updated(uri.clone())))
            })
            .collect()
    }

    /// What the poller observes: every subscribed URI, once, and the list
    /// while someone polls it.
    fn observed(&self) -> HashSet<Watched> {
        let mut watched: HashSet<Watched> = self
            .all()
            .flat_map(|s| s.uris.iter().cloned().map(Watched::Item))
            .collect();
        if self.all().any(|s| s.polls_lists) {
            watched.insert(Watched::List);
        }
        watched
    }

    fn list_changed(&self) -> Vec<(Outlet, Sent)> {
        self.all()
            .filter(|s| s.list_changed)
            .map(|s| (s.outlet.clone(), Sent::ListChanged))
            .collect()
    }
}

/// What the delivery and polling tasks share with the handler.
struct Shared {
    subscribers: Mutex<Subscribers>,
    /// Wakes the poller: what is watched may have grown.
    watching: Notify,
    enabled: Vec<&'static Entity>,
}

impl Shared {
    fn new(enabled: &[&'static Entity]) -> Self {
        Self {
            subscribers: Mutex::default(),
            watching: Notify::new(),
            enabled: enabled.to_vec(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Subscribers> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The resource URIs whose markdown `change` alters: the item's own (if
    /// it is a resource) and its parent's (a comment's note or task, a
    /// message's chat).
    fn affected(&self, change: &Change) -> Vec<String> {
        let enabled = |plural: &str| self.enabled.iter().any(|e| e.plural == plural);
        let mut uris = Vec::new();
        if service::is_resource(change.entity) && enabled(change.entity) {
            uris.push(service::resource_uri(change.entity, change.uid));
        }
        if let Some(parent) = change.parent {
            for entity in &self.enabled {
                if service::shown_with(entity.plural)
                    .is_some_and(|(child, _)| child == change.entity)
                {
                    uris.push(service::resource_uri(entity.plural, parent));
                }
            }
        }
        uris
    }

    /// Whether `change` adds an item to the resource list or takes one out.
    fn changes_the_list(&self, change: &Change) -> bool {
        change.kind != ChangeKind::Updated
            && service::is_resource(change.entity)
            && self.enabled.iter().any(|e| e.plural == change.entity)
    }
}

/// The hub: one per MCP server (one stdio client). Its tasks start with the
/// first subscriber and stop when it is dropped.
pub struct Subscriptions {
    shared: Arc<Shared>,
    service: Arc<Service>,
    started: AtomicBool,
    stop: CancellationToken,
}

impl Subscriptions {
    pub fn new(service: Arc<Service>) -> Self {
        Self {
            shared: Arc::new(Shared::new(service.catalog().entities())),
            service,
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
        }
    }

    /// Whether subscriptions can be honoured: only the replica sees
    /// changes.
    pub fn available(&self) -> bool {
        self.service.follower().is_some()
    }

    /// Whether `uri` names a resource of this server (an enabled entity's,
    /// not a chat message's: those are read with their chat).
    pub fn accepts(&self, uri: &str) -> bool {
        service::parse_uri(&service::resource_entities(&self.shared.enabled), uri).is_ok()
    }

    /// The `initialize` era: `peer`'s session hears `uri` updated.
    pub fn subscribe(&self, peer: &Peer<RoleServer>, uri: String) {
        self.shared.lock().session(peer).uris.insert(uri);
        self.watch();
    }

    /// The `initialize` era: the session no longer hears `uri` updated.
    pub fn unsubscribe(&self, uri: &str) {
        if let Some(session) = &mut self.shared.lock().session {
            session.uris.remove(uri);
        }
    }

    /// The `initialize` era: the session listed resources, so it hears
    /// when the list changes.
    pub fn listed(&self, peer: &Peer<RoleServer>) {
        self.shared.lock().session(peer);
        self.watch();
    }

    /// The 2026-07-28 era: one `subscriptions/listen` stream, heard until
    /// `cancelled` resolves.
    pub async fn stream(
        &self,
        sink: SubscriptionSink,
        uris: Vec<String>,
        list_changed: bool,
        cancelled: impl Future<Output = ()>,
    ) {
        let id = {
            let mut subscribers = self.shared.lock();
            let id = subscribers.next_stream;
            subscribers.next_stream += 1;
            subscribers.streams.insert(
                id,
                Subscriber {
                    outlet: Outlet::Stream(sink),
                    uris: uris.into_iter().collect(),
                    list_changed,
                    polls_lists: list_changed,
                },
            );
            id
        };
        // Removed however this ends, the request's future dropped included.
        let _gone = StreamGuard {
            shared: &self.shared,
            id,
        };
        self.watch();
        cancelled.await;
    }

    /// Starts the tasks on first use and wakes the poller.
    fn watch(&self) {
        if let Some(follower) = self.service.follower()
            && !self.started.swap(true, Ordering::Relaxed)
        {
            let (observed, observations) = mpsc::unbounded_channel();
            let see = seer(follower.clone(), self.shared.enabled.clone());
            tokio::spawn(deliver(
                self.shared.clone(),
                follower.changes(),
                observations,
                see.clone(),
                self.stop.clone(),
            ));
            tokio::spawn(poll(
                self.shared.clone(),
                follower.clone(),
                observed,
                see,
                self.service.call_timeout(),
                self.stop.clone(),
            ));
        }
        self.shared.watching.notify_one();
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct StreamGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().streams.remove(&self.id);
    }
}

/// [`See`] on the follower's replica, once it is open.
fn seer(follower: Arc<Follower>, enabled: Vec<&'static Entity>) -> See {
    Arc::new(move |watched| {
        let replica = follower.opened()?;
        match watched {
            // Rows by their keys: microseconds, fine on this thread.
            Watched::Item(uri) => {
                let (entity, uid) = service::parse_uri(&enabled, uri).ok()?;
                let children = service::shown_with(entity.plural).map(|(child, _)| child);
                replica.versions_with(entity.plural, uid, children).ok()?
            }
            // A scan of each resource entity's rows, once per poll.
            Watched::List => service::resource_entities(&enabled)
                .iter()
                .map(|entity| replica.counts(entity.plural).ok())
                .try_fold((0, 0), |(live, gone), counts| {
                    counts.map(|(l, g)| (live + l, gone + g))
                }),
        }
    })
}

/// Turns the replica's changes, and what is observed of subscribed items,
/// into notifications, in order, until `stop`.
async fn deliver(
    shared: Arc<Shared>,
    mut changes: broadcast::Receiver<Change>,
    mut observations: mpsc::UnboundedReceiver<Observed>,
    see: See,
    stop: CancellationToken,
) {
    let mut list_due: Option<Instant> = None;
    // What was last heard of each thing observed: an observation of the
    // same was already told (by the change that stored it).
    let mut heard: HashMap<Watched, Seen> = HashMap::new();
    // What changes told since it was last read: read again once their burst
    // is through (a page of a sync is a thousand changes), before any
    // observation is compared with it.
    let mut told: HashSet<Watched> = HashSet::new();
    loop {
        if changes.is_empty() {
            // Read after the changes were stored, so a write by another
            // sidecar in between is told with them.
            for watched in told.drain() {
                if let Some(last) = heard.get_mut(&watched)
                    && let Some(now) = see(&watched)
                {
                    *last = now;
                }
            }
        }
        let due_at = list_due;
        let due = async move {
            match due_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let sends = tokio::select! {
            // In this order: a steady stream of changes must not hold the
            // list's notification back, and the poller observes only after
            // its refresh reported what it stored.
            biased;
            _ = stop.cancelled() => return,
            _ = due => {
                list_due = None;
                shared.lock().list_changed()
            }
            received = changes.recv() => match received {
                Ok(change) => {
                    let uris = shared.affected(&change);
                    // What this tells, the next observation must not tell again.
                    let mut tells: Vec<Watched> = uris.iter().cloned().map(Watched::Item).collect();
                    if shared.changes_the_list(&change) {
                        list_due.get_or_insert_with(|| Instant::now() + LIST_CHANGED_PERIOD);
                        tells.push(Watched::List);
                    }
                    told.extend(tells.into_iter().filter(|w| heard.contains_key(w)));
                    shared.lock().updated(&uris)
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "resource changes missed: every subscribed resource may have changed");
                    list_due.get_or_insert_with(|| Instant::now() + LIST_CHANGED_PERIOD);
                    // All is told: the next observations are baselines.
                    heard.clear();
                    told.clear();
                    shared.lock().everything()
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Some(Observed { watched, seen }) = observations.recv() => {
                match (heard.insert(watched.clone(), seen), watched) {
                    (Some(before), Watched::Item(uri)) if before != seen => {
                        shared.lock().updated(&[uri])
                    }
                    (Some(before), Watched::List) if before != seen => {
                        list_due.get_or_insert_with(|| Instant::now() + LIST_CHANGED_PERIOD);
                        Vec::new()
                    }
                    _ => Vec::new(),
                }
            }
        };
        for (outlet, sent) in sends {
            outlet.send(&sent).await;
        }
    }
}

/// Keeps the watched entities fresh while anything is watched.
async fn poll(
    shared: Arc<Shared>,
    follower: Arc<Follower>,
    observed: mpsc::UnboundedSender<Observed>,
    see: See,
    call_timeout: Duration,
    stop: CancellationToken,
) {
    let interval = follower.max_staleness().max(MIN_POLL_INTERVAL);
    loop {
        let watched = shared.lock().watched(&shared.enabled);
        if watched.is_empty() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = shared.watching.notified() => continue,
            }
        }
        let call = Call::new(call_timeout, stop.child_token());
        for entity in watched {
            if let Err(error) = follower.keep_fresh(entity, &call).await {
                tracing::debug!(entity = entity.plural, error = %error.summary(), "could not refresh a watched entity");
            }
        }
        if let Ok(Some(_)) = follower.replica(&call).await {
            let watched = shared.lock().observed();
            for watched in watched {
                if let Some(seen) = see(&watched) {
                    let _ = observed.send(Observed { watched, seen });
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::mpsc;
    use uuid::Uuid;

    use super::*;
    use crate::catalog::ENTITIES;

    const NOTE: Uuid = Uuid::from_u128(0x6f1c_2a39_8d2b_4c1e_9f3a_2b7c_4d5e_6f70);
    const OTHER: Uuid = Uuid::from_u128(0x0b6c_54a8_3f0e_4f4e_9a57_5d6f_21c0_a7b2);

    fn change(entity: &'static str, uid: Uuid, kind: ChangeKind) -> Change {
        Change {
            entity,
            uid,
            version: 1,
            kind,
            parent: None,
        }
    }

    /// A hub over every entity, delivering to one recorded subscriber of
    /// `uris` that hears list changes.
    fn hub(
        uris: &[String],
    ) -> (
        broadcast::Sender<Change>,
        mpsc::UnboundedSender<Observed>,
        mpsc::UnboundedReceiver<Sent>,
        CancellationToken,
    ) {
        hub_seeing(uris, Arc::new(|_| None))
    }

    /// Nothing else is told within 5 s (of paused time: at once).
    async fn nothing_more(heard: &mut mpsc::UnboundedReceiver<Sent>) {
        let rest = tokio::time::timeout(Duration::from_secs(5), heard.recv()).await;
        assert!(rest.is_err(), "told again: {rest:?}");
    }

    /// A hub (as [`hub`]) whose replica holds what the test sets, and
    /// counts how many times it was read.
    struct Watching {
        held: Arc<Mutex<Seen>>,
        reads: Arc<AtomicUsize>,
        changes: broadcast::Sender<Change>,
        observed: mpsc::UnboundedSender<Observed>,
        heard: mpsc::UnboundedReceiver<Sent>,
        stop: CancellationToken,
    }

    impl Watching {
        /// A subscriber of `uris`; the replica holds `start` of anything
        /// watched.
        fn new(uris: &[String], start: Seen) -> Self {
            let held = Arc::new(Mutex::new(start));
            let reads = Arc::new(AtomicUsize::new(0));
            let (read, counter) = (held.clone(), reads.clone());
            let see: See = Arc::new(move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
                Some(*read.lock().unwrap())
            });
            let (changes, observed, heard, stop) = hub_seeing(uris, see);
            Self {
                held,
                reads,
                changes,
                observed,
                heard,
                stop,
            }
        }

        /// What the replica holds from now on.
        fn hold(&self, seen: Seen) {
            *self.held.lock().unwrap() = seen;
        }

        /// The poller observes `seen` of `watched`.
        fn observe(&self, watched: &Watched, seen: Seen) {
            let watched = watched.clone();
            self.observed.send(Observed { watched, seen }).unwrap();
        }
    }

    /// [`hub`], reading the replica through `see`.
    fn hub_seeing(
        uris: &[String],
        see: See,
    ) -> (
        broadcast::Sender<Change>,
        mpsc::UnboundedSender<Observed>,
        mpsc::UnboundedReceiver<Sent>,
        CancellationToken,
    ) {
        let all: Vec<&'static Entity> = ENTITIES.iter().collect();
        let shared = Arc::new(Shared::new(&all));
        let (sent_to, heard) = mpsc::unbounded_channel();
        shared.lock().streams.insert(
            0,
            Subscriber {
                outlet: Outlet::Recorder(sent_to),
                uris: uris.iter().cloned().collect(),
                list_changed: true,
                polls_lists: true,
            },
        );
        let (changes, receiver) = broadcast::channel(16);
        let (observed, observations) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        tokio::spawn(deliver(shared, receiver, observations, see, stop.clone()));
        (changes, observed, heard, stop)
    }

    /// A burst of creates and deletes is one `list_changed`, a period after
    /// the first of them; the next burst another, never sooner than a
    /// period after the last. An update changes no list.
    #[tokio::test(start_paused = true)]
    async fn list_changes_are_coalesced_to_one_per_period() {
        let (changes, _, mut heard, stop) = hub(&[]);
        let start = Instant::now();
        let mut at = Vec::new();
        let note = |kind| change("notes", Uuid::new_v4(), kind);
        for kind in [
            ChangeKind::Created,
            ChangeKind::Created,
            ChangeKind::Deleted,
        ] {
            changes.send(note(kind)).unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(heard.recv().await, Some(Sent::ListChanged));
        at.push(start.elapsed());
        // Just after the first notification: the next must wait a period.
        tokio::time::sleep_until(start + Duration::from_millis(1050)).await;
        changes.send(note(ChangeKind::Created)).unwrap();
        changes.send(note(ChangeKind::Updated)).unwrap();
        let deadline = start + Duration::from_secs(10);
        while let Ok(Some(sent)) = tokio::time::timeout_at(deadline, heard.recv()).await {
            assert_eq!(sent, Sent::ListChanged);
            at.push(start.elapsed());
        }
        assert_eq!(
            at,
            [Duration::from_secs(1), Duration::from_millis(2050)],
            "one per burst, a period apart at least"
        );
        // Only updates: no list change at all.
        changes.send(note(ChangeKind::Updated)).unwrap();
        let quiet = tokio::time::timeout(Duration::from_secs(5), heard.recv()).await;
        assert!(quiet.is_err(), "an update changed the list: {quiet:?}");
        stop.cancel();
    }

    /// Updates go to the subscribed URIs only, in order, including a
    /// parent whose markdown shows the changed comment; a chat message is
    /// no resource of its own.
    #[tokio::test(start_paused = true)]
    async fn updates_reach_only_what_is_subscribed() {
        let subscribed = service::resource_uri("notes", NOTE);
        let (changes, _, mut heard, stop) = hub(std::slice::from_ref(&subscribed));
        changes
            .send(change("notes", OTHER, ChangeKind::Updated))
            .unwrap();
        changes
            .send(change("chat_messages", NOTE, ChangeKind::Created))
            .unwrap();
        changes
            .send(change("notes", NOTE, ChangeKind::Updated))
            .unwrap();
        changes
            .send(Change {
                parent: Some(NOTE),
                ..change("comments", OTHER, ChangeKind::Updated)
            })
            .unwrap();
        assert_eq!(heard.recv().await, Some(Sent::Updated(subscribed.clone())));
        assert_eq!(heard.recv().await, Some(Sent::Updated(subscribed)));
        // Nothing else: no other note, no list change for a message.
        let rest = tokio::time::timeout(Duration::from_secs(5), heard.recv()).await;
        assert!(rest.is_err(), "{rest:?}");
        stop.cancel();
    }

    /// What is observed in the replica that differs from what was last
    /// heard is an update (another sidecar stored the item, or a comment
    /// shown with it); the first observed, or what a change already told, is
    /// not.
    #[tokio::test(start_paused = true)]
    async fn observations_tell_what_others_stored() {
        let subscribed = service::resource_uri("notes", NOTE);
        let note = Watched::Item(subscribed.clone());
        let mut w = Watching::new(std::slice::from_ref(&subscribed), (3, 0));
        w.observe(&note, (3, 0));
        w.observe(&note, (3, 0));
        // The note, then a comment on it, stored by another sidecar.
        w.observe(&note, (4, 0));
        assert_eq!(
            w.heard.recv().await,
            Some(Sent::Updated(subscribed.clone()))
        );
        w.observe(&note, (4, 2));
        assert_eq!(
            w.heard.recv().await,
            Some(Sent::Updated(subscribed.clone()))
        );
        // A comment stored by this sidecar: told by its change, and not
        // again by the next observation.
        w.hold((4, 3));
        w.changes
            .send(Change {
                parent: Some(NOTE),
                ..change("comments", OTHER, ChangeKind::Updated)
            })
            .unwrap();
        assert_eq!(
            w.heard.recv().await,
            Some(Sent::Updated(subscribed.clone()))
        );
        w.observe(&note, (4, 3));
        nothing_more(&mut w.heard).await;
        w.stop.cancel();
    }

    /// The same for the list: a count observed that differs from the last
    /// heard is a list change (another sidecar created or deleted), one per
    /// period like the others; a create told by its change is not told
    /// again by the next observation.
    #[tokio::test(start_paused = true)]
    async fn observed_counts_tell_what_others_listed() {
        let mut w = Watching::new(&[], (5, 0));
        w.observe(&Watched::List, (5, 0));
        w.observe(&Watched::List, (5, 0));
        w.observe(&Watched::List, (6, 0));
        assert_eq!(w.heard.recv().await, Some(Sent::ListChanged));
        w.hold((7, 0));
        w.changes
            .send(change("notes", NOTE, ChangeKind::Created))
            .unwrap();
        assert_eq!(w.heard.recv().await, Some(Sent::ListChanged));
        w.observe(&Watched::List, (7, 0));
        nothing_more(&mut w.heard).await;
        w.stop.cancel();
    }

    /// After missing changes every subscribed resource is told updated, and
    /// the list changed; what the missed changes stored is not told again
    /// by the next observation.
    #[tokio::test(start_paused = true)]
    async fn after_missed_changes_observations_start_over() {
        let subscribed = service::resource_uri("notes", NOTE);
        let note = Watched::Item(subscribed.clone());
        let mut w = Watching::new(std::slice::from_ref(&subscribed), (3, 0));
        w.observe(&note, (3, 0));
        tokio::task::yield_now().await;
        // More than the channel holds: the subscribed note's is missed.
        w.hold((4, 0));
        w.changes
            .send(change("notes", NOTE, ChangeKind::Updated))
            .unwrap();
        for _ in 0..20 {
            w.changes
                .send(change("notes", OTHER, ChangeKind::Updated))
                .unwrap();
        }
        w.observe(&note, (4, 0));
        assert_eq!(
            w.heard.recv().await,
            Some(Sent::Updated(subscribed.clone()))
        );
        assert_eq!(w.heard.recv().await, Some(Sent::ListChanged));
        nothing_more(&mut w.heard).await;
        w.stop.cancel();
    }

    /// A burst of changes (a page of a sync) is told change by change, and
    /// what it changed is read once, after it.
    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_is_read_once() {
        let subscribed = service::resource_uri("notes", NOTE);
        let mut w = Watching::new(std::slice::from_ref(&subscribed), (3, 0));
        w.observe(&Watched::Item(subscribed.clone()), (3, 0));
        tokio::task::yield_now().await;
        w.hold((3, 10));
        for _ in 0..10 {
            w.changes
                .send(Change {
                    parent: Some(NOTE),
                    ..change("comments", Uuid::new_v4(), ChangeKind::Updated)
                })
                .unwrap();
        }
        for _ in 0..10 {
            assert_eq!(
                w.heard.recv().await,
                Some(Sent::Updated(subscribed.clone()))
            );
        }
        nothing_more(&mut w.heard).await;
        assert_eq!(w.reads.load(Ordering::Relaxed), 1);
        w.stop.cancel();
    }
}
