//! URL feeds: formats, normalisation, matching, line-numbered problems.

use crate::url::{normalize_host, normalize_url, UrlError};
use crate::{IntelError, IntelSet, ProblemKind, UrlEntryKind, UrlFeed, UrlFeedFormat};

fn feed(text: &str) -> UrlFeed {
    UrlFeed::parse("t", text.as_bytes()).unwrap()
}

#[test]
fn normalisation() {
    let n = |u: &str| normalize_url(u).unwrap().text;
    assert_eq!(n("HTTP://Evil.Example.:80/x#top"), "http://evil.example/x");
    assert_eq!(n("https://evil.example:443"), "https://evil.example/");
    assert_eq!(
        n("https://evil.example:8443/a"),
        "https://evil.example:8443/a"
    );
    assert_eq!(n("ftp://u:p@Evil.example:21/f"), "ftp://evil.example/f");
    assert_eq!(n("http://evil.example?q=1"), "http://evil.example/?q=1");
    assert_eq!(
        n("http://evil.example:/A/B?X=Y"),
        "http://evil.example/A/B?X=Y"
    );
    assert_eq!(n("http://[2001:DB8::7]:80/p"), "http://[2001:db8::7]/p");
    assert_eq!(
        n("http://bücher.example/p"),
        "http://xn--bcher-kva.example/p"
    );
    let u = normalize_url("http://a@b@Host.example:81/p").unwrap();
    assert_eq!(u.text, "http://host.example:81/p");
    assert_eq!(&u.text[u.host], "host.example");
    // The path keeps its case and encoding.
    assert_ne!(n("http://h.example/A%41"), n("http://h.example/AA"));
    assert_eq!(
        normalize_url("gopher://h/x"),
        Err(UrlError::Scheme("gopher".into()))
    );
    assert_eq!(normalize_url("http:///x"), Err(UrlError::NoHost));
    assert!(matches!(
        normalize_url("http://h:99999/"),
        Err(UrlError::Port(_))
    ));
    assert!(matches!(
        normalize_url("http://h:-1/"),
        Err(UrlError::Port(_))
    ));
    assert!(matches!(
        normalize_url("http://h$x/"),
        Err(UrlError::Host(..))
    ));
    assert!(matches!(
        normalize_url("http://a..b/"),
        Err(UrlError::Host(..))
    ));
    assert_eq!(normalize_host("2001:db8::7").unwrap(), "[2001:db8::7]");
    assert_eq!(normalize_host("EVIL.example.").unwrap(), "evil.example");
}

#[test]
fn plain_feed_kinds_and_matching() {
    let f = feed(
        "\u{feff}# a URL feed\r\n\
         http://203.0.113.9/bins/x86   # mirai loader\r\n\
         HTTPS://Drop.Example/a.sh\n\
         evil.example\n\
         *.c2.example ; botnet\n\
         .other.example\n\
         0.0.0.0 sink.example\n\
         2001:db8::7\n\
         \n",
    );
    let r = f.report();
    assert_eq!(r.format, UrlFeedFormat::Plain);
    assert_eq!(
        (r.urls, r.hosts, r.domains, r.malformed),
        (2, 3, 2, 0),
        "{r}"
    );
    assert_eq!(r.lines, 9);

    // A whole URL, normalised on both sides.
    let m = f.lookup_url("http://203.0.113.9:80/bins/x86#x").unwrap();
    assert_eq!(m.kind, UrlEntryKind::Url);
    assert_eq!(m.entry, "http://203.0.113.9/bins/x86");
    assert_eq!(m.comment, Some("mirai loader"));
    assert!(f.lookup_url("https://drop.example:443/a.sh").is_some());
    // Another path, scheme or query of a URL entry is not listed.
    assert!(f.lookup_url("http://203.0.113.9/bins/arm").is_none());
    assert!(f.lookup_url("https://203.0.113.9/bins/x86").is_none());
    assert!(f.lookup_url("http://drop.example/a.sh").is_none());
    assert!(f.lookup_url("https://drop.example/a.sh?x").is_none());
    // A host entry: any URL on it, and the host alone; not a name under it.
    let m = f.lookup_url("ftp://EVIL.example.:2121/anything").unwrap();
    assert_eq!((m.kind, m.entry), (UrlEntryKind::Host, "evil.example"));
    assert!(f.lookup_host("Evil.Example.").is_some());
    assert!(f.lookup_host("www.evil.example").is_none());
    assert!(f.lookup_host("sink.example").is_some());
    assert!(f.lookup_host("[2001:DB8:0::7]").is_some());
    assert!(f.lookup_url("http://[2001:db8::7]:8080/").is_some());
    // A domain entry: the name and every name under it, not a look-alike suffix.
    let m = f.lookup_host("a.b.C2.example").unwrap();
    assert_eq!((m.kind, m.entry), (UrlEntryKind::Domain, "c2.example"));
    assert_eq!(m.comment, Some("botnet"));
    assert!(f.lookup_host("c2.example").is_some());
    assert!(f.lookup_host("notc2.example").is_none());
    assert!(f.lookup_url("https://x.other.example/p").is_some());
    assert!(f.lookup_host("example").is_none());
    // Not URLs or hosts at all.
    assert!(f.lookup_url("stratum+tcp://evil.example:3333").is_none());
    assert!(f.lookup_host("").is_none());
    assert!(f.lookup_host(".").is_none());
}

#[test]
fn internationalised_names_match_their_punycode() {
    let f = feed("bücher.example\nhttp://xn--caf-dma.example/m\n");
    assert!(f.lookup_host("xn--bcher-kva.example").is_some());
    assert!(f.lookup_host("BÜCHER.example").is_some());
    assert!(f.lookup_url("http://café.example/m").is_some());
}

#[test]
fn urlhaus_csv_dump() {
    let text = "################################################################\n\
# abuse.ch URLhaus Database Dump (CSV - recent URLs only)      #\n\
################################################################\n\
#\n\
# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\
\"3821497\",\"2026-04-14 16:02:21\",\"http://198.51.100.7:56577/Mozi.m\",\"online\",\"2026-04-14 16:02:21\",\"malware_download\",\"32-bit,elf,mips,Mozi\",\"https://urlhaus.abuse.ch/url/3821497/\",\"geenensp\"\n\
\"3821496\",\"2026-04-14 16:02:19\",\"https://drop.example/payload\",\"online\",\"\",\"malware_download\",\"\",\"https://urlhaus.abuse.ch/url/3821496/\",\"anon\"\n\
\"3821495\",\"2026-04-14 16:02:19\",\"not a url/x\",\"online\",\"\",\"malware_download\",\"\",\"x\",\"anon\"\n\
\"3821494\",\"2026-04-14 16:02:19\n\
\"3821493\",\"2026-04-14\"\n";
    let f = feed(text);
    let r = f.report();
    assert_eq!(r.format, UrlFeedFormat::Csv);
    assert_eq!((r.urls, r.hosts, r.malformed), (2, 0, 3), "{r}");
    let lines: Vec<(u64, ProblemKind)> = r.problems.iter().map(|p| (p.line, p.kind)).collect();
    assert_eq!(
        lines,
        [
            (8, ProblemKind::InvalidUrl),
            (9, ProblemKind::BadCsvRow),
            (10, ProblemKind::BadCsvRow)
        ]
    );
    assert!(r.problems[2].message.contains("header at line 5"), "{r}");
    let m = f.lookup_url("http://198.51.100.7:56577/Mozi.m").unwrap();
    assert_eq!(m.comment, Some("malware_download (32-bit,elf,mips,Mozi)"));
    assert_eq!(
        f.lookup_url("https://drop.example/payload")
            .unwrap()
            .comment,
        Some("malware_download")
    );
    // The report names every problem with its line.
    let shown = r.to_string();
    assert!(shown.contains("line 8: "), "{shown}");
    assert!(shown.contains("2 URLs"), "{shown}");
}

#[test]
fn csv_with_a_plain_header_line() {
    let f = feed("url,comment\nhttp://evil.example/x,a\n");
    assert_eq!(f.report().format, UrlFeedFormat::Csv);
    assert!(f.lookup_url("http://evil.example/x").is_some());
    let e = UrlFeed::parse("t", "id,link\n1,http://x/\n".as_bytes()).unwrap_err();
    assert!(matches!(e, IntelError::NoUrlColumn { line: 1, .. }), "{e}");
}

#[test]
fn bad_lines_are_counted_and_skipped_with_their_line() {
    let f = feed(
        "http://ok.example/a\n\
         evil.example/path\n\
         gopher://x.example/\n\
         http://h.example:99999/\n\
         bad host.example\n\
         host.example:8080\n\
         *.203.0.113.9\n\
         http://ok.example/a\n",
    );
    let r = f.report();
    assert_eq!(r.urls, 1);
    // `bad host.example` is the host `bad` with a comment: a valid single-label host.
    assert_eq!(r.hosts, 1, "{r}");
    assert_eq!(r.malformed, 5, "{r}");
    let lines: Vec<u64> = r.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [2, 3, 4, 6, 7]);
    assert!(r.problems[0].message.contains("no scheme"), "{r}");
    assert!(r.problems[1].message.contains("gopher"), "{r}");
    assert!(r.problems[3].message.contains("no port"), "{r}");
    assert!(r.problems[4].message.contains("address"), "{r}");
    assert_eq!(r.duplicates, 1);
    assert_eq!(
        (r.duplicate_lines[0].line, r.duplicate_lines[0].first_line),
        (8, 1)
    );
    // Invalid UTF-8 and an over-long line, by line number.
    let mut bytes = b"http://ok.example/\n\xff\xfe\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'a', crate::MAX_LINE_LEN + 1));
    bytes.push(b'\n');
    let f = UrlFeed::parse("t", &bytes[..]).unwrap();
    let kinds: Vec<(u64, ProblemKind)> = f
        .report()
        .problems
        .iter()
        .map(|p| (p.line, p.kind))
        .collect();
    assert_eq!(
        kinds,
        [(2, ProblemKind::InvalidUtf8), (3, ProblemKind::LineTooLong)]
    );
}

#[test]
fn fatal_and_empty_feeds() {
    let e = UrlFeed::parse("t", "foo/bar\nbaz/qux\n".as_bytes()).unwrap_err();
    assert!(
        matches!(
            &e,
            IntelError::NoValidUrls {
                malformed: 2,
                line: 1,
                ..
            }
        ),
        "{e}"
    );
    let f = feed("# nothing here\n\n");
    assert!(f.is_empty());
    assert!(matches!(
        f.require_entries(),
        Err(IntelError::NoUrlEntries { lines: 2, .. })
    ));
    assert!(feed("evil.example\n").require_entries().is_ok());
    let e = UrlFeed::load(std::path::Path::new("/nonexistent/urls.txt")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/urls.txt"), "{e}");
}

#[test]
fn intel_set_consults_url_feeds_in_order() {
    let mut set = IntelSet::new();
    assert!(!set.has_url_feeds());
    assert!(set.lookup_url("http://evil.example/").is_none());
    set.push_url_feed(UrlFeed::parse("first", "http://evil.example/x\n".as_bytes()).unwrap());
    set.push_url_feed(UrlFeed::parse("second", "evil.example\n".as_bytes()).unwrap());
    assert!(set.has_url_feeds());
    assert_eq!(
        set.lookup_url("http://evil.example/x").unwrap().feed,
        "first"
    );
    assert_eq!(
        set.lookup_url("http://evil.example/y").unwrap().feed,
        "second"
    );
    assert_eq!(set.lookup_host("evil.example").unwrap().feed, "second");
    assert!(set.memory_bytes() > 0);
}
