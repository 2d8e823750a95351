//! The gateway library: everything the `gateway` binary runs.
//!
//! The binary is a thin shell over [`cli::main`]; the pieces are organised
//! by concern: [`config`], [`listener`], [`http`], [`upstream`],
//! [`filter`] and [`admin`].

pub mod access_log;
pub mod admin;
pub mod cli;
pub mod config;
pub mod filter;
pub mod hash;
pub mod http;
pub mod l4;
pub mod listener;
pub mod metrics;
pub mod server;
pub mod service;
pub mod state;
pub mod trace;
pub mod upstream;
pub mod worker;
