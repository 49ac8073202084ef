//! *Execution: Possible Remote Command Execution Detected* (MEDIUM) and *Reverse Shell*
//! (CRITICAL).
//!
//! Evidence is the process table's binding (`ward-proctable`): the *stdin* (fd 0) of the
//! process, or of an ancestor in the same container, is a connected AF_INET/AF_INET6 socket,
//! TCP or UDP (at exec, or dup'ed onto it by a process that then runs commands), or the process
//! descends from a network relay (socat, nc) that holds a connection, or it reads a pipe/FIFO
//! fed by one (`mkfifo` + `nc` pipelines), or it is an interactive shell whose stdin pipe is
//! written by a process holding a remote connection (interpreter relays: python
//! `Popen(stdin=PIPE)` + a pump thread, node `spawn` + `client.pipe(sh.stdin)`, java
//! `Runtime.exec` + stream pumps; the relay's name plays no part).
//!
//! The rule (Google SCC: a reverse shell is a shell whose *stdin* is bound to a remote socket):
//! * A shell whose stdin reads from the peer is a **Reverse Shell**, also when its output is
//!   discarded (a blind shell, `sh <&3 >/dev/null`). A shell whose fd 1 is the socket only for
//!   a builtin's redirection (`printf ... >&3`) is not: stdout alone binds nothing, and a dup
//!   of the socket onto stdin counts only once the shell forks with it (runs a command the
//!   peer sent), not for `read l <&3` or for the redirection of the command it is about to
//!   exec.
//! * A standard UNIX command run while bound → **Possible Remote Command Execution**, with one
//!   exception: a command bound only through its *own* stdin (no bound shell or relay above
//!   it) whose stdout and stderr are not the socket reads the socket into a file, a pipe or
//!   /dev/null: a **transfer** (`cat <&3 > /tmp/file`, the health check's `cat <&3 >/dev/null`),
//!   not remote command execution. If it pipes into a shell, that shell is the finding.
//! * A process bound only because it reads a relay's output through a pipe fires only when it
//!   is a shell (`nc H P | sh`), or for what such a shell runs: `openssl s_client ... | grep`
//!   processes network data but executes nothing.
//! * Not reported: AF_UNIX sockets (an ssh channel without a pty), local pipelines, ttys
//!   (interactive sessions), services in `service_allowlist` (the process holding the socket),
//!   images in `allow_images`.
//!
//! Interpreter relays: which process holds a shell's stdin pipe (or the other end of its
//! AF_UNIX socketpair, node's child stdio) is looked up by the enricher in user space
//! (`/proc/<parent>/fd`, sock_diag for socketpair peers; only for interactive shells whose stdin
//! is a pipe or socketpair), not in BPF: no cost on the exec path, and by the time it looks, a
//! pipeline's parent shell has closed its copies of the pipe, so `x | sh` run by a connected
//! script is not mistaken for a relay. A parent already gone by then counts as the writer (a
//! relay whose session lasted less than the agent's poll interval); the connection it held
//! must still have been seen. A relay that is not the shell's parent is not seen.
//!
//! Findings aggregate per (category, container, peer): one reverse-shell session is one
//! finding whose `Commands` list shows what ran in it.

use crate::config::{image_allowed, RemoteCommandConfig, ReverseShellConfig};
use crate::detectors::{command_line, image_of};
use crate::{Ctx, Detection, Detector};
use rustc_hash::FxHashSet;
use ward_event::{Category, ExecEvent};
use ward_proctable::{Binding, Proc};

pub const NAME: &str = "remote_command";

pub struct RemoteCommand {
    rce: bool,
    reverse_shell: bool,
    commands: FxHashSet<String>,
    shells: FxHashSet<String>,
    service_allowlist: Vec<String>,
    allow_images: Vec<String>,
}

impl RemoteCommand {
    pub fn new(rce: &RemoteCommandConfig, rs: &ReverseShellConfig) -> Self {
        RemoteCommand {
            rce: rce.enabled,
            reverse_shell: rs.enabled,
            commands: rce.commands.iter().cloned().collect(),
            shells: rs.shells.iter().cloned().collect(),
            service_allowlist: rce.service_allowlist.clone(),
            allow_images: rce.allow_images.clone(),
        }
    }

    /// The binding that makes this process report, unless allowlisted.
    fn evidence<'p>(&self, proc: &'p Proc, exec: &ExecEvent) -> Option<&'p Binding> {
        let b = proc.binding()?;
        let allowed = self
            .service_allowlist
            .iter()
            .any(|s| *s == b.origin_program || *s == b.origin_binary);
        if allowed || image_allowed(&self.allow_images, image_of(exec)) {
            return None;
        }
        Some(b)
    }

    fn detection(
        &self,
        category: Category,
        proc: &Proc,
        exec: &ExecEvent,
        b: &Binding,
        time: u64,
    ) -> Detection {
        let peer = format!(
            "{}",
            std::net::SocketAddr::new(b.socket.remote_ip, b.socket.remote_port)
        );
        let mut d = Detection::new(category, NAME, time, proc.pid, peer.clone()).detail(format!(
            "`{}` (pid {}) ran bound to remote peer {} ({}; socket held by {} pid {}).",
            command_line(exec),
            proc.pid,
            peer,
            b.via.as_str(),
            if b.origin_program.is_empty() {
                "?"
            } else {
                &b.origin_program
            },
            b.origin_pid
        ));
        d.connection = Some(b.socket);
        d.properties.push(("Remote_Peer", peer.into()));
        d.properties.push(("Binding", b.via.as_str().into()));
        d.properties
            .push(("Socket_Holder_Pid", b.origin_pid.into()));
        if !b.origin_program.is_empty() {
            d.properties
                .push(("Socket_Holder_Program", b.origin_program.clone().into()));
        }
        d
    }
}

impl Detector for RemoteCommand {
    fn name(&self) -> &'static str {
        NAME
    }

    fn on_exec(&self, _ctx: &Ctx<'_>, proc: &Proc, exec: &ExecEvent, out: &mut Vec<Detection>) {
        let Some(b) = self.evidence(proc, exec) else {
            return;
        };
        let program = exec.program();
        let is_shell = self.shells.contains(program);
        if proc.bound_by_pipe && !is_shell {
            return;
        }
        if !is_shell && is_transfer(proc, b) {
            return;
        }
        if self.rce && self.commands.contains(program) {
            out.push(self.detection(
                Category::PossibleRemoteCommandExecutionDetected,
                proc,
                exec,
                b,
                exec.time,
            ));
        }
        if self.reverse_shell && is_shell {
            out.push(self.detection(Category::ReverseShell, proc, exec, b, exec.time));
        }
    }

    fn on_bound(&self, _ctx: &Ctx<'_>, proc: &Proc, time: u64, out: &mut Vec<Detection>) {
        let Some(exec) = proc.exec.as_deref() else {
            return;
        };
        if !self.reverse_shell || !self.shells.contains(exec.program()) {
            return;
        }
        let Some(b) = self.evidence(proc, exec) else {
            return;
        };
        out.push(self.detection(Category::ReverseShell, proc, exec, b, time));
    }
}

/// A command that reads the socket on its own stdin and writes elsewhere (a file, a pipe,
/// /dev/null): data transfer, not remote command execution.
fn is_transfer(proc: &Proc, b: &Binding) -> bool {
    b.origin_pid == proc.pid
        && !proc.stdio[1..]
            .iter()
            .any(|s| s.inode == b.socket_inode || s.socket.is_some_and(|s| s == b.socket))
}

#[cfg(test)]
mod tests;
