//! The server binary's library half: what is read before a server starts, kept apart from
//! `main` so the fuzzers and tests reach it. The config parser is the one piece.
//!
//! Architecture invariant: nothing here starts anything; it reads text into a
//! [`config::ServerConfig`] or refuses it with an error naming the key.

#![forbid(unsafe_code)]

pub mod config;
