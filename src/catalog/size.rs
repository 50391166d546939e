//! The largest item: one limit for what the sidecar sends and what the
//! embedded API stores, measured the same way on both sides (the payload as
//! compact JSON, what goes on the wire for a create, update, patch or
//! process), so a write the sidecar lets through is never refused by its own
//! backend, and a larger one is refused before anything is sent.

use serde_json::Value;

use crate::error::ToolError;

/// 1 MiB: room for a long document as markdown, far below what a model's
/// context or the upstream's response cap could take in one read.
pub const MAX_ITEM_BYTES: usize = 1 << 20;

/// The limit as refusals say it.
pub fn max_item_text() -> String {
    format!("{} bytes (1 MiB)", grouped(MAX_ITEM_BYTES))
}

/// The limit as the write tools' descriptions say it: `≤1 MiB`.
pub fn max_item_short() -> String {
    format!("≤{} MiB", MAX_ITEM_BYTES >> 20)
}

/// The length of `value` as compact JSON, without building the text.
pub fn json_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Refuses a request body over [`MAX_ITEM_BYTES`], naming its largest field
/// (the one to shorten), the size and the limit. `noun` names the item.
pub fn check_item(noun: &str, body: &Value) -> Result<(), ToolError> {
    let size = json_len(body);
    if size <= MAX_ITEM_BYTES {
        return Ok(());
    }
    let largest = body
        .as_object()
        .and_then(|map| map.iter().max_by_key(|(_, v)| json_len(v)))
        .map_or("the item".to_owned(), |(key, _)| {
            super::lenient::snake_case(key)
        });
    Err(ToolError::invalid_input(format!(
        "{largest} is too large: the {noun} would be {} bytes; the largest item is {}",
        grouped(size),
        max_item_text()
    )))
}

/// `3145728` as `3,145,728`.
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_048_576), "1,048,576");
        assert_eq!(grouped(123_456_789), "123,456,789");
    }

    #[test]
    fn the_limit_is_inclusive_and_the_refusal_names_the_largest_field() {
        let fits = |extra: usize| {
            // `{"title":"t","content":"…"}` is 26 bytes around the content.
            json!({"title": "t", "content": "x".repeat(MAX_ITEM_BYTES - 26 + extra)})
        };
        assert_eq!(json_len(&fits(0)), MAX_ITEM_BYTES);
        assert!(check_item("note", &fits(0)).is_ok());
        let error = check_item("note", &fits(1)).unwrap_err();
        assert_eq!(
            error.message,
            "content is too large: the note would be 1,048,577 bytes; the largest item is 1,048,576 bytes (1 MiB)"
        );
    }
}
