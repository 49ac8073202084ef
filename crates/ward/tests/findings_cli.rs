//! `ward findings` as a process on a real store: finding data never reaches the terminal as
//! control, bidi or invisible characters, and a filter may start with '-'.

use std::process::Command;
use ward_event::Finding;
use ward_store::{FindingStore, SqliteStore};

const WARD: &str = env!("CARGO_BIN_EXE_ward");

/// A container name that clears the screen, sets the window title, rings the bell, colours
/// through an 8-bit CSI, and reverses its tail (`...gnp.exe` reads `...exe.png`).
const HOSTILE: &str =
    "web\x1b[2J\x1b]0;pwned\x07\u{9b}31m\r\nFAKE ROW\u{7f}\u{202e}gnp.exe\u{200b}\u{feff}";

fn hostile_store() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let golden =
        std::fs::read_to_string(repo.join("testdata/traces/compiler.expected.jsonl")).unwrap();
    let mut f: Finding = serde_json::from_str(golden.lines().next().unwrap()).unwrap();
    for key in ["Container_Name", "Pod_Name", "Pod_Namespace"] {
        f.source_properties
            .insert(key.into(), serde_json::Value::String(HOSTILE.into()));
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ward.db");
    SqliteStore::open(&db).unwrap().upsert(&f).unwrap();
    let id = f.id().to_string();
    (dir, db, id)
}

fn ward(args: &[&str], db: &std::path::Path) -> String {
    let out = Command::new(WARD)
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_inert(what: &str, out: &str) {
    for c in out.chars() {
        let hidden = matches!(c, '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{200b}'..='\u{200f}' | '\u{feff}');
        assert!(!hidden, "{what}: raw U+{:04X} in {out:?}", c as u32);
    }
    // serde_json writes C0 escapes in lower case, ours are upper case: both are JSON.
    let lower = out.to_ascii_lowercase();
    assert!(
        lower.contains("\\u001b[2j"),
        "{what}: escape not visible: {out}"
    );
    assert!(lower.contains("\\u202egnp.exe"), "{what}: {out}");
}

#[test]
fn table_show_and_json_print_no_raw_escapes() {
    let (_d, db, id) = hostile_store();
    let table = ward(&["findings", "list"], &db);
    assert_inert("table", &table);
    // One header and one row: the CR LF in the name did not forge a row.
    assert_eq!(table.lines().count(), 2, "{table}");
    let json = ward(&["findings", "list", "--format", "json"], &db);
    assert_inert("json", &json);
    let back: Finding = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(back.source_str("Container_Name"), Some(HOSTILE));
    let show = ward(&["findings", "show", &id], &db);
    assert_inert("show", &show);
    let back: Finding = serde_json::from_str(&show).unwrap();
    assert_eq!(back.source_str("Pod_Name"), Some(HOSTILE));
}

#[test]
fn a_filter_may_start_with_a_negation() {
    let (_d, db, id) = hostile_store();
    // The compiler finding is LOW: 'severity=LOW' lists it, '-severity=LOW' does not.
    let pos = ward(&["findings", "list", "--filter", "severity=LOW"], &db);
    assert!(pos.contains(&id), "{pos}");
    for flag in ["--filter", "-f"] {
        let neg = ward(&["findings", "list", flag, "-severity=LOW"], &db);
        assert!(neg.contains("(no findings)"), "{neg}");
        let neg = ward(&["findings", "list", flag, "-severity=HIGH"], &db);
        assert!(neg.contains(&id), "{neg}");
    }
}

/// `ward replay` prints findings as JSON Lines: on a terminal they carry no raw control, bidi
/// or invisible character (serde_json leaves DEL, C1 and U+202E raw), and parse back to the
/// same values.
#[test]
fn replay_json_lines_are_inert_on_a_terminal() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let trace = std::fs::read_to_string(repo.join("testdata/traces/compiler.jsonl")).unwrap();
    // The container's name, as a JSON string escape, in every event of the trace.
    let hostile = serde_json::to_string(HOSTILE).unwrap();
    let trace = trace.replace("\"name\":\"web\"", &format!("\"name\":{hostile}"));
    assert!(trace.contains("\\u202e") || trace.contains('\u{202e}'));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.jsonl");
    std::fs::write(&path, trace).unwrap();
    let out = Command::new(WARD)
        .arg("replay")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.is_empty());
    assert_inert("replay", &stdout);
    let names: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Finding>(l).unwrap())
        .filter_map(|f| f.source_str("Container_Name").map(str::to_string))
        .collect();
    assert!(names.iter().any(|n| n == HOSTILE), "{names:?}");
}
