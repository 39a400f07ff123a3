//! Login and text negotiation (RFC 7143 §6, §13): text key=value parsing,
//! the negotiation table, both roles, and SendTargets.
//!
//! The login *state machine* (stages, T/C bits, TSIH) lives in the
//! connection; this module only decides what keys mean and what to answer.
//! It allocates, but only on the login/text path, never per I/O.

pub mod auth;
pub mod keys;
pub mod negotiate;
pub mod params;
pub mod sendtargets;
