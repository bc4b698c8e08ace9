//! The audit relay (`vigil-audit`): every row of the console's audit log — written by the console's
//! requests or by `vigil users` in another process — goes out as a `console_audit` event
//! (docs/mqtt-api.md), through the outbox like every other event.
//!
//! The audit table is the source; the relay reads it once a second after its cursor. The cursor is kept in
//! the same file (`relay`, `sent`) and moved only once the outbox has taken the row, so a crash in
//! between sends the row again rather than never: its event id is derived from the row (see
//! `publish::events::audit_record`), the same both times, and the platform deduplicates. At start, a row
//! whose event still waits in the outbox is not appended twice.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{error, warn};

use super::Shutdown;
use super::sink::Emitter;
use crate::console::{AuditEntry, Store};
use crate::outbox::Outbox;
use crate::publish::events::{ConsoleAuditDetails, audit_record};

/// How often the table is read for new rows.
const POLL: Duration = Duration::from_secs(1);

/// Rows read at a time.
const BATCH: u32 = 200;

/// Starts the relay; it makes a last pass after the shutdown's first phase (rows written while the server
/// stopped), while the decision task and the outbox still take events.
pub fn start(
    store: Arc<Store>,
    emitter: Emitter,
    outbox: Arc<Mutex<Outbox>>,
    shutdown: &Shutdown,
) -> anyhow::Result<JoinHandle<()>> {
    let stop = shutdown.clone();
    Ok(std::thread::Builder::new().name("vigil-audit".into()).spawn(move || {
        let mut relay = Relay { store, emitter, outbox, position: None, failing: false };
        loop {
            let last = stop.is_set();
            relay.pass();
            if last {
                break;
            }
            let slept = std::time::Instant::now();
            while slept.elapsed() < POLL && !stop.is_set() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })?)
}

struct Relay {
    store: Arc<Store>,
    emitter: Emitter,
    outbox: Arc<Mutex<Outbox>>,
    /// The store's instance id and the last row handed to the emitter; read from the store at the
    /// first pass that can.
    position: Option<(uuid::Uuid, i64)>,
    /// The store cannot be read now: said once at ERROR, then once more when it can again.
    failing: bool,
}

impl Relay {
    /// Sends every row after the last one sent.
    fn pass(&mut self) {
        let starting = self.position.is_none();
        let (instance, mut after) = match self.position {
            Some(position) => position,
            None => match self.cursor() {
                Some(position) => position,
                None => return,
            },
        };
        loop {
            let rows = match self.store.audit_after(after, BATCH) {
                Ok(rows) => rows,
                Err(e) => {
                    self.failed(&e.to_string());
                    break;
                }
            };
            self.recovered();
            let full = rows.len() == BATCH as usize;
            for row in rows {
                let id = row.id;
                let record = audit_record(
                    &self.emitter.base,
                    &self.emitter.site,
                    &self.emitter.device,
                    &instance,
                    details(&row),
                    row.at,
                );
                // After a restart, a row whose event still waits in the outbox is already on its way.
                let waiting = starting
                    && self
                        .outbox
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains(&record.event_id)
                        .unwrap_or(false);
                if !waiting {
                    let store = self.store.clone();
                    self.emitter.emit(record, move || {
                        if let Err(e) = store.set_relay_cursor(id) {
                            warn!(audit_id = id, error = %e, "cannot record that an audit row was sent; it may be sent again (same event id)");
                        }
                    });
                }
                after = id;
            }
            if !full {
                break;
            }
        }
        self.position = Some((instance, after));
    }

    fn cursor(&mut self) -> Option<(uuid::Uuid, i64)> {
        let found = self.store.relay_cursor().map_err(|e| e.to_string()).and_then(|(instance, sent)| {
            let instance = uuid::Uuid::parse_str(&instance)
                .map_err(|e| format!("its relay instance id {instance:?} is not a UUID: {e}"))?;
            Ok((instance, sent))
        });
        match found {
            Ok(position) => Some(position),
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    fn failed(&mut self, error: &str) {
        if !self.failing {
            self.failing = true;
            error!(path = %self.store.path().display(), error,
                "cannot read the console's audit log: its rows are sent as console_audit events once it can be \
                 read (retried every second; nothing is lost, the rows stay in the file)");
        }
    }

    fn recovered(&mut self) {
        if self.failing {
            self.failing = false;
            warn!(path = %self.store.path().display(), "the console's audit log can be read again; sending its rows");
        }
    }
}

fn details(row: &AuditEntry) -> ConsoleAuditDetails {
    ConsoleAuditDetails {
        audit_id: row.id,
        who: row.who.clone(),
        role: row.role.clone(),
        action: row.action.clone(),
        address: row.address.clone(),
        outcome: row.outcome.clone(),
        details: row.details.clone(),
    }
}
