//! Keeps docs/filter-grammar.md honest: every example parses, and every row of the error table
//! renders the documented message (up to a trailing "…").

use ward_store::filter;

const DOC: &str = include_str!("../../../docs/filter-grammar.md");

fn section(title: &str) -> &'static str {
    let start = DOC
        .find(title)
        .unwrap_or_else(|| panic!("no section {title}"));
    let rest = &DOC[start + title.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn documented_examples_parse() {
    let block = section("## Examples");
    let code = block.split("```").nth(1).expect("code block");
    let mut n = 0;
    for line in code.lines().skip(1) {
        let f = line.split("  #").next().unwrap_or("").trim();
        if f.is_empty() {
            continue;
        }
        filter::parse_to_sql(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        n += 1;
    }
    assert!(n >= 10);
}

#[test]
fn documented_errors_match() {
    let mut n = 0;
    for line in section("## Errors").lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() != 2 || line.starts_with("| filter") || line.starts_with("| ---") {
            continue;
        }
        let input_cell = cells[0].trim_start_matches("| ");
        let input = if input_cell == "33 nested `(`" {
            format!("{}ns=a{}", "(".repeat(33), ")".repeat(33))
        } else if input_cell == "over 4096 bytes" {
            "ns=a ".repeat(1000)
        } else {
            input_cell.trim_matches('`').to_string()
        };
        let want = cells[1].trim_end_matches(" |").trim_matches('`');
        // Bytes that are not UTF-8 cannot stand in a table cell: the row names them.
        let got = if input_cell.starts_with("`ns=é` then byte 0xFF") {
            filter::from_utf8(b"ns=\xC3\xA9\xFF")
                .expect_err("not UTF-8")
                .to_string()
        } else {
            filter::parse(&input).expect_err(&input).to_string()
        };
        let prefix = want.split('…').next().unwrap_or(want);
        assert!(
            got.starts_with(prefix),
            "{input}\n got: {got}\nwant: {want}"
        );
        n += 1;
    }
    assert_eq!(n, 14);
}
