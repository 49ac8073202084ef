use std::io::{BufReader, Cursor};

use sha2::{Digest, Sha256};

use crate::parse::{read_line_capped, split_csv};
use crate::*;

fn sha(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn hx(s: &str) -> String {
    hex::encode(sha(s))
}

fn md5ish(s: &str) -> String {
    hx(s)[..32].to_owned()
}

fn sha1ish(s: &str) -> String {
    hx(s)[..40].to_owned()
}

fn parse(text: &str) -> Result<Feed, IntelError> {
    Feed::parse("test-feed", text.as_bytes(), None)
}

fn problem_lines(f: &Feed) -> Vec<u64> {
    f.report().problems.iter().map(|p| p.line).collect()
}

#[test]
fn plain_with_comments_blank_lines_and_mixed_case() {
    let text = format!(
        "# my feed\n\
         \n\
         {a}\n\
         \x20 {b_upper}  # trailing comment\n\
         {c}\tcobalt strike beacon\n\
         # {d}\n\
         {e}#inline\n",
        a = hx("a"),
        b_upper = hx("b").to_uppercase(),
        c = hx("c"),
        d = hx("d"),
        e = hx("e"),
    );
    let feed = parse(&text).unwrap();
    let r = feed.report();
    assert_eq!(r.format, FeedFormat::Plain);
    assert!(r.detected);
    assert_eq!(r.lines, 7);
    assert_eq!(r.hashes, 4);
    assert_eq!(r.malformed, 0, "{r}");
    assert_eq!(feed.len(), 4);
    assert_eq!(feed.lookup(&sha("a")).unwrap().comment, None);
    assert_eq!(
        feed.lookup(&sha("b")).unwrap().comment,
        Some("trailing comment")
    );
    assert_eq!(
        feed.lookup(&sha("c")).unwrap().comment,
        Some("cobalt strike beacon")
    );
    assert_eq!(feed.lookup(&sha("e")).unwrap().comment, Some("inline"));
    // Commented-out hash is not loaded.
    assert!(feed.lookup(&sha("d")).is_none());
    assert_eq!(feed.lookup(&sha("a")).unwrap().feed, "test-feed");
}

#[test]
fn crlf_line_endings_and_no_final_newline() {
    let text = format!(
        "# header\r\n{}\r\n\r\n{}  # note\r\n{}",
        hx("x"),
        hx("y"),
        hx("z")
    );
    let feed = parse(&text).unwrap();
    assert_eq!(feed.report().malformed, 0, "{}", feed.report());
    assert_eq!(feed.report().lines, 5);
    assert_eq!(feed.len(), 3);
    assert_eq!(feed.lookup(&sha("y")).unwrap().comment, Some("note"));
    assert!(feed.contains(&sha("z")));
}

#[test]
fn signature_base_style_hash_comment() {
    let text = format!(
        "# Hash IOCs - signature-base style\n\
         # Format: hash;description\n\
         \n\
         {md5};Emotet dropper (MD5)\n\
         {s1};Ryuk ransomware sample (SHA1)\n\
         {a};Ryuk ransomware sample\n\
         {b};  Mimikatz, patched build  \n\
         {c};\n\
         {d}\n\
         nothex;Some description\n",
        md5 = md5ish("m"),
        s1 = sha1ish("s1"),
        a = hx("ryuk"),
        b = hx("mimikatz"),
        c = hx("nocomment"),
        d = hx("bare").to_uppercase(),
    );
    let feed = parse(&text).unwrap();
    let r = feed.report();
    assert_eq!(r.format, FeedFormat::HashComment);
    assert_eq!(r.skipped_md5, 1);
    assert_eq!(r.skipped_sha1, 1);
    assert_eq!(r.skipped_other(), 2);
    assert_eq!(r.hashes, 4);
    assert_eq!(r.malformed, 1);
    assert_eq!(problem_lines(&feed), vec![10]);
    assert_eq!(r.problems[0].kind, ProblemKind::InvalidHash);
    assert_eq!(
        feed.lookup(&sha("ryuk")).unwrap().comment,
        Some("Ryuk ransomware sample")
    );
    assert_eq!(
        feed.lookup(&sha("mimikatz")).unwrap().comment,
        Some("Mimikatz, patched build")
    );
    assert_eq!(feed.lookup(&sha("nocomment")).unwrap().comment, None);
    assert_eq!(feed.lookup(&sha("bare")).unwrap().comment, None);
}

fn malwarebazaar_csv() -> String {
    format!(
        "################################################################\n\
         # MalwareBazaar full data dump (CSV)                           #\n\
         # Last updated: 2024-05-01 10:00:00 UTC                        #\n\
         #                                                              #\n\
         # Terms Of Use: https://bazaar.abuse.ch/faq/#tos               #\n\
         ################################################################\n\
         #\n\
         # \"first_seen_utc\",\"sha256_hash\",\"md5_hash\",\"sha1_hash\",\"reporter\",\"file_name\",\"file_type_guess\",\"mime_type\",\"signature\",\"clamav\",\"vtpercent\",\"imphash\",\"ssdeep\",\"tlsh\"\n\
         \"2024-05-01 09:58:12\", \"{a}\", \"{a_md5}\", \"{a_sha1}\", \"abuse_ch\", \"invoice_0412.exe\", \"exe\", \"application/x-dosexec\", \"AgentTesla\", \"n/a\", \"n/a\", \"f34d5f2d4577ed6d9ceec516c1f5a744\", \"n/a\", \"n/a\"\r\n\
         \"2024-05-01 09:57:40\", \"{b}\", \"{b_md5}\", \"{b_sha1}\", \"zbetcheckin\", \"scan \"\"copy\"\".js\", \"js\", \"text/plain\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\"\n\
         \"2024-05-01 09:55:03\", \"{c}\", \"{c_md5}\", \"{c_sha1}\", \"abuse_ch\", \"\", \"elf\", \"application/x-executable\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\"\n\
         \"2024-05-01 09:54:00\", \"{bad}\", \"\", \"\", \"abuse_ch\", \"x\", \"elf\", \"x\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\"\n\
         \"2024-05-01 09:53:00\", \"unterminated\n\
         \"2024-05-01 09:52:00\", \"{d}\", \"\", \"\", \"abuse_ch\", \"Mirai.arm7\", \"elf\", \"x\", \"Mirai\", \"n/a\", \"n/a\", \"n/a\", \"n/a\", \"n/a\"\n\
         # Number of entries: 6\n",
        a = hx("agenttesla"),
        a_md5 = md5ish("agenttesla"),
        a_sha1 = sha1ish("agenttesla"),
        b = hx("jsdropper"),
        b_md5 = md5ish("jsdropper"),
        b_sha1 = sha1ish("jsdropper"),
        c = hx("elf"),
        c_md5 = md5ish("elf"),
        c_sha1 = sha1ish("elf"),
        bad = &hx("bad")[..63],
        d = hx("mirai").to_uppercase(),
    )
}

#[test]
fn malwarebazaar_csv_export() {
    let feed = Feed::parse("full.csv", malwarebazaar_csv().as_bytes(), None).unwrap();
    let r = feed.report();
    assert_eq!(r.format, FeedFormat::Csv);
    assert_eq!(r.lines, 15);
    assert_eq!(r.hashes, 4, "{r}");
    assert_eq!(r.malformed, 2, "{r}");
    assert_eq!(problem_lines(&feed), vec![12, 13]);
    assert_eq!(r.problems[0].kind, ProblemKind::InvalidHash);
    assert!(r.problems[0].message.contains("63 hex digits"), "{r}");
    assert_eq!(r.problems[1].kind, ProblemKind::BadCsvRow);
    assert!(r.problems[1].message.contains("unterminated"), "{r}");
    // signature column wins
    assert_eq!(
        feed.lookup(&sha("agenttesla")).unwrap().comment,
        Some("AgentTesla")
    );
    // signature n/a -> file_name, with "" unescaped
    assert_eq!(
        feed.lookup(&sha("jsdropper")).unwrap().comment,
        Some("scan \"copy\".js")
    );
    // neither
    assert_eq!(feed.lookup(&sha("elf")).unwrap().comment, None);
    assert_eq!(feed.lookup(&sha("mirai")).unwrap().comment, Some("Mirai"));
    assert!(feed.lookup(&sha("bad")).is_none());
}

#[test]
fn csv_with_plain_header_line() {
    let text = format!(
        "SHA256,Signature\n{},Emotet\n\"{}\",\"\"\n{},n/a\n",
        hx("1"),
        hx("2"),
        hx("3")
    );
    let feed = parse(&text).unwrap();
    assert_eq!(feed.report().format, FeedFormat::Csv);
    assert_eq!(feed.report().malformed, 0, "{}", feed.report());
    assert_eq!(feed.len(), 3);
    assert_eq!(feed.lookup(&sha("1")).unwrap().comment, Some("Emotet"));
    assert_eq!(feed.lookup(&sha("2")).unwrap().comment, None);
    assert_eq!(feed.lookup(&sha("3")).unwrap().comment, None);
}

#[test]
fn csv_short_row_is_malformed_with_line_number() {
    let text = format!("name,sha256\nfoo,{}\nonlyone\n", hx("1"));
    let feed = parse(&text).unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(problem_lines(&feed), vec![3]);
    assert_eq!(feed.report().problems[0].kind, ProblemKind::BadCsvRow);
}

#[test]
fn csv_without_sha256_column_is_fatal() {
    // Commented header (MalwareBazaar style) lacking the column.
    let text = format!(
        "# export\n# \"first_seen_utc\",\"md5_hash\",\"signature\"\n\"2024-01-01\", \"{}\", \"x\"\n",
        md5ish("q")
    );
    match parse(&text) {
        Err(IntelError::NoSha256Column { feed, line, header }) => {
            assert_eq!(feed, "test-feed");
            assert_eq!(line, 2);
            assert!(header.contains("md5_hash"), "{header}");
        }
        other => panic!("expected NoSha256Column, got {other:?}"),
    }
    // Plain header line lacking the column.
    let text = "\n\nmd5,signature\nabc,def\n";
    match parse(text) {
        Err(e @ IntelError::NoSha256Column { line: 3, .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("test-feed") && msg.contains("line 3"), "{msg}");
        }
        other => panic!("expected NoSha256Column at line 3, got {other:?}"),
    }
    // Forced CSV on a plain feed: the first line is taken as the header.
    let text = format!("{}\n", hx("1"));
    assert!(matches!(
        Feed::parse("f", text.as_bytes(), Some(FeedFormat::Csv)),
        Err(IntelError::NoSha256Column { line: 1, .. })
    ));
}

#[test]
fn duplicates_are_counted_and_commented_entry_kept() {
    let text = format!(
        "{a}\n{b}\n{a_up}\n{a} # named\n{b}\n{c}\n",
        a = hx("a"),
        a_up = hx("a").to_uppercase(),
        b = hx("b"),
        c = hx("c")
    );
    let feed = parse(&text).unwrap();
    let r = feed.report();
    assert_eq!(r.hashes, 3);
    assert_eq!(r.duplicates, 3);
    assert_eq!(feed.len(), 3);
    assert_eq!(feed.lookup(&sha("a")).unwrap().comment, Some("named"));
}

#[test]
fn malformed_lines_have_correct_line_numbers_and_kinds() {
    let long = "f".repeat(MAX_LINE_LEN * 3 + 17);
    let mut text = Vec::new();
    text.extend_from_slice(format!("# feed\n{}\n", hx("ok1")).as_bytes()); // 1, 2
    text.extend_from_slice(format!("{}g\n", &hx("x")[..63]).as_bytes()); // 3 non-hex
    text.extend_from_slice(format!("{}\n", &hx("x")[..60]).as_bytes()); // 4 wrong length
    text.extend_from_slice(b"\n"); // 5
    text.extend_from_slice(&hx("utf").as_bytes()[..10]); // 6 invalid utf-8
    text.extend_from_slice(b"\xff\xfe oops\n");
    text.extend_from_slice(format!("{long}\n").as_bytes()); // 7 too long
    text.extend_from_slice(format!("{}\r\n", hx("ok2")).as_bytes()); // 8
    text.extend_from_slice(format!("# {long}\n").as_bytes()); // 9 long comment: ignored
    text.extend_from_slice(b"   #indented comment\n"); // 10
    text.extend_from_slice(format!("{}\n", hx("ok3")).as_bytes()); // 11
    let feed = Feed::parse("m", &text[..], None).unwrap();
    let r = feed.report();
    assert_eq!(r.lines, 11);
    assert_eq!(r.hashes, 3);
    assert_eq!(r.malformed, 4, "{r}");
    assert_eq!(problem_lines(&feed), vec![3, 4, 6, 7]);
    let kinds: Vec<_> = r.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ProblemKind::InvalidHash,
            ProblemKind::InvalidHash,
            ProblemKind::InvalidUtf8,
            ProblemKind::LineTooLong
        ]
    );
    assert!(r.problems[0].message.contains("'g'"), "{r}");
    assert!(r.problems[0].message.contains("column 64"), "{r}");
    assert!(r.problems[1].message.contains("60 hex digits"), "{r}");
    assert!(r.problems[2].message.contains("column 11"), "{r}");
    assert!(
        r.problems[3]
            .message
            .contains(&(MAX_LINE_LEN * 3 + 17).to_string()),
        "{r}"
    );
    for s in ["ok1", "ok2", "ok3"] {
        assert!(feed.contains(&sha(s)), "{s}");
    }
}

#[test]
fn problem_list_is_capped_but_counts_are_complete() {
    let mut text = format!("{}\n", hx("good"));
    for i in 0..(MAX_PROBLEMS + 25) {
        text.push_str(&format!("garbage-{i}\n"));
    }
    let feed = parse(&text).unwrap();
    let r = feed.report();
    assert_eq!(r.malformed, (MAX_PROBLEMS + 25) as u64);
    assert_eq!(r.problems.len(), MAX_PROBLEMS);
    assert_eq!(r.problems[0].line, 2);
    assert_eq!(r.problems[MAX_PROBLEMS - 1].line, MAX_PROBLEMS as u64 + 1);
    let shown = r.to_string();
    assert!(shown.contains("and 25 more"), "{shown}");
}

#[test]
fn empty_feeds_are_not_errors() {
    for text in ["", "\n\n", "# only\n# comments\r\n"] {
        let feed = parse(text).unwrap();
        assert!(feed.is_empty());
        assert_eq!(feed.report().hashes, 0);
        assert_eq!(feed.report().malformed, 0);
        assert!(feed.lookup(&sha("a")).is_none());
    }
    // Only other hash types: empty, not an error, but counted.
    let text = format!("{}\n{};x\n", md5ish("a"), sha1ish("b"));
    let feed = parse(&text).unwrap();
    assert!(feed.is_empty());
    assert_eq!(feed.report().skipped_md5, 1);
    assert_eq!(feed.report().skipped_sha1, 1);
    // ... but `require_hashes` (what `ward intel check` applies) says why it is useless.
    let e = feed.require_hashes().unwrap_err().to_string();
    assert!(
        e.ends_with(": no SHA-256 hash in 2 line(s) (1 SHA-1 and 1 MD5 skipped, the rest blank or comments)"),
        "{e}"
    );
    parse(&format!("{}\n", "a".repeat(64)))
        .unwrap()
        .require_hashes()
        .unwrap();
}

#[test]
fn only_malformed_lines_is_fatal_and_names_first_bad_line() {
    let text = "# not a feed\n\n<html>\n<body>\n";
    match parse(text) {
        Err(IntelError::NoValidHashes {
            feed,
            malformed,
            line,
            reason,
        }) => {
            assert_eq!(feed, "test-feed");
            assert_eq!(malformed, 2);
            assert_eq!(line, 3);
            assert!(reason.contains("<html>"), "{reason}");
        }
        other => panic!("expected NoValidHashes, got {other:?}"),
    }
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ward-intel-test-{}-{name}", std::process::id()))
}

#[test]
fn load_from_file_names_feed_after_file_and_errors_after_path() {
    let path = temp_path("feed.txt");
    std::fs::write(&path, format!("{} # from file\n", hx("f"))).unwrap();
    let feed = Feed::load(&path);
    let bad = temp_path("bad.txt");
    std::fs::write(&bad, "junk\n").unwrap();
    let bad_res = Feed::load(&bad);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&bad);

    let feed = feed.unwrap();
    let expected_name = path.file_name().unwrap().to_str().unwrap();
    assert_eq!(feed.name(), expected_name);
    let m = feed.lookup(&sha("f")).unwrap();
    assert_eq!(m.feed, expected_name);
    assert_eq!(m.comment, Some("from file"));

    match bad_res {
        Err(e @ IntelError::NoValidHashes { line: 1, .. }) => {
            assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
        }
        other => panic!("expected NoValidHashes, got {other:?}"),
    }
}

#[test]
fn unreadable_file_is_fatal_with_path() {
    let path = temp_path("does-not-exist.txt");
    match Feed::load(&path) {
        Err(e @ IntelError::Open { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            if let IntelError::Open { source, .. } = &e {
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
        }
        other => panic!("expected Open error, got {other:?}"),
    }
}

#[test]
fn read_error_mid_stream_names_line() {
    struct Failing {
        sent: bool,
    }
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.sent {
                return Err(std::io::Error::other("disk on fire"));
            }
            self.sent = true;
            let data = format!("{}\n{}\n", hx("a"), hx("b"));
            buf[..data.len()].copy_from_slice(data.as_bytes());
            Ok(data.len())
        }
    }
    let r = BufReader::with_capacity(1024, Failing { sent: false });
    match Feed::parse("f", r, None) {
        Err(IntelError::Read { feed, line, source }) => {
            assert_eq!(feed, "f");
            assert_eq!(line, 3);
            assert_eq!(source.to_string(), "disk on fire");
        }
        other => panic!("expected Read error, got {other:?}"),
    }
}

#[test]
fn several_feeds_name_the_right_feed_and_comment() {
    let a = Feed::parse(
        "abuse.txt",
        format!("{};Emotet\n{};Both-A\n", hx("emotet"), hx("both")).as_bytes(),
        None,
    )
    .unwrap();
    let b = Feed::parse(
        "internal.csv",
        format!(
            "sha256_hash,signature\n{},Qakbot\n{},Both-B\n",
            hx("qakbot"),
            hx("both")
        )
        .as_bytes(),
        None,
    )
    .unwrap();
    let set: IntelSet = [a, b].into_iter().collect();
    assert_eq!(set.len(), 4);
    assert_eq!(
        set.lookup(&sha("emotet")),
        Some(IntelMatch {
            feed: "abuse.txt",
            comment: Some("Emotet")
        })
    );
    assert_eq!(
        set.lookup(&sha("qakbot")),
        Some(IntelMatch {
            feed: "internal.csv",
            comment: Some("Qakbot")
        })
    );
    assert_eq!(set.lookup(&sha("both")).unwrap().feed, "abuse.txt");
    let all: Vec<_> = set.lookup_all(&sha("both")).collect();
    assert_eq!(
        all,
        vec![
            IntelMatch {
                feed: "abuse.txt",
                comment: Some("Both-A")
            },
            IntelMatch {
                feed: "internal.csv",
                comment: Some("Both-B")
            }
        ]
    );
    assert!(set.lookup(&sha("absent")).is_none());
    assert_eq!(set.lookup_all(&sha("absent")).count(), 0);
    assert!(set.memory_bytes() > 0);
}

#[test]
fn large_feed_uses_buckets_and_finds_every_hash() {
    let n = 20_000;
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&hx(&format!("h{i}")));
        text.push_str(if i % 3 == 0 { ";fam-a\n" } else { ";fam-b\n" });
    }
    // Extreme keys at both ends of the bucket table.
    text.push_str(&format!(
        "{};low\n{};high\n",
        "0".repeat(64),
        "f".repeat(64)
    ));
    let feed = parse(&text).unwrap();
    assert_eq!(feed.len(), n + 2);
    assert!(feed.index.bucket_bits() > 0);
    assert_eq!(feed.comments.len(), 4);
    for i in 0..n {
        let m = feed.lookup(&sha(&format!("h{i}"))).expect("present");
        assert_eq!(m.comment, Some(if i % 3 == 0 { "fam-a" } else { "fam-b" }));
        assert!(feed.lookup(&sha(&format!("absent{i}"))).is_none());
    }
    assert_eq!(feed.lookup(&[0u8; 32]).unwrap().comment, Some("low"));
    assert_eq!(feed.lookup(&[0xffu8; 32]).unwrap().comment, Some("high"));
    let mut almost = [0xffu8; 32];
    almost[KEY_BYTES - 1] = 0xfe;
    assert!(feed.lookup(&almost).is_none());
}

#[test]
fn only_key_bytes_are_compared() {
    // Documents the truncation: digests that differ only after KEY_BYTES
    // match; one differing inside the key does not.
    let d = sha("k");
    let feed = parse(&format!("{}\n", hex::encode(d))).unwrap();
    let mut after = d;
    after[KEY_BYTES] ^= 1;
    after[31] ^= 0x80;
    assert!(feed.contains(&after));
    for i in 0..KEY_BYTES {
        let mut inside = d;
        inside[i] ^= 1;
        assert!(!feed.contains(&inside), "byte {i}");
    }
}

#[test]
fn format_override_and_detection() {
    let text = format!("not-a-hash,1\n{};c\n", hx("1"));
    assert!(matches!(
        parse(&text),
        Err(IntelError::NoSha256Column { line: 1, .. })
    ));
    let feed = Feed::parse("f", text.as_bytes(), Some(FeedFormat::HashComment)).unwrap();
    assert!(!feed.report().detected);
    assert_eq!(feed.report().format, FeedFormat::HashComment);
    assert_eq!(problem_lines(&feed), vec![1]);
    assert_eq!(feed.lookup(&sha("1")).unwrap().comment, Some("c"));

    // A plain line whose trailing comment has commas and semicolons.
    let text = format!("{} dropped by x, y; z\n{}\n", hx("p"), hx("q"));
    let feed = parse(&text).unwrap();
    assert_eq!(feed.report().format, FeedFormat::Plain);
    assert_eq!(
        feed.lookup(&sha("p")).unwrap().comment,
        Some("dropped by x, y; z")
    );

    for (s, f) in [
        ("plain", FeedFormat::Plain),
        ("Hash-Comment", FeedFormat::HashComment),
        ("CSV", FeedFormat::Csv),
    ] {
        assert_eq!(s.parse::<FeedFormat>().unwrap(), f);
        assert_eq!(f.to_string().parse::<FeedFormat>().unwrap(), f);
    }
    assert!("json".parse::<FeedFormat>().is_err());
}

#[test]
fn tiny_read_buffer_gives_same_result() {
    let text = malwarebazaar_csv();
    let big = Feed::parse("a", text.as_bytes(), None).unwrap();
    let small = Feed::parse("a", BufReader::with_capacity(7, Cursor::new(&text)), None).unwrap();
    assert_eq!(big.report(), small.report());
    for s in ["agenttesla", "jsdropper", "elf", "mirai"] {
        assert_eq!(big.lookup(&sha(s)), small.lookup(&sha(s)));
    }
}

#[test]
fn line_reader_caps_kept_bytes() {
    let data = format!("{}\nshort\nlast", "x".repeat(1000));
    let mut r = BufReader::with_capacity(16, Cursor::new(data));
    let mut buf = Vec::new();
    assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), Some(1000));
    assert_eq!(buf.len(), 100);
    assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), Some(5));
    assert_eq!(buf, b"short");
    assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), Some(4));
    assert_eq!(buf, b"last");
    assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), None);
}

#[test]
fn csv_splitter() {
    let mut f = Vec::new();
    let line = br#" a , "b,c" ,"d""e",,"" , f"#;
    split_csv(line, &mut f).unwrap();
    let texts: Vec<&[u8]> = f.iter().map(|x| &line[x.start..x.end]).collect();
    assert_eq!(texts, vec![&b"a"[..], b"b,c", b"d\"\"e", b"", b"", b"f"]);
    assert!(f[2].escaped && !f[1].escaped);
    split_csv(b"x,", &mut f).unwrap();
    assert_eq!(f.len(), 2);
    assert!(split_csv(br#""open"#, &mut f).is_err());
    assert!(split_csv(br#""a"b,c"#, &mut f).is_err());
}

#[test]
fn long_comments_are_cut_at_char_boundary() {
    let comment = "ü".repeat(MAX_COMMENT_LEN); // 2 bytes each
    let feed = parse(&format!("{};{comment}x\n", hx("c"))).unwrap();
    let got = feed.lookup(&sha("c")).unwrap().comment.unwrap();
    assert!(got.len() <= MAX_COMMENT_LEN && got.len() >= MAX_COMMENT_LEN - 1);
    assert!(comment.starts_with(got));
}

#[test]
fn report_display_summarises() {
    let text = format!("{}\n{}\n{}\nbroken\n", hx("a"), hx("a"), md5ish("m"));
    let feed = parse(&text).unwrap();
    let s = feed.report().to_string();
    assert!(
        s.starts_with("test-feed: format plain (detected), 4 lines, 1 hashes loaded, 1 duplicates"),
        "{s}"
    );
    assert!(
        s.contains("1 other-hash lines skipped (0 sha1, 1 md5)"),
        "{s}"
    );
    assert!(s.contains("1 malformed\n  line 4: "), "{s}");
}

#[test]
fn duplicate_lines_are_named_when_loading_a_file() {
    let dir = std::env::temp_dir().join(format!("ward-intel-dups-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dups.txt");
    let (a, b) = (hx("a"), hx("b"));
    // a on lines 2, 4 and 6; b on lines 3 and 7 (upper case: the same hash).
    let text = format!(
        "# feed\n{a}\n{b};first b\n{a}\nnot-a-hash\n{a}\n{}\n",
        b.to_uppercase()
    );
    std::fs::write(&path, &text).unwrap();
    let feed = Feed::load(&path).unwrap();
    let r = feed.report();
    assert_eq!(r.duplicates, 3);
    let lines: Vec<(u64, u64)> = r
        .duplicate_lines
        .iter()
        .map(|d| (d.line, d.first_line))
        .collect();
    assert_eq!(lines, vec![(4, 2), (6, 2), (7, 3)]);
    let shown = r.to_string();
    assert!(shown.contains("line 6: duplicate of line 2"), "{shown}");
    assert_eq!(
        problem_lines(&feed),
        vec![5],
        "malformed lines are unaffected"
    );
    assert_eq!(feed.lookup(&sha("b")).unwrap().comment, Some("first b"));
    // A stream cannot be read twice: duplicates are counted, not located.
    let streamed = parse(&text).unwrap();
    assert_eq!(streamed.report().duplicates, 3);
    assert!(streamed.report().duplicate_lines.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}
