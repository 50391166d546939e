//! May this request be sent again? The one place that decides.
//!
//! Each request the catalog plans carries a [`RetryClass`], derived from its
//! operation beside the tool's annotations. Two questions are answered here
//! from that class, what kind of failure happened ([`Transience`]) and
//! whether an attempt may have reached the upstream ([`Reached`]):
//! - [`RetryClass::may_resend`]: may the client send the same request again
//!   inside this call (same uid, same body, same `If-Match`)?
//! - [`RetryClass::verdict`]: what is the model told: `retryable` (may it
//!   call the tool again) and, for a write, `applied` (did it happen)?
//!
//! The two differ on purpose: the client re-sends the *identical* request, a
//! model's second call is a new one (a create makes a new uid, a guarded
//! update meets its own first write as a conflict).

use serde::Serialize;

/// How a request may be repeated without duplicating a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// A read: always safe to repeat.
    Read,
    /// A write whose identical repetition leaves the same state (a create
    /// with a client-made uid, an unguarded patch, delete, archive, process).
    Idempotent,
    /// A write guarded by `If-Match`: once it may have reached the upstream, a
    /// repeat would report a false conflict, so it is repeated only when it
    /// certainly did not.
    Conditional,
}

/// Whether the upstream may have acted on an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Certainly not: the connection failed, or the upstream refused before
    /// acting (4xx, 429, 503, a session or epoch rejection).
    No,
    /// Perhaps: a timeout or a broken response after the request went out.
    Maybe,
}

/// What kind of failure an attempt met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// Repeating it changes nothing (bad input, not found, conflict, a write's
    /// 500, which the upstream answers for a missing parent).
    Permanent,
    /// May pass on another attempt now (a timeout, a reset, 429, 502–504).
    Now,
    /// May pass later, not within this call (an open circuit, a pause that
    /// outlasts the call's deadline).
    Later,
}

/// Whether a failed write happened, as the model is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    /// No attempt can have reached the upstream.
    No,
    /// An attempt may have reached it: the write may have happened.
    Unknown,
}

/// What a failed call tells the model about repeating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub retryable: bool,
    /// Only for writes.
    pub applied: Option<Applied>,
}

impl RetryClass {
    pub fn is_write(self) -> bool {
        self != Self::Read
    }

    /// May the client send this identical request again, after an attempt
    /// that failed this way?
    pub fn may_resend(self, transience: Transience, reached: Reached) -> bool {
        transience == Transience::Now && (reached == Reached::No || self != Self::Conditional)
    }

    /// What the model is told when the call failed this way, `reached` being
    /// whether *any* attempt of the request may have reached the upstream.
    /// A write that may have happened is never `retryable`: the model must
    /// look first.
    pub fn verdict(self, transience: Transience, reached: Reached) -> Verdict {
        let applied = self.is_write().then_some(match reached {
            Reached::No => Applied::No,
            Reached::Maybe => Applied::Unknown,
        });
        let retryable = transience != Transience::Permanent && applied != Some(Applied::Unknown);
        Verdict { retryable, applied }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSES: [RetryClass; 3] = [
        RetryClass::Read,
        RetryClass::Idempotent,
        RetryClass::Conditional,
    ];
    const KINDS: [Transience; 3] = [Transience::Permanent, Transience::Now, Transience::Later];
    const REACHED: [Reached; 2] = [Reached::No, Reached::Maybe];

    /// Every combination of class, failure kind and reach, with what the
    /// client does and what the model is told.
    #[test]
    fn every_combination() {
        use Applied::{No as NotApplied, Unknown};
        use RetryClass::*;
        use Transience::*;
        // (class, kind, reached) → (client re-sends, model may retry, applied)
        let table: [(RetryClass, Transience, Reached, bool, bool, Option<Applied>); 18] = [
            (Read, Permanent, Reached::No, false, false, None),
            (Read, Permanent, Reached::Maybe, false, false, None),
            (Read, Now, Reached::No, true, true, None),
            (Read, Now, Reached::Maybe, true, true, None),
            (Read, Later, Reached::No, false, true, None),
            (Read, Later, Reached::Maybe, false, true, None),
            (
                Idempotent,
                Permanent,
                Reached::No,
                false,
                false,
                Some(NotApplied),
            ),
            (
                Idempotent,
                Permanent,
                Reached::Maybe,
                false,
                false,
                Some(Unknown),
            ),
            (Idempotent, Now, Reached::No, true, true, Some(NotApplied)),
            // The identical request may go again (same uid); the model's
            // call would not be identical.
            (Idempotent, Now, Reached::Maybe, true, false, Some(Unknown)),
            (
                Idempotent,
                Later,
                Reached::No,
                false,
                true,
                Some(NotApplied),
            ),
            (
                Idempotent,
                Later,
                Reached::Maybe,
                false,
                false,
                Some(Unknown),
            ),
            (
                Conditional,
                Permanent,
                Reached::No,
                false,
                false,
                Some(NotApplied),
            ),
            (
                Conditional,
                Permanent,
                Reached::Maybe,
                false,
                false,
                Some(Unknown),
            ),
            (Conditional, Now, Reached::No, true, true, Some(NotApplied)),
            (
                Conditional,
                Now,
                Reached::Maybe,
                false,
                false,
                Some(Unknown),
            ),
            (
                Conditional,
                Later,
                Reached::No,
                false,
                true,
                Some(NotApplied),
            ),
            (
                Conditional,
                Later,
                Reached::Maybe,
                false,
                false,
                Some(Unknown),
            ),
        ];
        for class in CLASSES {
            for kind in KINDS {
                for reached in REACHED {
                    let row = table
                        .iter()
                        .find(|r| r.0 == class && r.1 == kind && r.2 == reached)
                        .unwrap_or_else(|| panic!("no row for {class:?} {kind:?} {reached:?}"));
                    let case = format!("{class:?} {kind:?} {reached:?}");
                    assert_eq!(class.may_resend(kind, reached), row.3, "re-send: {case}");
                    let verdict = class.verdict(kind, reached);
                    assert_eq!(verdict.retryable, row.4, "retryable: {case}");
                    assert_eq!(verdict.applied, row.5, "applied: {case}");
                }
            }
        }
    }
}
