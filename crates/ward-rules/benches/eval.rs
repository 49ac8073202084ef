//! Rule evaluation speed: every shipped rule against a mix of ordinary execs (a build, a shell
//! session, a web server's children) and a few attack-shaped ones, against an empty rule set
//! in the same run. Prints execs/s for both and the ratio.
//!
//! `cargo bench -p ward-rules --bench eval`

use std::time::Instant;
use ward_event::{BinaryInfo, ContainerMeta, ExecEvent, Layer};
use ward_rules::RuleSet;

fn exec(path: &str, argv: &[&str], layer: Layer) -> ExecEvent {
    ExecEvent {
        time: 0,
        node: "n".into(),
        pid: 2,
        tgid: None,
        ppid: 1,
        uid: 0,
        gid: 0,
        comm: String::new(),
        filename: path.into(),
        binary: BinaryInfo {
            path: path.into(),
            layer,
            ..BinaryInfo::default()
        },
        argv: argv.iter().map(|s| s.to_string()).collect(),
        argv_truncated: false,
        env: Default::default(),
        env_truncated: false,
        cwd: "/".into(),
        script: None,
        stdio: Default::default(),
        cgroup_id: 0,
        container_id: Some("c".repeat(64)),
        stdin_writer: None,
        container: Some(ContainerMeta {
            image: "registry.example/app:1".into(),
            ..ContainerMeta::default()
        }),
    }
}

fn main() {
    let img = Layer::Image;
    let parent = exec("/usr/bin/bash", &["bash"], img);
    let web = exec("/usr/sbin/nginx", &["nginx: worker process"], img);
    let mix: Vec<(ExecEvent, &ExecEvent)> = vec![
        (
            exec("/usr/bin/ls", &["ls", "-la", "/var/www"], img),
            &parent,
        ),
        (
            exec("/usr/bin/cat", &["cat", "/etc/os-release"], img),
            &parent,
        ),
        (
            exec(
                "/usr/bin/gcc",
                &["gcc", "-O2", "-c", "main.c", "-o", "main.o"],
                img,
            ),
            &parent,
        ),
        (
            exec("/usr/bin/grep", &["grep", "-r", "TODO", "src/"], img),
            &parent,
        ),
        (
            exec(
                "/usr/bin/curl",
                &["curl", "-fsS", "http://127.0.0.1:8080/healthz"],
                img,
            ),
            &parent,
        ),
        (
            exec(
                "/usr/bin/python3.11",
                &["python3", "manage.py", "migrate"],
                img,
            ),
            &parent,
        ),
        (exec("/usr/bin/dash", &["sh", "-c", "id"], img), &web),
        (
            exec(
                "/usr/bin/sed",
                &["sed", "-i", "s/a/b/", "/etc/app.conf"],
                img,
            ),
            &parent,
        ),
        (
            exec(
                "/usr/bin/find",
                &["find", "/app", "-name", "*.pyc", "-delete"],
                img,
            ),
            &parent,
        ),
        (
            exec(
                "/tmp/x",
                &["x", "-o", "stratum+tcp://pool:3333"],
                Layer::Added,
            ),
            &parent,
        ),
        (
            exec(
                "/usr/bin/git",
                &["git", "rev-parse", "--abbrev-ref", "HEAD"],
                img,
            ),
            &parent,
        ),
        (
            exec(
                "/usr/bin/tar",
                &["tar", "xzf", "release-1.4.2.tar.gz", "-C", "/opt"],
                img,
            ),
            &parent,
        ),
    ];
    let chains: Vec<Vec<&ExecEvent>> = mix.iter().map(|(e, p)| vec![e, *p]).collect();
    // As the agent runs them: without a URL feed the URL rule is off.
    let shipped = || {
        let mut set = RuleSet::shipped_and(&[]).expect("shipped rules load");
        let url: Vec<String> = set
            .rules()
            .iter()
            .filter(|r| r.uses_url_feed())
            .map(|r| r.id.clone())
            .collect();
        set.set_enabled(url.iter().map(|id| (id.as_str(), false)));
        set
    };
    let rules = shipped();
    let empty = RuleSet::default();
    let n: usize = std::env::var("WARD_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000);
    let mut out = Vec::with_capacity(16);
    let mut run_n = |set: &RuleSet, n: usize| {
        let mut fired = 0usize;
        let t = Instant::now();
        for i in 0..n {
            out.clear();
            set.eval(&chains[i % chains.len()], &mut out);
            fired += out.len();
        }
        (n as f64 / t.elapsed().as_secs_f64(), fired)
    };
    let mut run = |set: &RuleSet| run_n(set, n);
    // Interleave to share drift; best of 3 each.
    let mut best = (0f64, 0f64, 0usize);
    for _ in 0..3 {
        let (e, _) = run(&empty);
        let (r, fired) = run(&rules);
        best = (best.0.max(e), best.1.max(r), fired);
    }
    println!(
        "ward-rules eval: {} enabled rules, {n} execs x3: rules on {:.2} M execs/s, rules off {:.2} M execs/s ({:.1}% of the rule-less loop), {} firings per pass",
        rules.rules().iter().filter(|r| r.enabled).count(),
        best.1 / 1e6,
        best.0 / 1e6,
        100.0 * best.1 / best.0,
        best.2
    );
    // Where the time goes: each enabled rule alone (ns per exec of the mix, over and above
    // the empty set's loop), costliest first.
    let ids: Vec<String> = rules
        .rules()
        .iter()
        .filter(|r| r.enabled)
        .map(|r| r.id.clone())
        .collect();
    let base_ns = 1e9 / best.0;
    let mut per_rule: Vec<(f64, &str)> = Vec::new();
    for id in &ids {
        let mut one = shipped();
        one.set_enabled(ids.iter().map(|x| (x.as_str(), x == id)));
        let mut fastest = 0f64;
        for _ in 0..3 {
            fastest = fastest.max(run_n(&one, n / 10).0);
        }
        per_rule.push(((1e9 / fastest - base_ns).max(0.0), id));
    }
    per_rule.sort_by(|a, b| b.0.total_cmp(&a.0));
    let sum: f64 = per_rule.iter().map(|r| r.0).sum();
    println!(
        "each rule alone, ns per exec over the empty set (sum {sum:.0} ns; all at once {:.0} ns):",
        1e9 / best.1 - base_ns
    );
    for (ns, id) in per_rule.iter().take(12) {
        println!("  {ns:>7.1} ns  {id}");
    }
}
