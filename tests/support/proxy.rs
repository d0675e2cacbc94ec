//! A fault-injecting HTTP proxy for the sync tests: it sits between a terminal and the
//! hub on loopback and does to each request what the test asks: pass it, drop it, delay
//! it, cut it mid-body (either way), send it to the hub twice, or refuse connections
//! altogether as a dead link does.
//!
//! It understands just enough HTTP/1.1 to find where a request and a response end
//! (Content-Length), so it can act per request on a kept-alive connection.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request and the answer.
    Pass,
    /// Read the request, then close without forwarding it.
    Drop,
    /// Wait, then forward.
    Delay(Duration),
    /// Forward the head and half the body, then close both sides.
    CutRequest,
    /// Forward the request; give the terminal half of the hub's answer, then close.
    CutResponse,
    /// Send the request to the hub twice; answer with the second answer.
    Duplicate,
}

struct State {
    upstream: String,
    queue: VecDeque<Fault>,
    default: Fault,
    /// Faults applied so far, with the request path.
    applied: Vec<(String, Fault)>,
}

pub struct Proxy {
    pub addr: String,
    state: Arc<Mutex<State>>,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on an ephemeral loopback port, forwarding to `upstream` (host:port).
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let p = Proxy {
            addr: addr.clone(),
            state: Arc::new(Mutex::new(State {
                upstream: upstream.to_string(),
                queue: VecDeque::new(),
                default: Fault::Pass,
                applied: Vec::new(),
            })),
            down: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (state, down, stop) = (p.state.clone(), p.down.clone(), p.stop.clone());
        thread::spawn(move || accept_loop(listener, addr, state, down, stop));
        p
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What happens to requests when no queued fault is left.
    pub fn set_default(&self, f: Fault) {
        self.state.lock().unwrap().default = f;
    }

    /// Faults for the next requests, in order.
    pub fn queue(&self, faults: &[Fault]) {
        self.state.lock().unwrap().queue.extend(faults.iter().copied());
    }

    pub fn queued(&self) -> usize {
        self.state.lock().unwrap().queue.len()
    }

    /// The hub moved (restarted on another port).
    pub fn set_upstream(&self, upstream: &str) {
        self.state.lock().unwrap().upstream = upstream.to_string();
    }

    /// A dead link: new connections are refused until `down(false)`.
    pub fn down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn applied(&self) -> Vec<(String, Fault)> {
        self.state.lock().unwrap().applied.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Accepts until stopped; while `down`, closes the listening socket so that connects
/// are refused, and binds the same address again when the link comes back.
fn accept_loop(
    listener: TcpListener,
    addr: String,
    state: Arc<Mutex<State>>,
    down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    listener.set_nonblocking(true).unwrap();
    let mut listener = Some(listener);
    while !stop.load(Ordering::SeqCst) {
        if down.load(Ordering::SeqCst) {
            listener = None;
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        if listener.is_none() {
            match TcpListener::bind(&addr) {
                Ok(l) => {
                    l.set_nonblocking(true).unwrap();
                    listener = Some(l);
                }
                Err(_) => {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
            }
        }
        match listener.as_ref().unwrap().accept() {
            Ok((conn, _)) => {
                let (state, down) = (state.clone(), down.clone());
                thread::spawn(move || {
                    let _ = serve(conn, state, down);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(2)),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Reads one HTTP message (head and Content-Length body); `None` at a clean EOF.
fn read_message(conn: &mut TcpStream) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(
        !text.contains("transfer-encoding: chunked"),
        "the proxy handles Content-Length bodies only"
    );
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)?;
    Ok(Some((head, body)))
}

/// Sends one request upstream on a fresh connection; returns the whole answer.
fn forward(upstream: &str, head: &[u8], body: &[u8]) -> io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(head)?;
    up.write_all(body)?;
    let (h, b) = read_message(&mut up)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    Ok([h, b].concat())
}

fn serve(mut conn: TcpStream, state: Arc<Mutex<State>>, down: Arc<AtomicBool>) -> io::Result<()> {
    while let Some((head, body)) = read_message(&mut conn)? {
        if down.load(Ordering::SeqCst) {
            return Ok(());
        }
        let path = String::from_utf8_lossy(&head)
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let (fault, upstream) = {
            let mut s = state.lock().unwrap();
            let f = s.queue.pop_front().unwrap_or(s.default);
            s.applied.push((path, f));
            (f, s.upstream.clone())
        };
        match fault {
            Fault::Pass => conn.write_all(&forward(&upstream, &head, &body)?)?,
            Fault::Drop => return Ok(()),
            Fault::Delay(d) => {
                thread::sleep(d);
                conn.write_all(&forward(&upstream, &head, &body)?)?;
            }
            Fault::CutRequest => {
                let mut up = TcpStream::connect(&upstream)?;
                up.write_all(&head)?;
                up.write_all(&body[..body.len() / 2])?;
                return Ok(());
            }
            Fault::CutResponse => {
                let answer = forward(&upstream, &head, &body)?;
                conn.write_all(&answer[..answer.len() / 2])?;
                return Ok(());
            }
            Fault::Duplicate => {
                forward(&upstream, &head, &body)?;
                conn.write_all(&forward(&upstream, &head, &body)?)?;
            }
        }
    }
    Ok(())
}
