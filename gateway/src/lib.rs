//! The gateway library.
