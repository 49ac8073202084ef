pub mod agent;
pub mod config;
pub mod findings;
pub mod intel;
pub mod replay;
pub mod serve;
