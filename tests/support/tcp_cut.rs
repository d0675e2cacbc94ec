//! A TCP forwarder that can cut every connection through it at once: put between the
//! hub and PostgreSQL, it drops the database's connections under the hub's feet.

#![allow(dead_code)]

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

pub struct TcpCut {
    pub addr: String,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpCut {
    pub fn start(upstream: &str) -> TcpCut {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up, held) = (upstream.to_string(), live.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(down) = conn else { continue };
                let Ok(upstream) = TcpStream::connect(&up) else {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = down.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                {
                    let mut l = held.lock().unwrap();
                    l.push(down.try_clone().unwrap());
                    l.push(upstream.try_clone().unwrap());
                }
                pump(down.try_clone().unwrap(), upstream.try_clone().unwrap());
                pump(upstream, down);
            }
        });
        TcpCut { addr, live }
    }

    /// Closes every connection open through it now (new ones go through again).
    pub fn cut(&self) -> usize {
        let mut l = self.live.lock().unwrap();
        for s in l.iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let n = l.len() / 2;
        l.clear();
        n
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
