//! The log line's JSON, written straight into the line's buffer.
//!
//! The same object tracing-subscriber's `json().flatten_event(true)` writes
//! (timestamp, level, the event's fields in order, target), which `stats`
//! reads. That formatter passes each piece through serde_json's serializer
//! and an `io::Write` adapter that checks every piece is UTF-8 again; the
//! audit line of each tool call is on the call's path, so here each piece is
//! written once, escaped as it goes.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats an event as one JSON line.
pub struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`.
struct Fields<'w, 'a> {
    writer: &'w mut Writer<'a>,
    /// The first failure; the fields after it are skipped.
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.writer.write_char(',')?;
                string(self.writer, field.name())?;
                self.writer.write_char(':')?;
                value(self.writer)
            })();
        }
    }
}

impl Visit for Fields<'_, '_> {
    /// As serde_json writes it (ryu's shortest form; `Display` falls back
    /// to slow exact arithmetic for a duration such as 0.048142000000000004).
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, |w| {
            if value.is_finite() {
                w.write_str(ryu::Buffer::new().format_finite(value))
            } else {
                // JSON has no NaN or infinity.
                w.write_str("null")
            }
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| string(w, value));
    }

    /// `%value` (a `Display`), `?value`, the message, and 128-bit numbers
    /// (a string, as tracing-serde writes them).
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(Escaping(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `s` as a JSON string.
fn string(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaping(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string, as
/// serde_json does: `"`, `\` and control characters.
struct Escaping<'w, 'a>(&'w mut Writer<'a>);

impl Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Written {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    impl Written {
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines().map(str::to_owned).collect()
        }
    }

    /// Logs events of every kind of field.
    fn log_events() {
        let uid = uuid::Uuid::nil();
        tracing::info!(
            tool = %"get_note",
            uid = Some(tracing::field::display(uid)),
            absent = None::<tracing::field::DisplayValue<uuid::Uuid>>,
            attempts = 3u32,
            delta = -2i64,
            big = u128::MAX,
            duration_ms = 0.048_142_000_000_000_004,
            whole_ms = 2.0,
            not_a_number = f64::NAN,
            stale = false,
            error_message = "a \"quoted\" \\ line\nbreak\ttab \u{1} \u{7f} déjà vu 🚀",
            debugged = ?vec!["a\"b"],
            "tool call"
        );
        tracing::warn!(target: "elsewhere", "plain \"message\"");
    }

    fn lines(json_line: bool) -> Vec<String> {
        let written = Written::default();
        let builder = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(written.clone());
        if json_line {
            tracing::subscriber::with_default(builder.event_format(JsonLine).finish(), log_events);
        } else {
            tracing::subscriber::with_default(builder.finish(), log_events);
        }
        written.lines()
    }

    /// Each line is what tracing-subscriber's JSON formatter writes: the
    /// same keys in the same order, the same values once parsed, and the
    /// timestamp in the same shape.
    #[test]
    fn lines_are_what_the_json_formatter_writes() {
        let (ours, theirs) = (lines(true), lines(false));
        assert_eq!(ours.len(), 2, "{ours:?}");
        assert_eq!(ours.len(), theirs.len());
        for (ours, theirs) in ours.iter().zip(&theirs) {
            let parse = |line: &str| -> serde_json::Map<String, Value> {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
            };
            let (mut ours, mut theirs) = (parse(ours), parse(theirs));
            let (at, their_at) = (ours.remove("timestamp"), theirs.remove("timestamp"));
            let shape = |t: Option<Value>| {
                let t = t.unwrap();
                let t = t.as_str().unwrap();
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .unwrap();
                t.len()
            };
            assert_eq!(shape(at), shape(their_at));
            assert_eq!(
                ours.keys().collect::<Vec<_>>(),
                theirs.keys().collect::<Vec<_>>()
            );
            assert_eq!(ours, theirs);
        }
        assert!(ours[0].contains("\"not_a_number\":null"), "{}", ours[0]);
        assert!(!ours[0].contains("absent"));
    }
}
