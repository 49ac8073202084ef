//! Pure decisions about what an exec runs: the program's name as users know it (busybox
//! applets, symlinked interpreters), whether it is an interpreter, and which script it runs
//! (`python x.py`, `python -c CODE`, `sh -c CODE`, a shebang script).
//!
//! Reading the script itself is IO and happens in the enrichment layer; this module only
//! decides *what* to read.

use crate::event::{ExecEvent, ScriptKind};

/// The last path component.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Interpreters whose scripts Ward captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpreter {
    Python,
    Shell,
    Perl,
    Ruby,
    Node,
    Php,
}

impl Interpreter {
    /// Recognises an interpreter by program name (`python3.11`, `bash`, `perl5.36.0`, ...).
    pub fn from_program(name: &str) -> Option<Interpreter> {
        let stem_then_version = |prefix: &str| -> bool {
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        };
        if stem_then_version("python") || stem_then_version("pypy") {
            return Some(Interpreter::Python);
        }
        match name {
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "rbash" | "fish" | "tcsh"
            | "csh" | "yash" => return Some(Interpreter::Shell),
            "node" | "nodejs" => return Some(Interpreter::Node),
            _ => {}
        }
        if stem_then_version("perl") {
            Some(Interpreter::Perl)
        } else if stem_then_version("ruby") {
            Some(Interpreter::Ruby)
        } else if stem_then_version("php") {
            Some(Interpreter::Php)
        } else {
            None
        }
    }
}

/// What an interpreter was asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptTarget {
    /// A script file, as the process names it (relative to its cwd and root).
    File { kind: ScriptKind, path: String },
    /// Code given on the command line.
    Inline { code: String },
}

/// Whether an exec ran a script file through its `#!` line: the kernel then passes the script
/// path (the exec'd filename) as an argument after the interpreter and its optional argument.
pub fn is_shebang_exec(filename: &str, argv: &[String]) -> bool {
    argv.first().is_some_and(|a0| a0 != filename)
        && argv.iter().skip(1).take(2).any(|a| a == filename)
        && Interpreter::from_program(basename(filename)).is_none()
}

impl ExecEvent {
    /// The program's name as a user knows it: the executed file's name (`python3`, not the
    /// `python3.11` it links to), the applet for busybox, the interpreter for a shebang script.
    pub fn program(&self) -> &str {
        program_name(&self.filename, &self.binary.path, &self.argv)
    }

    /// The arguments after the program name (for `busybox APPLET ...`, after the applet).
    pub fn program_args(&self) -> &[String] {
        let name = basename(&self.filename);
        if name == "busybox" && self.argv.len() > 1 {
            &self.argv[2..]
        } else if self.argv.is_empty() {
            &[]
        } else {
            &self.argv[1..]
        }
    }

    /// The interpreter running, if the program is one.
    pub fn interpreter(&self) -> Option<Interpreter> {
        Interpreter::from_program(self.program())
    }
}

/// See [`ExecEvent::program`].
pub fn program_name<'a>(filename: &'a str, binary_path: &'a str, argv: &'a [String]) -> &'a str {
    if is_shebang_exec(filename, argv) {
        let interp = argv.first().map(String::as_str).unwrap_or(binary_path);
        return basename(interp);
    }
    let name = basename(filename);
    if name == "busybox" {
        if let Some(applet) = argv.get(1) {
            return basename(applet);
        }
    }
    if name.is_empty() {
        basename(binary_path)
    } else {
        name
    }
}

/// Decides which script an exec runs, if any.
pub fn script_target(filename: &str, binary_path: &str, argv: &[String]) -> Option<ScriptTarget> {
    if is_shebang_exec(filename, argv) {
        return Some(ScriptTarget::File {
            kind: ScriptKind::Shebang,
            path: filename.to_string(),
        });
    }
    let program = program_name(filename, binary_path, argv);
    let interp = Interpreter::from_program(program)?;
    let skip = if basename(filename) == "busybox" {
        2
    } else {
        1
    };
    let args = argv.get(skip..).unwrap_or(&[]);
    match interp {
        Interpreter::Python => python_target(args),
        Interpreter::Shell => shell_target(args),
        Interpreter::Perl => flag_code_target(args, &["-e", "-E"], &["-I", "-M", "-m", "-x"]),
        Interpreter::Ruby => flag_code_target(args, &["-e"], &["-I", "-r", "-C"]),
        Interpreter::Node => flag_code_target(
            args,
            &["-e", "--eval", "-p", "--print"],
            &["-r", "--require"],
        ),
        Interpreter::Php => flag_code_target(args, &["-r"], &["-c", "-d", "-z"]),
    }
}

fn file(path: &str) -> Option<ScriptTarget> {
    if path == "-" {
        return None; // stdin: nothing to read at exec
    }
    Some(ScriptTarget::File {
        kind: ScriptKind::File,
        path: path.to_string(),
    })
}

/// CPython's command line: flags may be combined (`-uc CODE`, `-cCODE`); `-W`/`-X` take a
/// value; `-m` runs a module; the first non-option is the script.
fn python_target(args: &[String]) -> Option<ScriptTarget> {
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            return args.get(i + 1).and_then(|p| file(p));
        }
        if a.starts_with("--") {
            // --check-hash-based-pycs takes a value; other long options are flags.
            if a == "--check-hash-based-pycs" {
                i += 1;
            }
            i += 1;
            continue;
        }
        if let Some(flags) = a.strip_prefix('-') {
            if flags.is_empty() {
                return None; // `-`: stdin
            }
            for (pos, ch) in flags.char_indices() {
                let rest = &flags[pos + ch.len_utf8()..];
                match ch {
                    'c' => {
                        let code = if rest.is_empty() {
                            args.get(i + 1)?.clone()
                        } else {
                            rest.to_string()
                        };
                        return Some(ScriptTarget::Inline { code });
                    }
                    'm' => return None,
                    'W' | 'X' => {
                        if rest.is_empty() {
                            i += 1;
                        }
                        break;
                    }
                    _ => {}
                }
            }
            i += 1;
            continue;
        }
        return file(a);
    }
    None
}

/// POSIX shells: `-c` takes the first operand as the command string; otherwise the first
/// operand is the script (unless `-s`). `-o NAME`/`+o NAME` take a value.
fn shell_target(args: &[String]) -> Option<ScriptTarget> {
    let mut command_mode = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if a.starts_with("--") {
            i += 1;
            continue;
        }
        if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 {
            for ch in a[1..].chars() {
                match ch {
                    'c' => command_mode = true,
                    's' => return None,
                    'o' | 'O' => {
                        i += 1;
                    }
                    _ => {}
                }
            }
            i += 1;
            continue;
        }
        break;
    }
    let operand = args.get(i)?;
    if command_mode {
        Some(ScriptTarget::Inline {
            code: operand.clone(),
        })
    } else {
        file(operand)
    }
}

/// Interpreters with an "execute this code" flag (`perl -e`, `ruby -e`, `node -e`, `php -r`);
/// `valued` are flags that take a separate value. Several `-e` are joined with newlines.
fn flag_code_target(args: &[String], code_flags: &[&str], valued: &[&str]) -> Option<ScriptTarget> {
    let mut code: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            i += 1;
            break;
        }
        if let Some(flag) = code_flags.iter().find(|f| a == **f) {
            let _ = flag;
            code.push(args.get(i + 1).cloned().unwrap_or_default());
            i += 2;
            continue;
        }
        if let Some(inline) = code_flags
            .iter()
            .filter(|f| f.len() == 2)
            .find_map(|f| a.strip_prefix(*f).filter(|r| !r.is_empty()))
        {
            code.push(inline.to_string());
            i += 1;
            continue;
        }
        if valued.contains(&a) {
            i += 2;
            continue;
        }
        if a.starts_with('-') && a.len() > 1 {
            i += 1;
            continue;
        }
        break;
    }
    if !code.is_empty() {
        return Some(ScriptTarget::Inline {
            code: code.join("\n"),
        });
    }
    args.get(i).and_then(|p| file(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn target(filename: &str, binary: &str, argv: &[&str]) -> Option<ScriptTarget> {
        script_target(filename, binary, &v(argv))
    }

    fn f(path: &str) -> Option<ScriptTarget> {
        Some(ScriptTarget::File {
            kind: ScriptKind::File,
            path: path.into(),
        })
    }
    fn inline(code: &str) -> Option<ScriptTarget> {
        Some(ScriptTarget::Inline { code: code.into() })
    }

    #[test]
    fn recognises_interpreters() {
        for (n, i) in [
            ("python", Interpreter::Python),
            ("python3", Interpreter::Python),
            ("python3.11", Interpreter::Python),
            ("pypy3", Interpreter::Python),
            ("bash", Interpreter::Shell),
            ("perl5.36.0", Interpreter::Perl),
            ("node", Interpreter::Node),
            ("php8.2", Interpreter::Php),
        ] {
            assert_eq!(Interpreter::from_program(n), Some(i), "{n}");
        }
        for n in ["pythonista", "python3-config", "shx", "gcc", ""] {
            assert_eq!(Interpreter::from_program(n), None, "{n}");
        }
    }

    #[test]
    fn python_command_lines() {
        let py = "/usr/bin/python3.11";
        assert_eq!(
            target("/usr/bin/python3", py, &["python3", "x.py", "a"]),
            f("x.py")
        );
        assert_eq!(
            target(
                "/usr/bin/python3",
                py,
                &["python3", "-u", "-W", "ignore", "x.py"]
            ),
            f("x.py")
        );
        assert_eq!(
            target(
                "/usr/bin/python3",
                py,
                &["python3", "-Wignore", "-X", "dev", "/t/y.py"]
            ),
            f("/t/y.py")
        );
        assert_eq!(
            target(
                "/usr/bin/python3",
                py,
                &["python3", "-c", "print(1)", "arg"]
            ),
            inline("print(1)")
        );
        assert_eq!(
            target("/usr/bin/python3", py, &["python3", "-uc", "import os"]),
            inline("import os")
        );
        assert_eq!(
            target("/usr/bin/python3", py, &["python3", "-cimport os"]),
            inline("import os")
        );
        assert_eq!(
            target("/usr/bin/python3", py, &["python3", "-m", "http.server"]),
            None
        );
        assert_eq!(target("/usr/bin/python3", py, &["python3"]), None);
        assert_eq!(target("/usr/bin/python3", py, &["python3", "-"]), None);
        assert_eq!(target("/usr/bin/python3", py, &["python3", "-c"]), None);
    }

    #[test]
    fn shebang_scripts() {
        // execve("/tmp/run.py") with "#!/usr/bin/python3 -u": argv = [interp, arg, script, args]
        let t = target(
            "/tmp/run.py",
            "/usr/bin/python3.11",
            &["/usr/bin/python3", "-u", "/tmp/run.py", "x"],
        );
        assert_eq!(
            t,
            Some(ScriptTarget::File {
                kind: ScriptKind::Shebang,
                path: "/tmp/run.py".into()
            })
        );
        let t = target("./s", "/usr/bin/dash", &["/bin/sh", "./s"]);
        assert_eq!(
            t,
            Some(ScriptTarget::File {
                kind: ScriptKind::Shebang,
                path: "./s".into()
            })
        );
        // `python3 python3`-like degenerate cases are not shebangs.
        assert!(!is_shebang_exec(
            "/usr/bin/python3",
            &v(&["python3", "/usr/bin/python3"])
        ));
        assert_eq!(
            program_name(
                "/tmp/run.py",
                "/usr/bin/python3.11",
                &v(&["/usr/bin/python3", "/tmp/run.py"])
            ),
            "python3"
        );
    }

    #[test]
    fn shells_perl_and_busybox() {
        assert_eq!(
            target("/bin/sh", "/bin/dash", &["sh", "-c", "id; ls", "name"]),
            inline("id; ls")
        );
        assert_eq!(
            target("/bin/bash", "/bin/bash", &["bash", "-xc", "id"]),
            inline("id")
        );
        assert_eq!(
            target(
                "/bin/bash",
                "/bin/bash",
                &["bash", "-o", "pipefail", "run.sh"]
            ),
            f("run.sh")
        );
        assert_eq!(target("/bin/bash", "/bin/bash", &["bash", "-i"]), None);
        assert_eq!(target("/bin/bash", "/bin/bash", &["bash", "-s", "x"]), None);
        assert_eq!(
            target(
                "/usr/bin/perl",
                "/usr/bin/perl",
                &["perl", "-e", "print 1", "-e", "print 2"]
            ),
            inline("print 1\nprint 2")
        );
        assert_eq!(
            target("/usr/bin/perl", "/usr/bin/perl", &["perl", "-w", "x.pl"]),
            f("x.pl")
        );
        assert_eq!(
            target(
                "/bin/busybox",
                "/bin/busybox",
                &["busybox", "sh", "-c", "id"]
            ),
            inline("id")
        );
        assert_eq!(
            program_name("/bin/nc", "/bin/busybox", &v(&["nc", "-e", "/bin/sh"])),
            "nc"
        );
        assert_eq!(
            program_name("/bin/busybox", "/bin/busybox", &v(&["busybox", "nc"])),
            "nc"
        );
        assert_eq!(
            target("/usr/bin/gcc", "/usr/bin/gcc-12", &["gcc", "x.c"]),
            None
        );
    }
}
