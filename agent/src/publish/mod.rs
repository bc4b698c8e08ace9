//! Delivery to the central platform over MQTT (docs/outbox.md, docs/mqtt-api.md).

pub mod commands;
pub mod events;
pub mod health;
pub mod publisher;
pub mod results;
