//! What happens to followed files, as a small vocabulary of typed events
//! (like Filebeat's file-event operations): one per stream transition, and
//! one per decision about a generation. Logs say the same in words; tests
//! and tools wait on these instead of on log text.

use crate::identity::GenerationId;

/// One thing that happened to a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailEvent {
    /// A file was opened as `generation`, to be read from `offset`;
    /// `known`: a generation from the checkpoint or the ledger (resumed, a
    /// copy, a compressed rest), else a new one.
    Opened {
        generation: GenerationId,
        path: String,
        offset: u64,
        known: bool,
    },
    /// Closed under the open-file budget at `at`.
    Parked { generation: GenerationId, at: u64 },
    /// Reopened after being parked.
    Reopened { generation: GenerationId },
    /// Read to its end after it left its name, and closed.
    Drained { generation: GenerationId, at: u64 },
    /// A read failed; closed, to be found again by a scan.
    Failed { generation: GenerationId },
    /// Found cut at `at`: `old` continues in a copy if there is one, and
    /// the file is read as `new` from 0.
    Cut {
        old: GenerationId,
        new: GenerationId,
        at: u64,
    },
    /// Let go of: every line acknowledged (resting or unfinished in the
    /// ledger from now on).
    Retired { generation: GenerationId },
    /// Declared lost: never found again with bytes (or, `bytes` None, an
    /// unknown amount) past `offset` never shipped.
    Lost {
        generation: GenerationId,
        offset: u64,
        bytes: Option<u64>,
    },
}

/// Where events go: nowhere unless asked for ([`EventLog::record`]), so a
/// caller that never reads them pays nothing and keeps no memory.
#[derive(Debug, Default)]
pub struct EventLog {
    events: Option<Vec<TailEvent>>,
}

/// At most this many events wait to be taken; older ones are dropped.
const MAX_WAITING: usize = 65_536;

impl EventLog {
    /// Keep events from now on, until taken.
    pub fn record(&mut self) {
        self.events.get_or_insert_with(Vec::new);
    }

    pub fn push(&mut self, event: TailEvent) {
        if let Some(events) = self.events.as_mut() {
            if events.len() >= MAX_WAITING {
                events.remove(0);
            }
            events.push(event);
        }
    }

    /// The events since the last call.
    pub fn take(&mut self) -> Vec<TailEvent> {
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }
}
