//! Filter configuration (owned by the filter host).
