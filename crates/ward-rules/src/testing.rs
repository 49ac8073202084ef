//! Each rule's own tests: compact execs (with their ancestry) that it must fire on or stay
//! quiet on, run through the same [`crate::RuleSet::eval`] path as live events, so a test also
//! catches a rule that an index or another rule's exception hides.

use crate::format::TestExec;
use crate::{Expect, Place, RuleSet, Verdict};
use ward_event::{
    BinaryInfo, ContainerMeta, ExecEvent, FdInfo, FdKind, Layer, PodMeta, Protocol, SocketInfo,
};

/// A test that did not give what it expects.
#[derive(Debug, Clone)]
pub struct TestFailure {
    pub rule: String,
    pub place: Place,
    pub name: String,
    pub expect: Expect,
}

impl std::fmt::Display for TestFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let want = match self.expect {
            Expect::Fire => "should fire but did not",
            Expect::Quiet => "should stay quiet but did not",
            Expect::Wait => "should wait for container metadata but did not",
        };
        write!(f, "{}: rule {}: test", self.place, self.rule)?;
        if !self.name.is_empty() {
            write!(f, " {:?}", self.name)?;
        }
        write!(f, " {want}")
    }
}

#[derive(Debug, Clone, Default)]
pub struct TestReport {
    pub passed: usize,
    pub failures: Vec<TestFailure>,
}

pub(crate) fn run(set: &RuleSet) -> TestReport {
    let mut report = TestReport::default();
    let mut fired = Vec::new();
    for (i, rule) in set.rules().iter().enumerate() {
        for t in &rule.tests {
            fired.clear();
            // A disabled rule is tested on its own (it is shipped; users may turn it on).
            let got = if rule.enabled {
                let mut waiting = Vec::new();
                set.eval_waiting(t, &mut fired, &mut waiting);
                if fired.contains(&(i as u32)) {
                    Expect::Fire
                } else if waiting.contains(&(i as u32)) {
                    Expect::Wait
                } else {
                    Expect::Quiet
                }
            } else {
                match rule.verdict(t) {
                    Verdict::Fire => Expect::Fire,
                    Verdict::Quiet => Expect::Quiet,
                    Verdict::Undecided => Expect::Wait,
                }
            };
            let ok = got == t.expect;
            if ok {
                report.passed += 1;
            } else {
                report.failures.push(TestFailure {
                    rule: rule.id.clone(),
                    place: t.place.clone(),
                    name: t.name.clone(),
                    expect: t.expect,
                });
            }
        }
    }
    report
}

fn fd(kind: FdKind) -> FdInfo {
    FdInfo {
        kind,
        ..FdInfo::default()
    }
}

/// The first socket-peer string of a test exec (or its ancestry and neighbours) that is not
/// an address like `203.0.113.9:4444`.
pub(crate) fn bad_peer(t: &TestExec) -> Option<String> {
    let bad = |p: &Option<String>| {
        p.as_ref()
            .filter(|p| p.parse::<std::net::SocketAddr>().is_err())
            .cloned()
    };
    bad(&t.stdin_peer)
        .or_else(|| bad(&t.stdout_peer))
        .or_else(|| t.parent.as_deref().and_then(bad_peer))
        .or_else(|| t.stdin_writer.as_deref().and_then(bad_peer))
        .or_else(|| t.stdout_reader.as_deref().and_then(bad_peer))
}

/// A test's chain `[exec, parent, ...]` and, per depth, the pipe neighbours it gives. A
/// neighbour is a sibling (same parent); the two ends of its pipe get one inode.
#[allow(clippy::type_complexity)]
pub(crate) fn chain_of(
    t: &TestExec,
) -> (
    Vec<ExecEvent>,
    Vec<Option<ExecEvent>>,
    Vec<Option<ExecEvent>>,
) {
    let (mut chain, mut writers, mut readers) = (Vec::new(), Vec::new(), Vec::new());
    let mut cur = Some(t);
    let mut pid = 1000;
    let mut inode = 7000;
    while let Some(t) = cur {
        let mut e = exec_of(t, pid);
        let mut peer = |p: &TestExec, pid: u32, mine: usize, theirs: usize, e: &mut ExecEvent| {
            inode += 1;
            let mut n = exec_of(p, pid);
            n.ppid = e.ppid;
            let given = if mine == 0 { t.stdin } else { t.stdout };
            e.stdio[mine] = FdInfo {
                kind: given.unwrap_or(FdKind::Pipe),
                inode,
                ..FdInfo::default()
            };
            n.stdio[theirs] = FdInfo {
                kind: FdKind::Pipe,
                inode,
                ..FdInfo::default()
            };
            n
        };
        let w = t
            .stdin_writer
            .as_deref()
            .map(|p| peer(p, pid + 2000, 0, 1, &mut e));
        let r = t
            .stdout_reader
            .as_deref()
            .map(|p| peer(p, pid + 3000, 1, 0, &mut e));
        chain.push(e);
        writers.push(w);
        readers.push(r);
        pid -= 1;
        cur = t.parent.as_deref();
    }
    (chain, writers, readers)
}

pub(crate) fn exec_of(t: &TestExec, pid: u32) -> ExecEvent {
    let filename = t.filename.clone().unwrap_or_else(|| t.exe.clone());
    let argv = t
        .argv
        .clone()
        .unwrap_or_else(|| vec![crate::compile::basename(&filename).to_string()]);
    let in_container = t.container.unwrap_or(true);
    let with_meta = in_container && t.metadata.unwrap_or(true);
    let container = with_meta.then(|| ContainerMeta {
        name: "test".into(),
        image: t
            .image
            .clone()
            .unwrap_or_else(|| "registry.example/app:1".into()),
        labels: t.labels.clone(),
        pod: t.namespace.as_ref().map(|ns| PodMeta {
            name: "test-pod".into(),
            namespace: ns.clone(),
            labels: t.labels.clone(),
        }),
        ..ContainerMeta::default()
    });
    let tty = fd(FdKind::Tty);
    let socket = |peer: &Option<String>, given: Option<FdKind>| -> Option<FdInfo> {
        let addr: std::net::SocketAddr = peer.as_deref()?.parse().ok()?;
        Some(FdInfo {
            kind: given.unwrap_or(FdKind::InetSocket),
            inode: 0,
            path: None,
            socket: Some(SocketInfo {
                protocol: Protocol::Tcp,
                local_ip: std::net::Ipv4Addr::new(10, 0, 0, 2).into(),
                local_port: 40000,
                remote_ip: addr.ip(),
                remote_port: addr.port(),
            }),
        })
    };
    let stdin = socket(&t.stdin_peer, t.stdin)
        .or_else(|| t.stdin.map(fd))
        .unwrap_or_else(|| tty.clone());
    let stdout = socket(&t.stdout_peer, t.stdout)
        .or_else(|| t.stdout.map(fd))
        .unwrap_or_else(|| tty.clone());
    ExecEvent {
        time: 0,
        node: "test-node".into(),
        pid,
        tgid: None,
        ppid: pid.saturating_sub(1),
        uid: t.uid,
        gid: 0,
        comm: crate::compile::basename(&filename)
            .chars()
            .take(15)
            .collect(),
        filename,
        binary: BinaryInfo {
            path: t.exe.clone(),
            layer: t.layer.unwrap_or(if in_container {
                Layer::Image
            } else {
                Layer::NotOverlay
            }),
            ..BinaryInfo::default()
        },
        argv,
        argv_truncated: false,
        env: t.env.iter().collect(),
        env_truncated: false,
        cwd: "/".into(),
        script: None,
        stdio: [stdin, stdout, tty],
        cgroup_id: 0,
        container_id: in_container.then(|| "c0ffee".repeat(10) + "c0ff"),
        stdin_writer: None,
        container,
    }
}
