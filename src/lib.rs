//! Hourglass: just-in-time privileged access for MSPs, in one binary with one SQLite file.
//! Data flows one way: handler (web/) → service → model + store → audit.

pub mod agent;
pub mod agent_api;
pub mod app;
pub mod authz;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod fsx;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod limits;
pub mod model;
pub mod notify;
pub mod ops;
pub mod proto;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod web;
