//! Which clock to believe, and business "now": a Pi has no real-time clock and boots
//! offline with a stale time, so trust comes from NTP or from the hub's clock, and
//! nothing expires while the clock is not trusted.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::config::ClockPolicy;

use super::{At, Engine};
use crate::model::{self, Ts};

/// How long a clock offset measured against the hub is believed.
const HUB_CLOCK_VALID: Duration = Duration::from_secs(6 * 3600);

/// The last measurement of this clock against the hub's.
#[derive(Debug, Default)]
pub(super) struct HubClock {
    offset_us: i64,
    measured_at: Option<Instant>,
}

pub(super) type SharedClock = Mutex<HubClock>;

impl Engine {
    pub fn clock_trusted(&self) -> bool {
        match self.cfg.clock {
            ClockPolicy::Trusted => true,
            ClockPolicy::Untrusted => false,
            ClockPolicy::Auto => crate::os::kernel_clock_synced() || self.hub_offset().is_some(),
            ClockPolicy::Hub => self.hub_offset().is_some(),
        }
    }

    /// The hub's estimate of how far this clock is off, if it is recent.
    fn hub_offset(&self) -> Option<i64> {
        let c = self.clock.lock().ok()?;
        c.measured_at
            .filter(|t| t.elapsed() < HUB_CLOCK_VALID)
            .map(|_| c.offset_us)
    }

    /// Records the offset between the hub's clock and this one (hub minus local, µs),
    /// measured over one exchange. Until it goes stale it makes the clock trusted and
    /// corrects business instants when the kernel clock is not synchronised.
    pub fn note_hub_clock(&self, offset_us: i64) {
        if let Ok(mut c) = self.clock.lock() {
            *c = HubClock {
                offset_us,
                measured_at: Some(Instant::now()),
            };
        }
    }

    /// Business "now": the system clock, corrected by the hub's estimate when the policy
    /// says so or the kernel clock is not synchronised (a Pi without RTC booting offline).
    pub fn now(&self) -> Ts {
        let now = model::now();
        let correct = match self.cfg.clock {
            ClockPolicy::Hub => true,
            ClockPolicy::Auto => !crate::os::kernel_clock_synced(),
            ClockPolicy::Trusted | ClockPolicy::Untrusted => false,
        };
        match self.hub_offset() {
            Some(off) if correct => now + off,
            _ => now,
        }
    }

    /// The instant of a request made now (or at `explicit`), by the daemon itself until
    /// the caller names who asks (`At::by`).
    pub fn at(&self, explicit: Option<Ts>) -> At {
        match explicit {
            Some(ts) => At {
                ts,
                trusted: true,
                actor: super::Actor::system(),
            },
            None => At {
                ts: self.now(),
                trusted: self.clock_trusted(),
                actor: super::Actor::system(),
            },
        }
    }
}
