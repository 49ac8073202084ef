//! Helpers for tests that run `ward serve` as a process.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Reads `ward serve`'s stderr lines up to `ward: console: URL`; the URL ("" if it ended).
pub fn console_url(lines: impl Iterator<Item = std::io::Result<String>>) -> String {
    for line in lines {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("ward: console: ") {
            return u.to_string();
        }
    }
    String::new()
}

/// `GET path` (with `Connection: close`) to the address of a console URL; the response.
pub fn get(url: &str, path: &str) -> String {
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}
