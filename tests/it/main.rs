//! The one integration-test binary: real servers (TLS, SQLite file in a temp dir) over HTTP,
//! the real CLI as a subprocess, and a real headless Chromium.

// Test code may unwrap and panic: CONVENTIONS #13 denies these outside tests only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod a11y;
mod agent;
mod attacks;
mod audit;
mod backup;
mod browser;
mod cli;
mod database;
mod disk;
mod erasure;
mod fixture;
mod headers;
mod jobs;
mod journeys;
mod layers;
mod local;
mod logins;
mod matrix;
mod notifications;
mod offboarding;
mod openapi;
mod pam;
mod people;
mod policies;
mod poll_cache;
mod portal;
mod requests;
mod server;
mod standing_admins;
mod tamper;
mod windows;
