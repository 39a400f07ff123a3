//! Login and text negotiation (RFC 7143 §6, §13): text key=value parsing,
//! the negotiation table, both roles, and SendTargets.
//!
//! - [`keys`]: text parsing and value types (§6.1);
//! - [`params`]: the negotiated values and their defaults (§13);
//! - [`negotiate`]: the key table and the target-role [`negotiate::Negotiator`] (§6.2, §13);
//! - [`initiator`]: the initiator role (§6.2, §13);
//! - [`auth`]: the authentication method seam (§12);
//! - [`sendtargets`]: SendTargets answers and long text replies (§13.3, Appendix C).
//!
//! The login *state machine* (stages, T/C bits, TSIH) lives in the
//! connection; this module only decides what keys mean and what to answer.
//! It allocates, but only on the login/text path, never per I/O.

pub mod auth;
pub mod chap;
pub mod initiator;
pub mod keys;
pub mod negotiate;
pub mod params;
pub mod sendtargets;
