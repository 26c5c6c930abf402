//! How much of a plan [`parse`](crate::parse) reads, so that any input costs bounded
//! time, memory and stack.

/// The largest plan [`parse`](crate::parse) reads: 1 MiB of YAML. Real runbooks are a
/// few KB.
pub const MAX_PLAN_BYTES: usize = 1 << 20;

/// How deeply lists and mappings may nest. The deepest plan key sits about 8 levels down.
pub const MAX_NESTING_DEPTH: usize = 64;

/// The most steps `steps`, and `rollback.steps`, may hold.
pub const MAX_STEPS: usize = 1_000;

/// Bounds on what [`parse_with_limits`] reads, so that any input costs bounded time,
/// memory and stack. The default, which [`parse`] applies, is [`MAX_PLAN_BYTES`],
/// [`MAX_NESTING_DEPTH`] and [`MAX_STEPS`].
///
/// [`parse`]: crate::parse
/// [`parse_with_limits`]: crate::parse_with_limits
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Size of the YAML source, in bytes.
    pub max_bytes: usize,
    /// Nested lists and mappings. Past a few hundred the stack is at risk: the YAML tree
    /// is dropped recursively.
    pub max_depth: usize,
    /// Steps in `steps`, and in `rollback.steps`.
    pub max_steps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: MAX_PLAN_BYTES,
            max_depth: MAX_NESTING_DEPTH,
            max_steps: MAX_STEPS,
        }
    }
}
