//! The write-ahead journal of a durable bus: every accepted event, every
//! end of its work, every retry scheduled and every dead letter, in
//! CRC-framed records (`format.rs`) appended to preallocated segment files
//! (`segments.rs`) by one writer thread. `index.rs` knows which records are
//! still needed, so whole segments are deleted once nothing in them is, and
//! the few long-lived records pinning an old segment (a delayed retry, a
//! dead letter) are copied forward. `replay.rs` rebuilds everything at open.
//!
//! Durability levels: `Process` writes a batch of accepted events
//! (`write(2)`) before `accept` returns, which survives the death of the
//! process; `Fsync` also syncs it (`fdatasync`, group commit: one sync for
//! all that was queued meanwhile) before reporting it durable, which
//! survives the machine's. Records about the events' work are written as
//! they come, without waiting: losing one costs a repeated delivery
//! (at-least-once), never an event.

mod extract;
mod format;
mod index;
mod intake;
mod replay;
mod segments;
#[cfg(test)]
mod tests;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::core::error::BusError;
use crate::core::observe::histogram::{Histogram, Summary};
use crate::core::observe::log::Logs;
use format::Entry;
pub use format::{ENCODING_CLONE, ENCODING_JSON};
use index::Index;
pub use intake::PACKED_HEADER;
use intake::{set_slot, slot_id, unpack, Early, SlotIds};
pub use replay::{Corruption, PendingEvent, Recovered, RecoveredLetter};
use segments::{DirLock, Segments};

#[derive(Debug, Clone)]
pub struct JournalOptions {
    pub dir: PathBuf,
    pub max_disk_bytes: u64,
    pub segment_bytes: u64,
    /// `fdatasync` before an accepted batch counts as durable.
    pub fsync: bool,
    /// The bus's logs, for recovery, compaction and failures.
    pub logs: Logs,
}

/// Told (from the writer thread) when accepted batches became durable or
/// the journal failed; the package wakes the JavaScript thread with it.
pub trait DurableNotifier: Send + Sync {
    fn changed(&self);
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalStats {
    pub disk_bytes: u64,
    pub max_disk_bytes: u64,
    pub segments: u64,
    pub records_written: u64,
    pub bytes_written: u64,
    pub syncs: Summary,
    pub copied_forward: u64,
    pub segments_deleted: u64,
    pub failure: Option<String>,
}

struct Queue {
    /// Framed records not yet written.
    frames: Vec<u8>,
    /// Batches of accepted events appended so far.
    seq: u64,
    /// The journal id of the event in each slot.
    slots: SlotIds,
    next_id: u64,
    writer_waiting: bool,
    /// Accepted events wait for the writer (`Fsync`): write at once.
    urgent: bool,
    /// Records about events whose acceptance has not reached the journal
    /// yet, by slot (see `Journal::about`).
    early: index::IdMap<u32, Vec<Early>>,
    stop: bool,
}

struct Files {
    segments: Segments,
    index: Index,
    /// Reused between flushes, so steady writing allocates nothing.
    spare: Vec<u8>,
}

struct Shared {
    logs: Logs,
    fsync: bool,
    max_disk: u64,
    /// Accepts leave this much disk for records about work and copying.
    reserve: u64,
    queue: Mutex<Queue>,
    wake: Condvar,
    files: Mutex<Files>,
    written_seq: AtomicU64,
    durable_seq: AtomicU64,
    /// Bytes accepts may still use, as of the last flush.
    room: AtomicU64,
    failure: RwLock<Option<String>>,
    notifier: RwLock<Option<Arc<dyn DurableNotifier>>>,
    records: AtomicU64,
    bytes: AtomicU64,
    copied: AtomicU64,
    deleted: AtomicU64,
    sync_us: Histogram,
    /// Dropped by `close`, so a new bus can open the directory at once.
    lock: Mutex<Option<DirLock>>,
}

pub struct Journal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Journal {
    /// Locks `dir` (creating it), replays what is there, and starts the
    /// writer. What must run again comes back with it.
    pub fn open(opts: JournalOptions) -> Result<(Journal, Recovered), BusError> {
        std::fs::create_dir_all(&opts.dir)
            .map_err(|e| BusError::Journal(format!("cannot create {}: {e}", opts.dir.display())))?;
        let lock = DirLock::acquire(&opts.dir)?;
        let replayed = replay::replay(&opts.dir).map_err(BusError::Journal)?;
        let segments = Segments::open(
            &opts.dir,
            opts.segment_bytes,
            opts.max_disk_bytes,
            &replayed.segments,
        )
        .map_err(|e| {
            BusError::Journal(format!(
                "cannot start a segment in {}: {e}",
                opts.dir.display()
            ))
        })?;
        let recovered = replayed.recovered;
        log_recovery(&opts, &recovered);
        let shared = Arc::new(Shared {
            logs: opts.logs.clone(),
            fsync: opts.fsync,
            max_disk: opts.max_disk_bytes,
            reserve: opts.segment_bytes,
            queue: Mutex::new(Queue {
                frames: Vec::new(),
                seq: 0,
                slots: SlotIds::default(),
                next_id: recovered.next_id,
                writer_waiting: false,
                urgent: false,
                early: Default::default(),
                stop: false,
            }),
            wake: Condvar::new(),
            files: Mutex::new(Files {
                segments,
                index: replayed.index,
                spare: Vec::new(),
            }),
            written_seq: AtomicU64::new(0),
            durable_seq: AtomicU64::new(0),
            room: AtomicU64::new(0),
            failure: RwLock::new(None),
            notifier: RwLock::new(None),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            copied: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            sync_us: Histogram::default(),
            lock: Mutex::new(Some(lock)),
        });
        {
            let mut files = shared.files.lock();
            shared.tidy(&mut files, true);
        }
        let worker = shared.clone();
        let writer = std::thread::Builder::new()
            .name("bootify-journal".into())
            .spawn(move || worker.run())
            .map_err(|e| BusError::Journal(format!("cannot start the journal writer: {e}")))?;
        Ok((
            Journal {
                shared,
                writer: Mutex::new(Some(writer)),
            },
            recovered,
        ))
    }

    pub fn set_notifier(&self, notifier: Arc<dyn DurableNotifier>) {
        *self.shared.notifier.write() = Some(notifier);
    }

    /// Journals a batch of accepted events (see [`PACKED_HEADER`]) and
    /// returns its sequence number; with `Process` durability it is
    /// written when this returns. Refused once a write has failed.
    pub fn accept(&self, packed: &[u8]) -> Result<u64, String> {
        self.check()?;
        let mut events = Vec::new();
        let mut at = 0;
        while at < packed.len() {
            let (slot, entry, next) =
                unpack(packed, at).ok_or_else(|| format!("malformed accept batch at byte {at}"))?;
            events.push((slot, entry));
            at = next;
        }
        let seq = {
            let mut q = self.shared.queue.lock();
            for (slot, mut entry) in events {
                let id = q.next_id;
                q.next_id += 1;
                if let Entry::Accepted {
                    id: ref mut slot_id,
                    ..
                } = entry
                {
                    *slot_id = id;
                }
                set_slot(&mut q.slots, slot, id);
                format::encode(&entry, &mut q.frames);
                if let Some(early) = q.early.remove(&slot) {
                    for record in early {
                        record.encode(id, &mut q.frames);
                    }
                }
            }
            q.seq += 1;
            if self.shared.fsync {
                q.urgent = true;
                self.shared.wake_writer(&mut q);
            }
            q.seq
        };
        if !self.shared.fsync {
            self.shared.flush(false)?;
        }
        Ok(seq)
    }

    /// A recovered event now sits in `slot`.
    pub fn adopt(&self, slot: u32, id: u64) {
        self.adopt_all([(slot, id)]);
    }

    /// Recovered events now sit in these slots (`(slot, id)`).
    pub fn adopt_all(&self, events: impl IntoIterator<Item = (u32, u64)>) {
        let mut q = self.shared.queue.lock();
        for (slot, id) in events {
            set_slot(&mut q.slots, slot, id);
        }
    }

    /// The work of the events in these slots ended.
    pub fn finished(&self, slots: impl IntoIterator<Item = u32>) {
        self.record(|q| {
            for slot in slots {
                if let Some(id) = slot_id(&q.slots, slot) {
                    format::encode(&Entry::Finished { id }, &mut q.frames);
                }
            }
        });
    }

    /// These slots were freed: their events are no longer the journal's to name.
    pub fn freed(&self, slots: impl IntoIterator<Item = u32>) {
        let mut q = self.shared.queue.lock();
        for slot in slots {
            set_slot(&mut q.slots, slot, 0);
            // An event that never reached the journal (its batch failed).
            if !q.early.is_empty() {
                q.early.remove(&slot);
            }
        }
    }

    /// The event in `slot` runs again at `due_ms` (Unix ms) as `attempt`.
    pub fn reopened(&self, slot: u32, attempt: u32, due_ms: u64) {
        self.about(slot, Early::Reopened { attempt, due_ms });
    }

    pub fn lettered(
        &self,
        slot: u32,
        letter: u64,
        attempts: u32,
        at_ms: u64,
        handler: &str,
        errors: &str,
    ) {
        let early = Early::Lettered {
            letter,
            attempts,
            at_ms,
            handler: handler.to_owned(),
            errors: errors.to_owned(),
        };
        self.about(slot, early);
    }

    /// Records a retry or a dead letter of the event in `slot`. An event
    /// handled in an isolate can fail there before the main thread has
    /// handed its acceptance over (that happens at the end of the
    /// synchronous run that emitted it): the record then waits for it.
    /// The slot cannot change hands meanwhile: only the main thread frees
    /// it, after taking the event's reports.
    fn about(&self, slot: u32, record: Early) {
        self.record(|q| match slot_id(&q.slots, slot) {
            Some(id) => record.encode(id, &mut q.frames),
            None => q.early.entry(slot).or_default().push(record),
        });
    }

    pub fn unlettered(&self, letters: impl IntoIterator<Item = u64>) {
        self.record(|q| {
            for letter in letters {
                format::encode(&Entry::Unlettered { letter }, &mut q.frames);
            }
        });
    }

    /// Queues records about events' work. They wait for the next write of
    /// accepted events, or at most `writer::LINGER`: waking the writer for
    /// each would cost a thread switch and a write per acknowledgement,
    /// and losing the last of them to a crash costs a repeated delivery.
    fn record(&self, write: impl FnOnce(&mut Queue)) {
        let mut q = self.shared.queue.lock();
        let was_empty = q.frames.is_empty();
        write(&mut q);
        if was_empty && !q.frames.is_empty() || q.frames.len() >= writer::EAGER_BYTES {
            self.shared.wake_writer(&mut q);
        }
    }

    /// Batches durable so far (written, and synced with `Fsync`).
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable_seq.load(Ordering::Acquire)
    }

    /// Disk bytes accepted events may still take.
    pub fn room(&self) -> u64 {
        let queued = self.shared.queue.lock().frames.len() as u64;
        self.shared
            .room
            .load(Ordering::Relaxed)
            .saturating_sub(queued)
    }

    pub fn failure(&self) -> Option<String> {
        self.shared.failure.read().clone()
    }

    fn check(&self) -> Result<(), String> {
        match &*self.shared.failure.read() {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Writes (and syncs) everything queued; returns the batches durable.
    pub fn flush(&self) -> Result<u64, String> {
        self.shared.flush(false)?;
        if self.shared.fsync {
            self.shared.sync()?;
        }
        Ok(self.durable_seq())
    }

    pub fn stats(&self) -> JournalStats {
        let s = &self.shared;
        let (disk_bytes, segments) = {
            let files = s.files.lock();
            (files.segments.disk_bytes(), files.segments.count() as u64)
        };
        JournalStats {
            disk_bytes,
            max_disk_bytes: s.max_disk,
            segments,
            records_written: s.records.load(Ordering::Relaxed),
            bytes_written: s.bytes.load(Ordering::Relaxed),
            syncs: s.sync_us.summary(),
            copied_forward: s.copied.load(Ordering::Relaxed),
            segments_deleted: s.deleted.load(Ordering::Relaxed),
            failure: self.failure(),
        }
    }

    /// Sync latency buckets, for the Prometheus histogram.
    pub fn sync_histogram(&self) -> &Histogram {
        &self.shared.sync_us
    }

    /// Writes and syncs what is queued, stops the writer and unlocks the
    /// directory (when the last handle goes).
    pub fn close(&self) -> Result<(), String> {
        {
            let mut q = self.shared.queue.lock();
            q.stop = true;
            self.shared.wake.notify_all();
        }
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
        let result = self.shared.flush(true).and_then(|_| self.shared.sync());
        self.shared.files.lock().segments.close();
        self.shared.lock.lock().take();
        result
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// What recovery found, at `info`, and any damage, at `warn` (one record per
/// damaged place, never per event).
fn log_recovery(opts: &JournalOptions, r: &Recovered) {
    let dir = opts.dir.display().to_string();
    opts.logs.emit(|| {
        tracing::info!(
            target: "events::journal",
            dir,
            events = r.events.len(),
            dead_letters = r.letters.len(),
            records = r.records,
            "journal opened and replayed"
        )
    });
    if r.truncated > 0 {
        opts.logs.emit(|| {
            tracing::warn!(
                target: "events::journal",
                dir,
                bytes = r.truncated_bytes,
                "torn tail of the last write cut off (the process died mid-write)"
            )
        });
    }
    for c in &r.corruptions {
        opts.logs.emit(|| {
            tracing::warn!(
                target: "events::journal",
                dir,
                segment = c.segment,
                offset = c.offset,
                reason = c.reason,
                skipped = c.skipped,
                "damaged journal record skipped"
            )
        });
    }
}
