//! The writer's side of the journal: taking what is queued, writing it in
//! whole frames to the segments, syncing, applying it to the index, and
//! deleting or compacting segments nothing (or little) needs any more.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::format::{self, Entry, Frame, FRAME_HEADER};
use super::index::IdMap;
use super::segments::Loc;
use super::{Files, Queue, Shared};

/// Longest a record about work waits for a write of accepted events.
pub(super) const LINGER: Duration = Duration::from_millis(2);
/// Queued bytes past which the writer writes at once.
pub(super) const EAGER_BYTES: usize = 1 << 18;

impl Shared {
    pub(super) fn wake_writer(&self, q: &mut Queue) {
        if q.writer_waiting {
            q.writer_waiting = false;
            self.wake.notify_one();
        }
    }

    pub(super) fn run(&self) {
        loop {
            {
                let mut q = self.queue.lock();
                loop {
                    if q.stop {
                        return;
                    }
                    if q.urgent || q.frames.len() >= EAGER_BYTES {
                        break;
                    }
                    q.writer_waiting = true;
                    if q.frames.is_empty() {
                        // Idle: asleep until something is queued.
                        self.wake.wait(&mut q);
                    } else if self.wake.wait_for(&mut q, LINGER).timed_out() {
                        break;
                    }
                }
                q.urgent = false;
            }
            let ok = self
                .flush(true)
                .and_then(|_| if self.fsync { self.sync() } else { Ok(()) });
            if ok.is_err() {
                self.notify();
                // Records keep coming; they are dropped with the failure
                // reported, not written over a journal in doubt.
                let mut q = self.queue.lock();
                q.frames.clear();
            }
        }
    }

    pub(super) fn notify(&self) {
        if let Some(n) = &*self.notifier.read() {
            n.changed();
        }
    }

    pub(super) fn fail(&self, why: String) -> String {
        let mut f = self.failure.write();
        if f.is_none() {
            self.logs.emit(|| {
                tracing::error!(
                    target: "events::journal",
                    error = why.as_str(),
                    "journal write failed; durable emissions are refused from now on"
                )
            });
        }
        f.get_or_insert(why).clone()
    }

    /// Writes what is queued. Holds `files` throughout, so batches are
    /// written in the order they were queued. Only the writer thread
    /// (`on_writer`) deletes and compacts segments: an emitting thread
    /// only writes, and wakes the writer when there is tidying to do.
    pub(super) fn flush(&self, on_writer: bool) -> Result<(), String> {
        let mut files = self.files.lock();
        // Checked under `files`, which every failure is recorded under: a
        // batch another thread took and failed to write is not reported
        // written here.
        if let Some(why) = &*self.failure.read() {
            return Err(why.clone());
        }
        if self.lock.lock().is_none() {
            // Closed: the directory may be another bus's by now.
            return Ok(());
        }
        let (frames, seq) = {
            let mut q = self.queue.lock();
            let mut spare = std::mem::take(&mut files.spare);
            spare.clear();
            (std::mem::replace(&mut q.frames, spare), q.seq)
        };
        let result = self.write(&mut files, &frames);
        files.spare = frames;
        result.map_err(|e| self.fail(format!("journal write failed: {e}")))?;
        self.written_seq.store(seq, Ordering::Release);
        if !self.fsync {
            self.durable_seq.fetch_max(seq, Ordering::AcqRel);
        }
        if self.tidy(&mut files, on_writer) {
            let mut q = self.queue.lock();
            q.urgent = true;
            self.wake_writer(&mut q);
        }
        Ok(())
    }

    pub(super) fn write(&self, files: &mut Files, frames: &[u8]) -> std::io::Result<()> {
        let mut at = 0;
        let mut records = 0u64;
        while at < frames.len() {
            // The longest run of whole frames that fits the segment (at
            // least one: `append` starts a segment large enough for it).
            let room = files.segments.room() as usize;
            let mut end = at + frame_len(&frames[at..]);
            while end < frames.len() {
                let next = frame_len(&frames[end..]);
                if end + next - at > room {
                    break;
                }
                end += next;
            }
            let (segment, offset) = files.segments.append(&frames[at..end])?;
            let mut pos = at;
            while pos < end {
                let len = frame_len(&frames[pos..]);
                if let Frame::Record(entry, _) = format::decode(&frames[pos..pos + len]) {
                    let loc = Loc {
                        segment,
                        offset: offset + (pos - at) as u64,
                        len: len as u32,
                    };
                    files.index.apply(&entry, loc);
                }
                records += 1;
                pos += len;
            }
            at = end;
        }
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(frames.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn sync(&self) -> Result<(), String> {
        let seq = self.written_seq.load(Ordering::Acquire);
        let started = Instant::now();
        let result = self.files.lock().segments.sync();
        self.sync_us.record(started.elapsed().as_micros() as u64);
        result.map_err(|e| self.fail(format!("journal sync failed: {e}")))?;
        self.durable_seq.fetch_max(seq, Ordering::AcqRel);
        self.notify();
        Ok(())
    }

    /// Deletes segments nothing needs and copies one mostly settled
    /// segment's live records forward (`on_writer`), and updates the room
    /// left for accepts. Returns whether tidying was left undone.
    pub(super) fn tidy(&self, files: &mut Files, on_writer: bool) -> bool {
        let current = files.segments.current();
        // Oldest first, and only while nothing older remains: a segment's
        // records may cancel records in older ones (an end of work, a dead
        // letter gone), which would come back if it went first.
        let idle: Vec<u32> = files
            .segments
            .segments()
            .take_while(|&s| s != current && files.index.live_bytes(s) == 0)
            .collect();
        // The oldest segment still needed is copied forward when it is
        // mostly settled (it takes its full preallocated size however
        // little of it is live: copying out a quarter at most frees it
        // all), or when the disk is half full, so a backlog in it cannot
        // keep settled segments after it on disk for ever.
        let half_full = files.segments.disk_bytes() * 2 > self.max_disk;
        let sparse = files
            .segments
            .segments()
            .find(|&s| files.index.live_bytes(s) > 0 || s == current)
            .filter(|&s| {
                let live = files.index.live_bytes(s);
                let size = files.segments.size(s);
                // Under pressure, only when it frees at least a quarter.
                let worth = if half_full {
                    live * 4 < size * 3
                } else {
                    live * 4 < size
                };
                s != current && worth
            });
        let undone = !idle.is_empty() || sparse.is_some();
        if on_writer {
            for s in idle {
                if files.segments.remove(s).is_ok() {
                    self.deleted.fetch_add(1, Ordering::Relaxed);
                    self.logs.emit(|| {
                        tracing::debug!(target: "events::journal", segment = s, "segment with nothing live deleted")
                    });
                }
            }
            if let Some(s) = sparse {
                self.logs.emit(|| {
                    tracing::debug!(
                        target: "events::journal",
                        segment = s,
                        live_bytes = files.index.live_bytes(s),
                        "copying a mostly dead segment's live records forward"
                    )
                });
                if let Err(e) = self.copy_forward(files, s) {
                    // The old segment stays; nothing is lost, disk is.
                    self.fail(format!("journal compaction failed: {e}"));
                }
            }
        }
        let used = files.segments.disk_bytes();
        let room = (self.max_disk.saturating_sub(used) + files.segments.room())
            .saturating_sub(self.reserve);
        self.room.store(room, Ordering::Relaxed);
        undone && !on_writer
    }

    /// Re-writes each event pinning `segment` after everything else: its
    /// `Accepted` record, its letters, then its state, the order replay
    /// needs. One read per segment involved and one write for them all.
    pub(super) fn copy_forward(&self, files: &mut Files, segment: u32) -> std::io::Result<()> {
        let ids = files.index.pinned_by(segment);
        let mut letters: IdMap<u64, Vec<(u64, Loc)>> = IdMap::default();
        for (&n, l) in &files.index.letters {
            letters.entry(l.id).or_default().push((n, l.loc));
        }
        let mut contents: IdMap<u32, Vec<u8>> = IdMap::default();
        let mut out = Vec::new();
        for &id in &ids {
            let Some(ev) = files.index.events.get(&id).cloned() else {
                continue;
            };
            let mut locs = vec![ev.accepted];
            if let Some(held) = letters.get_mut(&id) {
                held.sort_unstable_by_key(|(n, _)| *n);
                locs.extend(held.iter().map(|(_, loc)| *loc));
            }
            for loc in locs {
                let bytes = match contents.entry(loc.segment) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(files.segments.read_written(loc.segment)?)
                    }
                };
                let frame = bytes
                    .get(loc.offset as usize..loc.offset as usize + loc.len as usize)
                    .ok_or_else(|| {
                        std::io::Error::other("a live record lies past its segment's end")
                    })?;
                out.extend_from_slice(frame);
            }
            if !ev.open {
                format::encode(&Entry::Finished { id }, &mut out);
            } else if ev.state.is_some() {
                let entry = Entry::Reopened {
                    id,
                    attempt: ev.attempt,
                    due_ms: ev.due_ms,
                };
                format::encode(&entry, &mut out);
            }
        }
        self.write(files, &out)?;
        self.copied.fetch_add(ids.len() as u64, Ordering::Relaxed);
        if files.index.live_bytes(segment) == 0 && files.segments.remove(segment).is_ok() {
            self.deleted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn frame_len(buf: &[u8]) -> usize {
    let mut w = [0u8; 4];
    w.copy_from_slice(&buf[..4]);
    FRAME_HEADER + u32::from_le_bytes(w) as usize
}
