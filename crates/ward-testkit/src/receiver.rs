//! A local HTTP/1.1 receiver on 127.0.0.1 for output tests: it records each request and
//! answers with the status a test-supplied judge picks (200 for a well-formed delivery, 400
//! for a contract breach, 500 to simulate a failing receiver). It can be stopped (connections
//! closed, port refused) and started again on the same port: a receiver outage.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status answered.
    pub status: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let n = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

pub type Judge = Arc<dyn Fn(&Request) -> u16 + Send + Sync>;

pub struct HttpReceiver {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Request>>>,
    accept: Option<JoinHandle<()>>,
}

impl HttpReceiver {
    /// Listens on 127.0.0.1:`port` (0: any free port).
    pub fn start(port: u16, judge: Judge) -> std::io::Result<HttpReceiver> {
        Self::start_with_log(port, judge, Arc::new(Mutex::new(Vec::new())))
    }

    /// Starts again where `log` keeps what earlier incarnations received.
    pub fn start_with_log(
        port: u16,
        judge: Judge,
        log: Arc<Mutex<Vec<Request>>>,
    ) -> std::io::Result<HttpReceiver> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (st, lg) = (stop.clone(), log.clone());
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, lg, judge) = (st.clone(), lg.clone(), judge.clone());
                std::thread::spawn(move || serve(conn, st, lg, judge));
            }
        });
        Ok(HttpReceiver {
            addr,
            stop,
            log,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything received so far (every incarnation sharing the log).
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn log(&self) -> Arc<Mutex<Vec<Request>>> {
        self.log.clone()
    }

    /// Stops listening and closes open connections: the port refuses until started again.
    pub fn stop(mut self) -> Arc<Mutex<Vec<Request>>> {
        self.halt();
        self.log.clone()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        // Connection threads poll the flag every 50 ms.
        std::thread::sleep(Duration::from_millis(120));
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.halt();
        }
    }
}

fn serve(conn: TcpStream, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Request>>>, judge: Judge) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(50)));
    let mut w = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    loop {
        // Request line, waiting while idle (keep-alive) until stopped.
        let mut line = String::new();
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match r.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => break,
                Err(e) if idle(&e) => continue,
                Err(_) => return,
            }
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            match r.read_line(&mut h) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if idle(&e) => {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match r.read(&mut body[got..]) {
                Ok(0) => return,
                Ok(n) => got += n,
                Err(e) if idle(&e) => {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let mut req = Request {
            method,
            path,
            headers,
            body,
            status: 0,
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        req.status = judge(&req);
        if let Ok(mut l) = log.lock() {
            l.push(req.clone());
        }
        let answer = format!(
            "HTTP/1.1 {} X\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok",
            req.status
        );
        if w.write_all(answer.as_bytes())
            .and_then(|_| w.flush())
            .is_err()
        {
            return;
        }
    }
}

/// The read timeout passed (the connection is idle), not an error.
fn idle(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
