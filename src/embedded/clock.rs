//! Wall-clock helpers shared by the store, the sessions and the wire format.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

pub fn unix_ms(at: OffsetDateTime) -> i64 {
    // Fits in i64 until the year 292 million; saturate rather than panic.
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// RFC 3339 in UTC with trailing zeros of the fraction dropped, like Go's
/// `time.RFC3339Nano` that the real service emits.
pub fn rfc3339(at: OffsetDateTime) -> String {
    // Formatting a UTC OffsetDateTime as RFC 3339 only fails for years
    // outside 0..=9999, which no timestamp of ours reaches.
    at.format(&Rfc3339).unwrap_or_default()
}

/// [`rfc3339`] of a Unix millisecond timestamp.
pub fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_drops_trailing_zeros() {
        assert_eq!(rfc3339_ms(1_700_000_000_120), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn unix_ms_round_trips() {
        let now = now_ms();
        let parsed = OffsetDateTime::parse(&rfc3339_ms(now), &Rfc3339).map(unix_ms);
        assert_eq!(parsed.ok(), Some(now));
    }
}
