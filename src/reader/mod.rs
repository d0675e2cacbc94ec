//! Card readers: one interface, four drivers, and the pure frame decoders they feed.
//!
//! Each driver runs on its own thread (their I/O is blocking: a tty, an evdev node, GPIO
//! edges), decodes with the pure decoders in [`decode`], and sends each card read down a
//! channel together with the instant its last byte or bit arrived.
//!
//! Architecture invariant: the hardware crates (rppal, evdev) are used only here and in
//! `feedback`; decoders take bytes, key codes or bit timestamps and never touch hardware.

pub mod decode;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use decode::CardId;

/// Which reader the terminal uses, as written in config or `serve --reader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderSpec {
    /// Type a card number and Enter (development).
    Stdin,
    /// USB keyboard-wedge reader through evdev.
    Hid(PathBuf),
    /// 125 kHz RDM6300 on a UART (any tty path, a pty included).
    Rdm6300(PathBuf),
    /// Wiegand D0/D1 on two GPIO lines (BCM numbers).
    Wiegand(u8, u8),
    /// No reader: swipes come only through `POST /v1/swipe`.
    None,
}

impl FromStr for ReaderSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<ReaderSpec, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let need_path = |what: &str| -> Result<PathBuf, String> {
            if arg.is_empty() {
                Err(format!("reader {what:?} needs a device path, e.g. {what}:/dev/..."))
            } else {
                Ok(PathBuf::from(arg))
            }
        };
        match kind {
            "stdin" if arg.is_empty() => Ok(ReaderSpec::Stdin),
            "none" if arg.is_empty() => Ok(ReaderSpec::None),
            "hid" => Ok(ReaderSpec::Hid(need_path("hid")?)),
            "rdm6300" => Ok(ReaderSpec::Rdm6300(need_path("rdm6300")?)),
            "wiegand" => {
                let pins: Vec<Result<u8, _>> = arg.split(',').map(|p| p.trim().parse::<u8>()).collect();
                match pins[..] {
                    [Ok(d0), Ok(d1)] if d0 != d1 && d0 <= 53 && d1 <= 53 => Ok(ReaderSpec::Wiegand(d0, d1)),
                    _ => Err(format!(
                        "reader {s:?}: want wiegand:D0,D1 with two different BCM pin numbers"
                    )),
                }
            }
            _ => Err(format!(
                "unknown reader {s:?}: want stdin, none, hid:/dev/input/..., rdm6300:/dev/tty..., or wiegand:D0,D1"
            )),
        }
    }
}

/// One card read and when its last byte (or bit) arrived.
#[derive(Debug, Clone)]
pub struct CardRead {
    pub card: CardId,
    pub at: Instant,
}

/// Decoder options from the config.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    pub rdm6300: decode::rdm6300::Config,
    pub hid: decode::hid::Config,
    pub wiegand: decode::wiegand::Config,
}

impl ReaderOptions {
    pub fn from_config(c: &crate::config::Reader) -> Result<ReaderOptions, String> {
        let form = match c.rdm6300_form.as_str() {
            "hex" => decode::rdm6300::OutputForm::Hex,
            "em4100-decimal" => decode::rdm6300::OutputForm::Em4100Decimal,
            other => {
                return Err(format!(
                    "reader.rdm6300_form {other:?}: want \"hex\" or \"em4100-decimal\""
                ))
            }
        };
        let output = match c.hid_output.as_str() {
            "as-typed" => decode::hid::HidOutput::AsTyped,
            "decimal-to-hex" => decode::hid::HidOutput::DecimalToHex,
            other => {
                return Err(format!(
                    "reader.hid_output {other:?}: want \"as-typed\" or \"decimal-to-hex\""
                ))
            }
        };
        Ok(ReaderOptions {
            rdm6300: decode::rdm6300::Config {
                form,
                ..Default::default()
            },
            hid: decode::hid::Config {
                output,
                ..Default::default()
            },
            wiegand: Default::default(),
        })
    }
}

/// Monotonic microseconds for the decoders' timing rules.
fn micros(origin: Instant) -> u64 {
    origin.elapsed().as_micros() as u64
}

/// Starts the reader's thread. Errors that make the reader impossible (no GPIO on this
/// machine, no such device) are returned here so that start-up can say so plainly;
/// a device that disappears later (USB unplugged) is reopened by the thread itself.
pub fn start(spec: &ReaderSpec, opts: &ReaderOptions, tx: mpsc::Sender<CardRead>) -> Result<(), String> {
    match spec.clone() {
        ReaderSpec::None => Ok(()),
        ReaderSpec::Stdin => spawn("reader-stdin", move || stdin_loop(tx)),
        ReaderSpec::Hid(path) => {
            // Open once now so that a wrong path fails start-up instead of retrying forever.
            evdev::Device::open(&path).map_err(|e| format!("hid reader {}: {e}", path.display()))?;
            let cfg = opts.hid;
            spawn("reader-hid", move || hid_loop(path, cfg, tx))
        }
        ReaderSpec::Rdm6300(path) => {
            let uart = open_uart(&path)?;
            let cfg = opts.rdm6300;
            spawn("reader-rdm6300", move || rdm6300_loop(uart, path, cfg, tx))
        }
        ReaderSpec::Wiegand(d0, d1) => wiegand_start(d0, d1, opts.wiegand, tx),
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| format!("cannot start the reader thread: {e}"))
}

fn send(tx: &mpsc::Sender<CardRead>, card: CardId, at: Instant) -> bool {
    tx.blocking_send(CardRead { card, at }).is_ok()
}

fn stdin_loop(tx: mpsc::Sender<CardRead>) {
    let mut line = String::new();
    loop {
        line.clear();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) => {
                tracing::info!("stdin reader: end of input; card reads now come only from POST /v1/swipe");
                return;
            }
            Ok(_) => {
                let text = line.trim();
                if text.is_empty() {
                    continue;
                }
                let canonical = crate::model::canonical_card(text).map_err(|e| e.message);
                match canonical.and_then(|c| CardId::parse(&c).map_err(|e| e.to_string())) {
                    Ok(card) => {
                        if !send(&tx, card, Instant::now()) {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!("stdin reader: {e}"),
                }
            }
            Err(e) => {
                tracing::warn!("stdin reader stopped: {e}");
                return;
            }
        }
    }
}

fn hid_loop(path: PathBuf, cfg: decode::hid::Config, tx: mpsc::Sender<CardRead>) {
    let origin = Instant::now();
    let mut decoder = decode::hid::Hid::new(cfg);
    let mut announced = false;
    loop {
        let mut dev = match evdev::Device::open(&path) {
            Ok(d) => d,
            Err(e) => {
                if !announced {
                    tracing::warn!("hid reader {}: {e}; retrying every second", path.display());
                    announced = true;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        announced = false;
        // Grab the device so the card number does not also land in a login prompt.
        if let Err(e) = dev.grab() {
            tracing::warn!("hid reader {}: cannot grab the device: {e}", path.display());
        }
        tracing::info!("hid reader: reading {}", path.display());
        decoder.reset();
        'read: loop {
            let events = match dev.fetch_events() {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!("hid reader {}: {e} (unplugged?); reopening", path.display());
                    break 'read;
                }
            };
            for ev in events {
                if ev.event_type() == evdev::EventType::KEY {
                    if let Some(card) = decoder.key(ev.code(), ev.value(), micros(origin)) {
                        if !send(&tx, card, Instant::now()) {
                            return;
                        }
                    }
                }
            }
        }
    }
}

fn open_uart(path: &std::path::Path) -> Result<rppal::uart::Uart, String> {
    let mut uart = rppal::uart::Uart::with_path(path, 9600, rppal::uart::Parity::None, 8, 1)
        .map_err(|e| format!("rdm6300 reader {}: {e}", path.display()))?;
    // Block until at least one byte is in and return it at once, so a frame is decoded
    // as soon as its last byte arrives. (A timeout is neither needed, the decoder keeps
    // partial frames across reads, nor possible below 100 ms: termios counts tenths, and
    // VMIN = 0 with VTIME = 0 would make every read return at once and the thread spin.)
    uart.set_read_mode(1, Duration::ZERO)
        .map_err(|e| format!("rdm6300 reader {}: {e}", path.display()))?;
    Ok(uart)
}

fn rdm6300_loop(mut uart: rppal::uart::Uart, path: PathBuf, cfg: decode::rdm6300::Config, tx: mpsc::Sender<CardRead>) {
    let origin = Instant::now();
    let mut decoder = decode::rdm6300::Rdm6300::new(cfg);
    let mut buf = [0u8; 64];
    loop {
        let read = match uart.read(&mut buf) {
            // With VMIN = 1 a read of nothing means the line hung up (a USB adapter
            // unplugged, a pty's other end closed): treat it like an error.
            Ok(0) => Err(rppal::uart::Error::Io(std::io::ErrorKind::UnexpectedEof.into())),
            other => other,
        };
        match read {
            Ok(n) => {
                let now = Instant::now();
                let cards: Vec<CardId> = decoder.feed(&buf[..n], micros(origin)).collect();
                for card in cards {
                    if !send(&tx, card, now) {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!("rdm6300 reader {}: {e}; reopening", path.display());
                std::thread::sleep(Duration::from_secs(1));
                match open_uart(&path) {
                    Ok(u) => {
                        uart = u;
                        decoder.reset();
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        }
    }
}

/// Wiegand: each falling edge on D0 is a 0 bit, on D1 a 1 bit. The interrupt callbacks
/// forward (bit, timestamp) to a decoder thread, which also ends frames on silence.
fn wiegand_start(d0: u8, d1: u8, cfg: decode::wiegand::Config, tx: mpsc::Sender<CardRead>) -> Result<(), String> {
    use rppal::gpio::{Gpio, Trigger};
    let gpio = Gpio::new().map_err(|e| {
        format!("the wiegand reader needs GPIO, which this machine does not offer ({e}); choose another reader")
    })?;
    let (bits_tx, bits_rx) = std::sync::mpsc::channel::<(bool, u64)>();
    let mut pins = Vec::new();
    for (pin, bit) in [(d0, false), (d1, true)] {
        let mut input = gpio
            .get(pin)
            .map_err(|e| format!("wiegand pin {pin}: {e}"))?
            .into_input_pullup();
        let bits_tx = bits_tx.clone();
        input
            .set_async_interrupt(Trigger::FallingEdge, None, move |ev| {
                let _ = bits_tx.send((bit, ev.timestamp.as_micros() as u64));
            })
            .map_err(|e| format!("wiegand pin {pin}: {e}"))?;
        pins.push(input);
    }
    spawn("reader-wiegand", move || {
        let _pins = pins; // keep the interrupts alive as long as the thread runs
        let mut decoder = decode::wiegand::Wiegand::new(cfg);
        let boot = || {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
            ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
        };
        loop {
            let wait = decoder.deadline().map_or(Duration::from_secs(3600), |d| {
                Duration::from_micros(d.saturating_sub(boot()))
            });
            let result = match bits_rx.recv_timeout(wait) {
                Ok((bit, t)) => decoder.push(bit, t),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => decoder.poll(boot()),
                Err(_) => return,
            };
            match result {
                Some(Ok(w)) if !send(&tx, w.card.clone(), Instant::now()) => return,
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!("wiegand reader: frame rejected: {e}"),
                None => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!("stdin".parse::<ReaderSpec>().unwrap(), ReaderSpec::Stdin);
        assert_eq!(
            "rdm6300:/dev/pts/3".parse::<ReaderSpec>().unwrap(),
            ReaderSpec::Rdm6300("/dev/pts/3".into())
        );
        assert_eq!(
            "wiegand:17,27".parse::<ReaderSpec>().unwrap(),
            ReaderSpec::Wiegand(17, 27)
        );
        for bad in [
            "wiegand:17",
            "wiegand:17,17",
            "hid",
            "serial:/dev/x",
            "stdin:x",
            "wiegand:a,b",
        ] {
            assert!(bad.parse::<ReaderSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn wiegand_without_gpio_is_a_plain_error() {
        // On a development machine there is no GPIO chip: an error that says so, no panic.
        if std::path::Path::new("/dev/gpiochip0").exists() {
            return;
        }
        let (tx, _rx) = mpsc::channel(1);
        let err = start(
            &ReaderSpec::Wiegand(17, 27),
            &ReaderOptions::from_config(&Default::default()).unwrap(),
            tx,
        )
        .unwrap_err();
        assert!(err.contains("needs GPIO"), "{err}");
    }
}
