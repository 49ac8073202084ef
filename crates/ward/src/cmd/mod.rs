pub mod agent;
pub mod config;
pub mod db;
pub mod findings;
pub mod intel;
pub mod model;
pub mod replay;
pub mod serve;
