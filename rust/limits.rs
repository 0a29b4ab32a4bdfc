//! Limits shared by the key encoder and the value codec.

/// Containers nested deeper than this are refused, by keys and values alike: a guard against reference
/// cycles (a cycle always reaches it) and stack exhaustion.
pub const MAX_DEPTH: usize = 200;
