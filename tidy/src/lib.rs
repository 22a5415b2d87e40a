//! Checks live in `tests/tidy.rs`.
