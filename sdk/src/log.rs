//! Logging through the host (`proxy_log`); the gateway attaches the filter's
//! name. Use the macros [`crate::info!`], [`crate::warn!`], ... in filters.

pub use crate::host::LogLevel;

/// Logs a message at `level`. The macros wrap this with `format!`.
pub fn log(level: LogLevel, message: &str) {
    crate::host::with(|h| h.log(level, message));
}

/// Whether the host keeps lines at `level`: the macros format a message
/// only then, so a debug line costs one hostcall when debug is off.
pub fn enabled(level: LogLevel) -> bool {
    crate::host::with(|h| h.log_enabled(level))
}

/// Logs at [`LogLevel::Trace`], `format!`-style.
#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { if $crate::log::enabled($crate::log::LogLevel::Trace) { $crate::log::log($crate::log::LogLevel::Trace, &format!($($arg)*)) } }; }
/// Logs at [`LogLevel::Debug`], `format!`-style.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { if $crate::log::enabled($crate::log::LogLevel::Debug) { $crate::log::log($crate::log::LogLevel::Debug, &format!($($arg)*)) } }; }
/// Logs at [`LogLevel::Info`], `format!`-style.
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { if $crate::log::enabled($crate::log::LogLevel::Info) { $crate::log::log($crate::log::LogLevel::Info, &format!($($arg)*)) } }; }
/// Logs at [`LogLevel::Warn`], `format!`-style.
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { if $crate::log::enabled($crate::log::LogLevel::Warn) { $crate::log::log($crate::log::LogLevel::Warn, &format!($($arg)*)) } }; }
/// Logs at [`LogLevel::Error`], `format!`-style.
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { if $crate::log::enabled($crate::log::LogLevel::Error) { $crate::log::log($crate::log::LogLevel::Error, &format!($($arg)*)) } }; }
