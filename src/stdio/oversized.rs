//! What can be read of a line too long to keep: a bounded scanner that walks
//! the line's bytes once, as they stream past, and keeps only the top-level
//! `id` and `method` (and which of `result`/`error` appeared). Clients put
//! `id` first or last (the TypeScript SDK and Python's pydantic order keys
//! differently), so the whole line is walked; nothing larger than a short
//! value is ever held.

use serde_json::Value;

/// The longest `id` or `method` value kept, as raw JSON; a longer one is
/// treated as unreadable.
const MAX_VALUE_BYTES: usize = 1024;
/// The longest top-level key compared; longer keys are none of interest.
const MAX_KEY_BYTES: usize = 8;

/// Where the scanner is in the top-level object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the opening `{`.
    Start,
    /// Expecting a key (after `{` or `,`).
    Key,
    /// After a key, expecting `:`.
    Colon,
    /// Inside a value (at any depth), until `,` or `}` at the top level.
    Value,
    /// The object closed, or the line is not one: the rest is only counted.
    Done,
}

/// The top-level fields of interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Method,
    Result,
    Error,
    Other,
}

/// A raw value being kept: off for fields of no interest, dropped when it
/// grows past [`MAX_VALUE_BYTES`].
#[derive(Debug)]
enum Capture {
    Off,
    On(Vec<u8>),
    TooLong,
}

#[derive(Debug)]
pub struct Scan {
    bytes: u64,
    phase: Phase,
    /// Nesting depth: 1 inside the top-level object.
    depth: u32,
    in_string: bool,
    escaped: bool,
    key: Vec<u8>,
    key_too_long: bool,
    field: Field,
    value: Capture,
    found: Found,
}

/// What was read of an oversized line.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Found {
    /// The line's length in bytes, without its newline.
    pub bytes: u64,
    /// The line opened a JSON object.
    pub object: bool,
    /// An `id` key was present, readable or not.
    pub has_id: bool,
    /// The id, when it is a string or a number.
    pub id: Option<Value>,
    pub method: Option<String>,
    /// A `result` or `error` key was present (a response).
    pub response: bool,
}

impl Default for Scan {
    fn default() -> Self {
        Self {
            bytes: 0,
            phase: Phase::Start,
            depth: 0,
            in_string: false,
            escaped: false,
            key: Vec::new(),
            key_too_long: false,
            field: Field::Other,
            value: Capture::Off,
            found: Found::default(),
        }
    }
}

impl Scan {
    /// Walks the next piece of the line (without its newline).
    pub fn feed(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        if self.phase == Phase::Done {
            return;
        }
        for &byte in chunk {
            self.byte(byte);
            if self.phase == Phase::Done {
                return;
            }
        }
    }

    pub fn finish(mut self) -> Found {
        self.found.bytes = self.bytes;
        self.found
    }

    fn byte(&mut self, byte: u8) {
        if self.in_string {
            self.keep(byte);
            if self.escaped {
                self.escaped = false;
            } else if byte == b'\\' {
                self.escaped = true;
            } else if byte == b'"' {
                self.in_string = false;
                if self.phase == Phase::Key {
                    self.key_read();
                }
            }
            return;
        }
        match self.phase {
            Phase::Start => match byte {
                b'{' => {
                    self.found.object = true;
                    self.depth = 1;
                    self.phase = Phase::Key;
                }
                b if is_space(b) => {}
                _ => self.phase = Phase::Done,
            },
            Phase::Key => match byte {
                b'"' => {
                    self.in_string = true;
                    self.key.clear();
                    self.key_too_long = false;
                }
                b'}' => self.phase = Phase::Done,
                b if is_space(b) => {}
                _ => self.phase = Phase::Done,
            },
            Phase::Colon => match byte {
                b':' => {
                    self.phase = Phase::Value;
                    self.value = match self.field {
                        Field::Id | Field::Method => Capture::On(Vec::new()),
                        _ => Capture::Off,
                    };
                }
                b if is_space(b) => {}
                _ => self.phase = Phase::Done,
            },
            Phase::Value => match byte {
                b',' if self.depth == 1 => {
                    self.value_read();
                    self.phase = Phase::Key;
                }
                b'}' if self.depth == 1 => {
                    self.value_read();
                    self.phase = Phase::Done;
                }
                b'{' | b'[' => {
                    self.depth += 1;
                    self.keep(byte);
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.keep(byte);
                }
                b'"' => {
                    self.in_string = true;
                    self.keep(byte);
                }
                _ => self.keep(byte),
            },
            Phase::Done => {}
        }
    }

    /// Keeps a byte of the key or value being read, within bounds.
    fn keep(&mut self, byte: u8) {
        match self.phase {
            Phase::Key => {
                // The closing quote ends the key; it is not part of it.
                if byte == b'"' && !self.escaped {
                    return;
                }
                if self.key.len() < MAX_KEY_BYTES {
                    self.key.push(byte);
                } else {
                    self.key_too_long = true;
                }
            }
            Phase::Value => {
                if let Capture::On(raw) = &mut self.value {
                    if raw.len() < MAX_VALUE_BYTES {
                        raw.push(byte);
                    } else {
                        self.value = Capture::TooLong;
                    }
                }
            }
            _ => {}
        }
    }

    fn key_read(&mut self) {
        self.field = match (&self.key[..], self.key_too_long) {
            (b"id", false) => Field::Id,
            (b"method", false) => Field::Method,
            (b"result", false) => Field::Result,
            (b"error", false) => Field::Error,
            _ => Field::Other,
        };
        match self.field {
            Field::Id => self.found.has_id = true,
            Field::Result | Field::Error => self.found.response = true,
            _ => {}
        }
        self.phase = Phase::Colon;
    }

    fn value_read(&mut self) {
        let Capture::On(raw) = std::mem::replace(&mut self.value, Capture::Off) else {
            return;
        };
        let value: Option<Value> = serde_json::from_slice(&raw).ok();
        match (self.field, value) {
            (Field::Id, Some(id @ (Value::String(_) | Value::Number(_)))) => {
                self.found.id = Some(id);
            }
            (Field::Method, Some(Value::String(method))) => self.found.method = Some(method),
            _ => {}
        }
    }
}

/// JSON's whitespace.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Scans `line` fed in pieces of `step` bytes.
    fn scan(line: &str, step: usize) -> Found {
        let mut scan = Scan::default();
        for piece in line.as_bytes().chunks(step) {
            scan.feed(piece);
        }
        scan.finish()
    }

    #[test]
    fn finds_id_and_method_first_or_last_in_any_pieces() {
        let pad = "x".repeat(5000);
        let first = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{{"name":"create_note","arguments":{{"content":"{pad}","id":"inner","a":[{{"method":"no"}}]}}}}}}"#
        );
        let last = format!(
            r#"{{ "jsonrpc" : "2.0", "params" : {{"arguments": {{"content": "{pad} \" }} , \\", "n": [1, {{"id": 3}}]}}}}, "method" : "tools/call" , "id" : "a\"b" }}"#
        );
        for line in [&first, &last] {
            assert!(serde_json::from_str::<Value>(line).is_ok(), "{line}");
        }
        for step in [1, 3, 64, 100_000] {
            let found = scan(&first, step);
            assert_eq!(found.id, Some(json!(7)));
            assert_eq!(found.method.as_deref(), Some("tools/call"));
            assert_eq!(found.bytes, first.len() as u64);
            assert!(found.object && found.has_id && !found.response);
            let found = scan(&last, step);
            assert_eq!(found.id, Some(json!("a\"b")), "step {step}");
            assert_eq!(found.method.as_deref(), Some("tools/call"));
        }
    }

    #[test]
    fn an_id_that_is_no_string_or_number_is_present_but_unreadable() {
        for line in [
            r#"{"id":{"n":1},"method":"ping"}"#,
            r#"{"id":[1],"method":"ping"}"#,
            r#"{"id":null,"method":"ping"}"#,
            r#"{"id":true,"method":"ping"}"#,
        ] {
            let found = scan(line, 5);
            assert!(found.has_id && found.id.is_none(), "{line}");
            assert_eq!(found.method.as_deref(), Some("ping"));
        }
        let long = format!(
            r#"{{"id":"{}","method":"ping"}}"#,
            "i".repeat(MAX_VALUE_BYTES)
        );
        assert!(scan(&long, 7).id.is_none());
    }

    #[test]
    fn notifications_responses_and_garbage() {
        let note = scan(
            r#"{"jsonrpc":"2.0","method":"notifications/x","params":{}}"#,
            4,
        );
        assert!(!note.has_id && note.method.is_some());
        let response = scan(r#"{"jsonrpc":"2.0","id":4,"result":{"big":"..."}}"#, 4);
        assert!(response.response && response.id == Some(json!(4)));
        let garbage = scan(&"x".repeat(10_000), 999);
        assert!(!garbage.object && garbage.id.is_none() && garbage.bytes == 10_000);
        let broken = scan(r#"{"id" 5, "method":"ping"}"#, 3);
        assert!(broken.object && broken.method.is_none());
    }
}
