//! The pure part: reading a mail and deciding about it, with no I/O.

pub mod body;
pub mod classify;
pub mod date;
pub mod ticket;
