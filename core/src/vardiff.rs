//! Vardiff (placeholder).
