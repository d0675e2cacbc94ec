//! Hub: when each terminal stream last reached the hub, and the feed cursor its last
//! pull answered (the terminals view's `last_contact` and `records_behind`). No journal
//! record says this (a record per pull would grow the journal by one per terminal every
//! few seconds), so it is not state: it is kept beside it, in a sled tree of its own,
//! one small write per accepted push or pull, and a rebuilt state forgets it until the
//! terminal's next contact.

use serde::{Deserialize, Serialize};

use super::{dec, enc, terminal_key, Store};
use crate::error::Result;
use crate::model::Ts;

/// The name of the contacts' sled tree.
pub(super) const TREE: &[u8] = b"contact";

/// A terminal stream's last contact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The last push the hub accepted.
    pub pushed_at: Option<Ts>,
    /// The last pull the hub answered, and the cursor that answer gave.
    pub pulled_at: Option<Ts>,
    pub pull_cursor: Option<u64>,
}

impl Contact {
    /// The later of the last push and the last pull.
    pub fn last(&self) -> Option<Ts> {
        self.pushed_at.max(self.pulled_at)
    }

    pub fn pushed(mut self, at: Ts) -> Contact {
        self.pushed_at = self.pushed_at.max(Some(at));
        self
    }

    /// A pull at `at` whose answer gave `cursor` (an older pull noted late changes nothing).
    pub fn pulled(mut self, at: Ts, cursor: u64) -> Contact {
        if self.pulled_at.is_none_or(|p| at >= p) {
            self.pulled_at = Some(at);
            self.pull_cursor = Some(cursor);
        }
        self
    }
}

impl Store {
    /// Notes a contact of stream (`terminal`, `epoch`): `f` of what was noted before.
    pub fn note_contact(&self, terminal: &str, epoch: u64, f: impl Fn(Contact) -> Contact) -> Result<()> {
        let key = terminal_key(terminal, epoch);
        // sled's compare-and-swap loop: two pulls of one stream at once both count.
        let r = self.shared.contact.update_and_fetch(key, |old| {
            let before = old.and_then(|v| dec::<Contact>("contact", v).ok()).unwrap_or_default();
            Some(enc(&f(before)))
        });
        self.checked(r.map(|_| ()).map_err(Into::into))
    }

    /// Every stream's last contact, by (terminal, epoch).
    pub fn contacts(&self) -> Result<Vec<((String, u64), Contact)>> {
        let mut out = Vec::new();
        for kv in self.shared.contact.iter() {
            let (k, v) = self.checked(kv.map_err(Into::into))?;
            let Some(at) = k.iter().position(|&b| b == 0) else {
                continue;
            };
            let (Some(terminal), Ok(epoch)) = (k.get(1..at), <[u8; 8]>::try_from(&k[at + 1..])) else {
                continue;
            };
            out.push((
                (
                    String::from_utf8_lossy(terminal).into_owned(),
                    u64::from_be_bytes(epoch),
                ),
                dec("contact", &v)?,
            ));
        }
        Ok(out)
    }
}
