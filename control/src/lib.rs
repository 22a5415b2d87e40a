//! WarpPool's control plane.

pub mod storage;
