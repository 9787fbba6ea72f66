//! What operators see: health, metrics and their HTTP listener, systemd notifications,
//! logging.

pub(crate) mod api_health;
pub(crate) mod connection_slots;
pub(crate) mod health;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod notify;
pub(crate) mod telemetry;
