//! Log files into running totals, one line at a time.
//!
//! Memory is bounded by what the numbers need, not by the files: per tool a
//! few counters and one `f32` per call for the percentiles (4 bytes, so a
//! million calls is 4 MB); with `--html`, 16 bytes per call for the timeline;
//! with `--errors`, the failed calls themselves. A line is held only while it
//! is parsed, and one longer than [`MAX_LINE`] is skipped unread.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Longest line read; longer ones (a corrupt file with no newlines) are
/// skipped without being held in memory.
const MAX_LINE: u64 = 64 * 1024;

/// The log lines stats counts, by their exact `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    ToolCall,
    CircuitOpened,
    CircuitClosed,
    CircuitHalfOpen,
    Resession,
    UpstreamStatus,
    ReplicaRefreshed,
    ReplicaRebuilt,
}

/// Every message stats reads, and where it is written. Change a message
/// there and here together; `tests/stats.rs` runs real calls through the
/// binary to catch the tool-call line drifting.
const EVENTS: &[(&str, Event)] = &[
    // src/service.rs, Service::run: one per tool call (tool, correlation_id,
    // upstream_correlation_id?, uid?, attempts, status?, duration_ms,
    // outcome, retries?, waited_ms?, error?, stale?, bytes?).
    ("tool call", Event::ToolCall),
    // src/upstream/breaker.rs, Breaker::record (cooldown_s) and Breaker::admit.
    (
        "circuit opened: the upstream keeps failing",
        Event::CircuitOpened,
    ),
    (
        "circuit closed: the upstream answered the probe",
        Event::CircuitClosed,
    ),
    (
        "circuit closed: the upstream answered",
        Event::CircuitClosed,
    ),
    (
        "circuit half-open: probing the upstream",
        Event::CircuitHalfOpen,
    ),
    // src/upstream/call.rs, Client::attempt: a lost session or epoch (status?).
    ("renewing the sync session", Event::Resession),
    // src/upstream/mod.rs, Client::exchange: one per attempt answered 429 or
    // 5xx (status, correlation_id).
    ("upstream status", Event::UpstreamStatus),
    // src/replica/follow.rs: a refresh (entity, fetched), and a rebuild after
    // a wipe elsewhere (from, to).
    ("replica refreshed", Event::ReplicaRefreshed),
    (
        "replica rebuilt: the upstream's data epoch changed",
        Event::ReplicaRebuilt,
    ),
    // src/replica/file.rs, open: a damaged or foreign file (path, reason).
    (
        "replica unusable, rebuilding it empty",
        Event::ReplicaRebuilt,
    ),
];

fn event(message: &str) -> Option<Event> {
    EVENTS
        .iter()
        .find(|(known, _)| *known == message)
        .map(|(_, event)| *event)
}

/// What to collect beyond the totals.
pub struct Wanted {
    /// Lines before this are not counted.
    pub since: OffsetDateTime,
    /// Only this tool's calls.
    pub tool: Option<String>,
    /// Keep each failed call (`--errors`).
    pub failures: bool,
    /// Keep each call's time, duration and outcome (`--html`).
    pub timeline: bool,
}

/// One tool's running totals.
#[derive(Debug, Default)]
pub struct ToolTotals {
    pub calls: u64,
    pub ok: u64,
    /// Failed calls by error code.
    pub errors: BTreeMap<String, u64>,
    /// Each call's duration in ms, for the percentiles.
    pub durations: Vec<f32>,
    pub retries: u64,
    pub waited_ms: f64,
    /// Reads answered from the local replica while the upstream was away.
    pub stale: u64,
    /// Bytes returned (the results' compact JSON), and the most one call
    /// returned.
    pub bytes: u64,
    pub max_bytes: u64,
}

/// One call on the timeline: 16 bytes.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub ms: f32,
    /// Index into [`Scan::outcomes`]; 0 is `ok`.
    pub outcome: u16,
}

/// A failed call, for `--errors`.
#[derive(Debug)]
pub struct Failure {
    pub at: OffsetDateTime,
    pub tool: String,
    pub code: String,
    pub correlation_id: Option<String>,
    /// The upstream's own id for the call, when it differs.
    pub upstream_correlation_id: Option<String>,
    /// The item the call acted on.
    pub uid: Option<String>,
    pub status: Option<u64>,
    pub message: Option<String>,
}

/// From a `circuit opened` line to the `circuit closed` line after it. A
/// failed probe logs `circuit opened` again: that extends the same opening.
#[derive(Debug)]
pub struct Opening {
    pub opened: OffsetDateTime,
    /// The latest `circuit opened` line of this opening, and its cooldown.
    pub last_opened: OffsetDateTime,
    pub cooldown_s: f64,
    pub closed: Option<OffsetDateTime>,
    /// Failed probes that opened it again.
    pub reopened: u64,
}

/// Running totals over the lines read so far.
pub struct Scan {
    wanted: Wanted,
    /// Non-blank lines in the files read.
    pub read: u64,
    /// Well-formed lines older than the window.
    pub before_window: u64,
    /// Lines that are not a log line of this program, or are one with fields
    /// of the wrong kind: corrupt, truncated, foreign.
    pub skipped: u64,
    pub tools: BTreeMap<String, ToolTotals>,
    /// The outcomes seen, for [`Point::outcome`]; `ok` first.
    pub outcomes: Vec<String>,
    pub points: Vec<Point>,
    pub failures: Vec<Failure>,
    pub openings: Vec<Opening>,
    /// The last opening has had no `circuit closed` line yet.
    open: bool,
    pub resessions: u64,
    /// `upstream status` lines by status.
    pub statuses: BTreeMap<u16, u64>,
    pub refreshes: u64,
    pub fetched: u64,
    pub rebuilds: u64,
}

/// A line that is not ours, or is ours with a field of the wrong kind.
struct Corrupt;

impl Scan {
    pub fn new(wanted: Wanted) -> Self {
        Self {
            wanted,
            read: 0,
            before_window: 0,
            skipped: 0,
            tools: BTreeMap::new(),
            outcomes: vec!["ok".to_owned()],
            points: Vec::new(),
            failures: Vec::new(),
            openings: Vec::new(),
            open: false,
            resessions: 0,
            statuses: BTreeMap::new(),
            refreshes: 0,
            fetched: 0,
            rebuilds: 0,
        }
    }

    pub fn wanted(&self) -> &Wanted {
        &self.wanted
    }

    /// Counts every line of one file, streaming.
    pub fn read_file(&mut self, path: &Path) -> io::Result<()> {
        self.read_lines(BufReader::with_capacity(
            64 * 1024,
            std::fs::File::open(path)?,
        ))
    }

    fn read_lines(&mut self, mut reader: impl BufRead) -> io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line)?;
            if n == 0 {
                return Ok(());
            }
            if line.last() != Some(&b'\n') && n as u64 == MAX_LINE {
                // Too long to be ours: drop the rest of it unread.
                reader.skip_until(b'\n')?;
                self.read += 1;
                self.skipped += 1;
                continue;
            }
            self.add_line(&line);
        }
    }

    /// Counts one line (with or without its newline).
    pub fn add_line(&mut self, line: &[u8]) {
        let line = line.trim_ascii();
        if line.is_empty() {
            return;
        }
        self.read += 1;
        if self.take(line).is_err() {
            self.skipped += 1;
        }
    }

    fn take(&mut self, line: &[u8]) -> Result<(), Corrupt> {
        let fields: Fields<'_> = serde_json::from_slice(line).map_err(|_| Corrupt)?;
        let at = text(&fields.timestamp)?
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .ok_or(Corrupt)?;
        let message = text(&fields.message)?.ok_or(Corrupt)?;
        if at < self.wanted.since {
            self.before_window += 1;
            return Ok(());
        }
        match event(message) {
            // A line of ours stats does not count (a startup, a session).
            None => Ok(()),
            Some(Event::ToolCall) => self.tool_call(at, &fields),
            Some(Event::CircuitOpened) => {
                let cooldown_s = non_negative(float(&fields.cooldown_s)?)?.unwrap_or(0.0);
                self.circuit_opened(at, cooldown_s);
                Ok(())
            }
            Some(Event::CircuitClosed) => {
                if self.open
                    && let Some(opening) = self.openings.last_mut()
                {
                    opening.closed = Some(at);
                }
                self.open = false;
                Ok(())
            }
            Some(Event::CircuitHalfOpen) => Ok(()),
            Some(Event::Resession) => {
                self.resessions += 1;
                Ok(())
            }
            Some(Event::UpstreamStatus) => {
                let status = unsigned(&fields.status)?
                    .and_then(|s| u16::try_from(s).ok())
                    .ok_or(Corrupt)?;
                *self.statuses.entry(status).or_default() += 1;
                Ok(())
            }
            Some(Event::ReplicaRefreshed) => {
                self.refreshes += 1;
                self.fetched += unsigned(&fields.fetched)?.unwrap_or(0);
                Ok(())
            }
            Some(Event::ReplicaRebuilt) => {
                self.rebuilds += 1;
                Ok(())
            }
        }
    }

    fn tool_call(&mut self, at: OffsetDateTime, fields: &Fields<'_>) -> Result<(), Corrupt> {
        // Every field is checked before the tool filter, so a corrupt line is
        // skipped whatever the filter.
        let tool = text(&fields.tool)?.ok_or(Corrupt)?;
        let outcome = text(&fields.outcome)?.ok_or(Corrupt)?;
        let ms = non_negative(float(&fields.duration_ms)?)?.ok_or(Corrupt)?;
        let retries = unsigned(&fields.retries)?.unwrap_or(0);
        let waited_ms = non_negative(float(&fields.waited_ms)?)?.unwrap_or(0.0);
        let stale = boolean(&fields.stale)?.unwrap_or(false);
        let correlation_id = text(&fields.correlation_id)?;
        let upstream_correlation_id = text(&fields.upstream_correlation_id)?;
        let uid = text(&fields.uid)?;
        let error = text(&fields.error_message)?;
        let status = unsigned(&fields.status)?;
        let bytes = unsigned(&fields.bytes)?.unwrap_or(0);
        if self.wanted.tool.as_deref().is_some_and(|only| only != tool) {
            return Ok(());
        }

        if !self.tools.contains_key(tool) {
            self.tools.insert(tool.to_owned(), ToolTotals::default());
        }
        let Some(totals) = self.tools.get_mut(tool) else {
            return Ok(());
        };
        totals.calls += 1;
        if outcome == "ok" {
            totals.ok += 1;
        } else if let Some(n) = totals.errors.get_mut(outcome) {
            *n += 1;
        } else {
            totals.errors.insert(outcome.to_owned(), 1);
        }
        totals.durations.push(ms as f32);
        totals.retries += retries;
        totals.waited_ms += waited_ms;
        totals.stale += u64::from(stale);
        totals.bytes += bytes;
        totals.max_bytes = totals.max_bytes.max(bytes);

        if self.wanted.timeline {
            let outcome = self.outcome_index(outcome);
            self.points.push(Point {
                at: at.unix_timestamp_nanos() as f64 / 1e9,
                ms: ms as f32,
                outcome,
            });
        }
        if self.wanted.failures && outcome != "ok" {
            self.failures.push(Failure {
                at,
                tool: tool.to_owned(),
                code: outcome.to_owned(),
                correlation_id: correlation_id.map(str::to_owned),
                upstream_correlation_id: upstream_correlation_id.map(str::to_owned),
                uid: uid.map(str::to_owned),
                status,
                message: error.map(str::to_owned),
            });
        }
        Ok(())
    }

    fn outcome_index(&mut self, outcome: &str) -> u16 {
        if let Some(i) = self.outcomes.iter().position(|o| o == outcome) {
            return i as u16;
        }
        // A tampered file could invent codes without end; past this many
        // they share the last slot.
        if self.outcomes.len() >= 64 {
            return 63;
        }
        self.outcomes.push(outcome.to_owned());
        (self.outcomes.len() - 1) as u16
    }

    fn circuit_opened(&mut self, at: OffsetDateTime, cooldown_s: f64) {
        if self.open
            && let Some(opening) = self.openings.last_mut()
        {
            opening.reopened += 1;
            opening.last_opened = at;
            opening.cooldown_s = cooldown_s;
            return;
        }
        self.open = true;
        self.openings.push(Opening {
            opened: at,
            last_opened: at,
            cooldown_s,
            closed: None,
            reopened: 0,
        });
    }
}

/// The fields of any line stats counts. Each is read as whatever JSON value
/// it holds, so a field of the wrong kind on a line stats does not count
/// (another program's `status: "OK"`) costs nothing, and on one it counts
/// makes that line skipped.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Fields<'a> {
    #[serde(borrow)]
    timestamp: Option<Scalar<'a>>,
    #[serde(borrow)]
    message: Option<Scalar<'a>>,
    #[serde(borrow)]
    tool: Option<Scalar<'a>>,
    #[serde(borrow)]
    outcome: Option<Scalar<'a>>,
    #[serde(borrow)]
    correlation_id: Option<Scalar<'a>>,
    /// Lines written before `error_code` and `error_message` named the
    /// message `error`.
    #[serde(borrow, alias = "error")]
    error_message: Option<Scalar<'a>>,
    #[serde(borrow)]
    duration_ms: Option<Scalar<'a>>,
    #[serde(borrow)]
    status: Option<Scalar<'a>>,
    #[serde(borrow)]
    retries: Option<Scalar<'a>>,
    #[serde(borrow)]
    waited_ms: Option<Scalar<'a>>,
    #[serde(borrow)]
    stale: Option<Scalar<'a>>,
    #[serde(borrow)]
    cooldown_s: Option<Scalar<'a>>,
    #[serde(borrow)]
    fetched: Option<Scalar<'a>>,
    #[serde(borrow)]
    bytes: Option<Scalar<'a>>,
    #[serde(borrow)]
    uid: Option<Scalar<'a>>,
    #[serde(borrow)]
    upstream_correlation_id: Option<Scalar<'a>>,
}

/// One JSON value, borrowed from the line when it has no escapes.
enum Scalar<'a> {
    Text(Cow<'a, str>),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
    /// An array or an object.
    Other,
}

// Each accessor: absent is `Ok(None)`, present but of another kind is
// `Err(Corrupt)`.

fn text<'s>(field: &'s Option<Scalar<'_>>) -> Result<Option<&'s str>, Corrupt> {
    match field {
        None => Ok(None),
        Some(Scalar::Text(s)) => Ok(Some(s)),
        Some(_) => Err(Corrupt),
    }
}

fn float(field: &Option<Scalar<'_>>) -> Result<Option<f64>, Corrupt> {
    match field {
        None => Ok(None),
        Some(Scalar::Float(x)) => Ok(Some(*x)),
        Some(Scalar::Unsigned(n)) => Ok(Some(*n as f64)),
        Some(Scalar::Signed(n)) => Ok(Some(*n as f64)),
        Some(_) => Err(Corrupt),
    }
}

fn unsigned(field: &Option<Scalar<'_>>) -> Result<Option<u64>, Corrupt> {
    match field {
        None => Ok(None),
        Some(Scalar::Unsigned(n)) => Ok(Some(*n)),
        Some(_) => Err(Corrupt),
    }
}

fn boolean(field: &Option<Scalar<'_>>) -> Result<Option<bool>, Corrupt> {
    match field {
        None => Ok(None),
        Some(Scalar::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Corrupt),
    }
}

/// A duration is a finite number of at least zero.
fn non_negative(value: Option<f64>) -> Result<Option<f64>, Corrupt> {
    match value {
        Some(x) if !(x.is_finite() && x >= 0.0) => Err(Corrupt),
        other => Ok(other),
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Unsigned(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Signed(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn scan() -> Scan {
        Scan::new(Wanted {
            since: datetime!(2026-11-30 0:00 UTC),
            tool: None,
            failures: true,
            timeline: true,
        })
    }

    fn call(at: &str, tool: &str, outcome: &str, ms: f64) -> String {
        format!(
            r#"{{"timestamp":"{at}","level":"INFO","message":"tool call","tool":"{tool}","correlation_id":"c","attempts":1,"duration_ms":{ms},"outcome":"{outcome}","target":"toolbridge_mcp::service"}}"#
        )
    }

    /// Calls are totalled per tool; lines that are not ours, or are ours
    /// with a field of the wrong kind, are skipped and counted.
    #[test]
    fn counts_calls_and_skips_what_is_not_ours() {
        let mut s = scan();
        let good = call("2026-11-30T10:00:00Z", "get_note", "ok", 2.5);
        let lines = [
            good.as_str(),
            &call("2026-11-30T10:00:01Z", "get_note", "not_found", 1.0),
            &call("2026-11-29T10:00:01Z", "get_note", "ok", 1.0),
            r#"{"timestamp":"2026-11-30T10:00:02Z","level":"INFO","message":"opened a sync session","epoch":1}"#,
            r#"{"timestamp":"2026-11-30T10:00:02Z","message":"tool call","tool":"x","outcome":"ok","duration_ms":"fast"}"#,
            r#"{"timestamp":"2026-11-30T10:00:02Z","message":"tool call","tool":"x","outcome":"ok","duration_ms":-1}"#,
            r#"{"timestamp":"not a time","message":"tool call"}"#,
            r#"{"level":30,"msg":"pino"}"#,
            "[1,2]",
            "plain text",
            &good[..good.len() / 2],
            "",
            "   ",
        ];
        for line in lines {
            s.add_line(line.as_bytes());
        }
        assert_eq!((s.read, s.before_window, s.skipped), (11, 1, 7));
        let get = &s.tools["get_note"];
        assert_eq!((get.calls, get.ok, get.errors["not_found"]), (2, 1, 1));
        assert_eq!(s.points.len(), 2);
        assert_eq!(s.failures.len(), 1);
        assert_eq!(s.outcomes, ["ok", "not_found"]);
    }

    /// A failed probe extends the opening; a close ends it; a stray close
    /// is ignored.
    #[test]
    fn pairs_circuit_openings_with_closes() {
        let mut s = scan();
        for (at, message) in [
            ("10:00:00", "circuit closed: the upstream answered"),
            ("10:00:00", "circuit opened: the upstream keeps failing"),
            ("10:00:15", "circuit half-open: probing the upstream"),
            ("10:00:15", "circuit opened: the upstream keeps failing"),
            (
                "10:00:31",
                "circuit closed: the upstream answered the probe",
            ),
            ("11:00:00", "circuit opened: the upstream keeps failing"),
        ] {
            s.add_line(
                format!(
                    r#"{{"timestamp":"2026-11-30T{at}Z","message":"{message}","cooldown_s":15.0}}"#
                )
                .as_bytes(),
            );
        }
        assert_eq!(s.skipped, 0);
        assert_eq!(s.openings.len(), 2);
        assert_eq!(s.openings[0].reopened, 1);
        assert_eq!(
            s.openings[0].closed,
            Some(datetime!(2026-11-30 10:00:31 UTC))
        );
        assert_eq!(s.openings[1].closed, None);
    }

    /// A line longer than the cap is skipped without being buffered, and the
    /// line after it still counts.
    #[test]
    fn skips_an_overlong_line() {
        let mut s = scan();
        let mut input = vec![b'x'; MAX_LINE as usize * 3];
        input.push(b'\n');
        input.extend_from_slice(call("2026-11-30T10:00:00Z", "get_note", "ok", 1.0).as_bytes());
        s.read_lines(&input[..]).unwrap();
        assert_eq!((s.read, s.skipped), (2, 1));
        assert_eq!(s.tools["get_note"].calls, 1);
    }

    #[test]
    fn every_message_is_listed_once() {
        for (i, (message, _)) in EVENTS.iter().enumerate() {
            assert!(
                EVENTS[i + 1..].iter().all(|(m, _)| m != message),
                "{message}"
            );
        }
    }
}
