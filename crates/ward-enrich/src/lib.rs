//! Enrichment: turns what the kernel saw into what detectors need. This crate does IO.
//!
//! * [`script`]: captures the script an interpreter runs — a file (read through the
//!   process's own root and cwd, so container paths resolve), a shebang script, or a `-c`
//!   literal — with its size, SHA-256 of the whole script and size-capped contents.

pub mod script;
