//! What the cashier sees and hears after a card read: a log line in development, or a
//! green LED and a short beep for a member, a red LED and a long beep otherwise.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rppal::gpio::{Gpio, OutputPin};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Member,
    Unknown,
    Blocked,
}

pub enum Feedback {
    Log,
    Gpio(Arc<GpioFeedback>),
}

pub struct GpioFeedback {
    green: Option<Mutex<OutputPin>>,
    red: Option<Mutex<OutputPin>>,
    buzzer: Option<Mutex<OutputPin>>,
}

impl Feedback {
    pub fn from_config(c: &crate::config::Feedback) -> Result<Feedback, String> {
        match c.kind.as_str() {
            "log" => Ok(Feedback::Log),
            "gpio" => {
                let gpio = Gpio::new().map_err(|e| {
                    format!("GPIO feedback needs GPIO, which this machine does not offer ({e}); use kind = \"log\"")
                })?;
                let pin = |n: Option<u8>| -> Result<Option<Mutex<OutputPin>>, String> {
                    n.map(|n| {
                        gpio.get(n)
                            .map(|p| Mutex::new(p.into_output_low()))
                            .map_err(|e| format!("feedback pin {n}: {e}"))
                    })
                    .transpose()
                };
                Ok(Feedback::Gpio(Arc::new(GpioFeedback {
                    green: pin(c.green_led)?,
                    red: pin(c.red_led)?,
                    buzzer: pin(c.buzzer)?,
                })))
            }
            other => Err(format!("feedback.kind {other:?}: want \"log\" or \"gpio\"")),
        }
    }

    /// Signals a card read without blocking the caller.
    pub fn signal(&self, card: &str, s: Signal) {
        match self {
            Feedback::Log => tracing::info!("card {card}: {s:?}"),
            Feedback::Gpio(g) => {
                let g = g.clone();
                tokio::spawn(async move { g.pulse(s).await });
            }
        }
    }
}

impl GpioFeedback {
    async fn pulse(&self, s: Signal) {
        let (led, beep) = match s {
            Signal::Member => (&self.green, Duration::from_millis(80)),
            Signal::Unknown | Signal::Blocked => (&self.red, Duration::from_millis(400)),
        };
        let set = |p: &Option<Mutex<OutputPin>>, on: bool| {
            if let Some(p) = p {
                if let Ok(mut p) = p.lock() {
                    if on {
                        p.set_high()
                    } else {
                        p.set_low()
                    }
                }
            }
        };
        set(led, true);
        set(&self.buzzer, true);
        tokio::time::sleep(beep).await;
        set(&self.buzzer, false);
        tokio::time::sleep(Duration::from_millis(600).saturating_sub(beep)).await;
        set(led, false);
    }
}
