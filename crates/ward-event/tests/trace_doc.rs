//! Every example in docs/trace-format.md parses as a record of the type it shows.

use ward_event::trace::{parse_event, TraceHeader};

#[test]
fn documented_examples_parse() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/trace-format.md"
    ))
    .unwrap();
    let mut in_block = false;
    let mut kinds = Vec::new();
    for (i, line) in doc.lines().enumerate() {
        if line.trim() == "```json-trace" {
            in_block = true;
            continue;
        }
        if line.trim() == "```" {
            in_block = false;
            continue;
        }
        if !in_block || line.trim().is_empty() {
            continue;
        }
        if line.contains("\"type\":\"header\"") {
            let h: TraceHeader =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("doc line {}: {e}", i + 1));
            assert_eq!(h.version, ward_event::TRACE_VERSION);
            kinds.push("header");
        } else {
            let ev = parse_event(line, i as u64 + 1)
                .unwrap_or_else(|e| panic!("doc line {}: {e}", i + 1));
            kinds.push(ev.kind());
        }
    }
    for k in ["header", "exec", "fork", "exit", "fd", "socket"] {
        assert!(kinds.contains(&k), "no {k} example in the doc: {kinds:?}");
    }
}
