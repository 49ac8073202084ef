//! The rules detector allocates nothing on an exec where no rule fires (the common path): a
//! counting global allocator around `Rules::on_exec` with every shipped rule on, over the
//! real process table's ancestry.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use ward_detect::detectors::rules::Rules;
use ward_detect::{Ctx, Detector};
use ward_event::build::*;
use ward_event::Event;
use ward_intel::IntelSet;
use ward_proctable::{ProcessTable, TableConfig};
use ward_rules::RuleSet;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

const CID: &str = "5d8e7f0a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbcc0";

fn in_c(b: ExecBuilder) -> ExecBuilder {
    b.container(CID, "app", "registry.example/app:1")
}

#[test]
fn no_allocation_when_no_rule_fires() {
    let rules = Rules::new(Arc::new(RuleSet::shipped_and(&[]).unwrap())).unwrap();
    let mut table = ProcessTable::new(TableConfig::default());
    let events: Vec<Event> = vec![
        in_c(ExecBuilder::new(1, 10, 1, "/usr/bin/catatonit")).event(),
        fork(2, 11, 10),
        in_c(ExecBuilder::new(3, 11, 10, "/bin/bash").args(&["bash", "/entrypoint.sh"])).event(),
        fork(4, 12, 11),
        in_c(ExecBuilder::new(5, 12, 11, "/usr/bin/python3").args(&[
            "python3",
            "-m",
            "gunicorn",
            "--bind",
            "0.0.0.0:8080",
            "app:wsgi",
        ]))
        // The environment rules (LD_PRELOAD, GLIBC_TUNABLES) look at every entry.
        .env(&[
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "HOSTNAME=app-7d9c5b-x2k4q",
            "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
            "GLIBC_TUNABLES=glibc.malloc.arena_max=2",
            "NO_PROXY=localhost,127.0.0.1",
            "HOME=/app",
        ])
        .event(),
        fork(6, 13, 12),
        in_c(ExecBuilder::new(7, 13, 12, "/usr/bin/curl").args(&[
            "curl",
            "-fsS",
            "-H",
            "Authorization: Bearer dGhpcyBpcyBub3QgYSBzY3JpcHQgYXQgYWxs",
            "http://127.0.0.1:8080/healthz",
        ]))
        .event(),
        fork(8, 14, 11),
        in_c(ExecBuilder::new(9, 14, 11, "/usr/bin/sudo").args(&["sudo", "-u", "app", "id"]))
            .env(&[
                "PATH=/usr/bin:/bin",
                "GCONV_PATH=/usr/lib/gconv",
                "TERM=xterm",
            ])
            .event(),
        fork(10, 15, 11),
        in_c(ExecBuilder::new(11, 15, 11, "/usr/bin/openssl").args(&["openssl", "version"]))
            .event(),
    ];
    for e in events {
        table.apply(e);
    }
    let intel = IntelSet::new();
    let ctx = Ctx {
        table: &table,
        intel: &intel,
        classifier: None,
    };
    // Not the shell (pid 11): see `a_quiet_shell_allocates_nothing` below.
    let pids = [12u32, 13, 14, 15];
    let mut out = Vec::with_capacity(16);
    // Warm up: per-thread buffers (command line, base64 decoding) and the hit list grow once.
    for _ in 0..3 {
        for pid in pids {
            let p = table.get(pid).unwrap();
            rules.on_exec(&ctx, p, p.exec.as_deref().unwrap(), &mut out);
        }
    }
    assert!(out.is_empty(), "no rule fires on these: {out:?}");
    let before = allocs();
    for _ in 0..1000 {
        for pid in pids {
            let p = table.get(pid).unwrap();
            rules.on_exec(&ctx, p, p.exec.as_deref().unwrap(), &mut out);
        }
    }
    let n = allocs() - before;
    assert_eq!(n, 0, "{n} allocations over 4000 quiet execs");
    assert!(out.is_empty());

    // The counter counts: a firing rule allocates (its finding's key and evidence).
    let mut table2 = ProcessTable::new(TableConfig::default());
    for e in [
        in_c(ExecBuilder::new(1, 20, 1, "/usr/sbin/nginx")).event(),
        fork(2, 21, 20),
        in_c(ExecBuilder::new(3, 21, 20, "/bin/sh").args(&["sh", "-c", "id"])).event(),
    ] {
        table2.apply(e);
    }
    let ctx2 = Ctx {
        table: &table2,
        intel: &intel,
        classifier: None,
    };
    let p = table2.get(21).unwrap();
    let before = allocs();
    rules.on_exec(&ctx2, p, p.exec.as_deref().unwrap(), &mut out);
    assert_eq!(out.len(), 1);
    assert!(allocs() > before);
}

/// A shell whose parent is no server (an entrypoint's `bash` under catatonit) is the most
/// common exec that reaches rules with a `parent` condition (UNEXPECTED_CHILD_SHELL,
/// SOCAT_REVERSE_SHELL_DETECTED): no evidence prefix or anything else is built for it.
#[test]
fn a_quiet_shell_allocates_nothing() {
    let rules = Rules::new(Arc::new(RuleSet::shipped_and(&[]).unwrap())).unwrap();
    let mut table = ProcessTable::new(TableConfig::default());
    for e in [
        in_c(ExecBuilder::new(1, 10, 1, "/usr/bin/catatonit")).event(),
        fork(2, 11, 10),
        in_c(ExecBuilder::new(3, 11, 10, "/bin/bash").args(&["bash", "/entrypoint.sh"])).event(),
    ] {
        table.apply(e);
    }
    let intel = IntelSet::new();
    let ctx = Ctx {
        table: &table,
        intel: &intel,
        classifier: None,
    };
    let p = table.get(11).unwrap();
    let mut out = Vec::with_capacity(4);
    rules.on_exec(&ctx, p, p.exec.as_deref().unwrap(), &mut out);
    let before = allocs();
    for _ in 0..1000 {
        rules.on_exec(&ctx, p, p.exec.as_deref().unwrap(), &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(allocs() - before, 0);
}

/// Pipe-neighbour lookups (the table's pipe index, by inode) allocate nothing either: a
/// `cat file | sh` pair and a `curl | jq` pair, judged with the index on, ask the index
/// (`sh` with a piped stdin, `curl` with a piped stdout) and fire nothing.
#[test]
fn pipe_neighbour_lookups_allocate_nothing() {
    use ward_event::FdKind;
    let set = Arc::new(RuleSet::shipped_and(&[]).unwrap());
    assert!(set.uses_pipe_neighbours());
    let rules = Rules::new(set).unwrap();
    let mut table = ProcessTable::new(TableConfig::default());
    table.set_pipe_index(true);
    let (p1, p2) = (fd(FdKind::Pipe, 9001), fd(FdKind::Pipe, 9002));
    for e in [
        in_c(ExecBuilder::new(1, 10, 1, "/bin/bash").args(&["bash", "/entrypoint.sh"])).event(),
        fork(2, 11, 10),
        fork(3, 12, 10),
        fork(4, 13, 10),
        fork(5, 14, 10),
        in_c(ExecBuilder::new(6, 11, 10, "/usr/bin/cat").args(&["cat", "/app/setup.sh"]))
            .stdio(1, p1.clone())
            .event(),
        in_c(ExecBuilder::new(7, 12, 10, "/bin/sh").args(&["sh"]))
            .stdio(0, p1)
            .event(),
        in_c(ExecBuilder::new(8, 13, 10, "/usr/bin/curl").args(&["curl", "-s", "http://m/t"]))
            .stdio(1, p2.clone())
            .event(),
        in_c(ExecBuilder::new(9, 14, 10, "/usr/bin/jq").args(&["jq", ".t"]))
            .stdio(0, p2)
            .event(),
    ] {
        table.apply(e);
    }
    let intel = IntelSet::new();
    let ctx = Ctx {
        table: &table,
        intel: &intel,
        classifier: None,
    };
    let pids = [12u32, 13];
    let mut out = Vec::with_capacity(16);
    for _ in 0..3 {
        for pid in pids {
            let p = table.get(pid).unwrap();
            rules.on_exec(&ctx, p, p.exec.as_deref().unwrap(), &mut out);
        }
    }
    assert!(out.is_empty(), "{out:?}");
    let before = allocs();
    for _ in 0..1000 {
        for pid in pids {
            let p = table.get(pid).unwrap();
            rules.on_exec(&ctx, p, p.exec.as_deref().unwrap(), &mut out);
        }
    }
    let n = allocs() - before;
    assert_eq!(n, 0, "{n} allocations over 2000 quiet piped execs");
}

/// With a URL feed loaded the URL rule looks up every URL and host-like argument; an exec none
/// of whose URLs or hosts is listed still allocates nothing (the URL is normalised into a
/// reused per-thread buffer, a host into a stack buffer).
#[test]
fn no_allocation_with_a_url_feed_when_nothing_is_listed() {
    let mut intel = IntelSet::new();
    intel.push_url_feed(
        ward_intel::UrlFeed::parse(
            "urls",
            "http://127.0.0.1:8080/admin\nevil.example\n*.c2.example\n".as_bytes(),
        )
        .unwrap(),
    );
    let intel = Arc::new(intel);
    let rules = Rules::new(Arc::new(RuleSet::shipped_and(&[]).unwrap()))
        .unwrap()
        .with_url_feeds(intel.clone());
    let mut table = ProcessTable::new(TableConfig::default());
    let execs: [&[&str]; 4] = [
        &["curl", "-fsS", "http://127.0.0.1:8080/healthz"],
        &[
            "wget",
            "-q",
            "HTTPS://Mirror.Example.:443/pool/a.deb",
            "-O",
            "/tmp/a.deb",
        ],
        &["ssh", "-p", "2222", "git@github.example", "ls"],
        &["tar", "xzf", "release.tar.gz", "-C", "/opt/app.d"],
    ];
    for (i, argv) in execs.iter().enumerate() {
        let pid = 30 + i as u32;
        table.apply(fork(1 + 2 * i as u64, pid, 1));
        table.apply(
            in_c(ExecBuilder::new(
                2 + 2 * i as u64,
                pid,
                1,
                &format!("/usr/bin/{}", argv[0]),
            ))
            .args(argv)
            .event(),
        );
    }
    let ctx = Ctx {
        table: &table,
        intel: &intel,
        classifier: None,
    };
    let mut out = Vec::with_capacity(16);
    let pids = [30u32, 31, 32, 33];
    for _ in 0..3 {
        for pid in pids {
            let p = table.get(pid).unwrap();
            rules.on_exec(&ctx, p, p.exec.as_deref().unwrap(), &mut out);
        }
    }
    assert!(out.is_empty(), "nothing is listed: {out:?}");
    let before = allocs();
    for _ in 0..1000 {
        for pid in pids {
            let p = table.get(pid).unwrap();
            rules.on_exec(&ctx, p, p.exec.as_deref().unwrap(), &mut out);
        }
    }
    let n = allocs() - before;
    assert_eq!(
        n, 0,
        "{n} allocations over 4000 execs with unlisted URLs and hosts"
    );
    // The feed is asked: a listed URL fires (and allocates its finding).
    table.apply(fork(20, 40, 1));
    table.apply(
        in_c(ExecBuilder::new(21, 40, 1, "/usr/bin/curl"))
            .args(&["curl", "http://127.0.0.1:8080/admin"])
            .event(),
    );
    let ctx = Ctx {
        table: &table,
        intel: &intel,
        classifier: None,
    };
    let p = table.get(40).unwrap();
    rules.on_exec(&ctx, p, p.exec.as_deref().unwrap(), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
}
