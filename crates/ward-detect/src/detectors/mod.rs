//! One module per detector, each with its config (in `crate::config`), logic and tests.

pub mod added_binary;
pub mod compiler;
pub mod malicious_binary;
pub mod malicious_python;
pub mod remote_command;
pub mod rules;

use ward_event::ExecEvent;

/// The image reference of the container an exec runs in, if any.
pub(crate) fn image_of(exec: &ExecEvent) -> Option<&str> {
    exec.container
        .as_ref()
        .map(|c| c.image.as_str())
        .filter(|s| !s.is_empty())
}

/// The command line as one string for details and `Commands` (argv joined, capped).
pub(crate) fn command_line(exec: &ExecEvent) -> String {
    let mut s = exec.argv.join(" ");
    if s.is_empty() {
        s = exec.filename.clone();
    }
    if s.len() > 512 {
        s = crate::report::truncate(&s, 512);
        s.push('…');
    }
    s
}
