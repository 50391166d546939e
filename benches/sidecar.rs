//! Placeholder: the sidecar benchmark lands here.
fn main() {}
