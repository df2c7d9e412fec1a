//! Speaking to the systems operators already run: a read-only SNMPv2c agent, Prometheus
//! remote_write of every stored sample, and forwarding of alerts to an Alertmanager.

pub mod alertmanager;
pub mod config;
pub mod remote_write;
pub mod snmp;

pub use config::{AlertmanagerConfig, RemoteWriteConfig, SnmpConfig, shown_url};
