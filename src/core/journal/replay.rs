//! Recovery: reads every segment, checks each frame, rebuilds the index,
//! and extracts what must run again and the dead letters.
//!
//! A frame that does not check out at the end of the newest segment is a
//! write the crash cut short: the tail is truncated and counted. One with
//! good frames after it is corruption: reported with its segment and
//! offset, skipped up to the next good frame, and replay goes on.

use std::fs::{self, OpenOptions};
use std::path::Path;

use super::extract::extract;
use super::format::{self, Entry, Frame, FRAME_HEADER, SEGMENT_HEADER};
use super::index::Index;
use super::segments::{list, segment_path, Loc};

/// An event to emit again, in the order it was accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub id: u64,
    pub lane: u8,
    pub encoding: u8,
    pub timestamp: f64,
    /// Index into `Recovered::types`.
    pub type_index: u32,
    /// In `Recovered::buffers[buffer]`, `[start..id_end]` is the event id,
    /// `[correlation_start..correlation_end]` its correlation id (empty:
    /// the event id), `[payload_start..end]` its payload.
    pub buffer: u32,
    pub start: usize,
    pub id_end: usize,
    pub correlation_start: usize,
    pub correlation_end: usize,
    pub payload_start: usize,
    pub end: usize,
    /// Runs made before (0: it never failed), and when the next is due
    /// (Unix ms; 0 = now).
    pub attempt: u32,
    pub due_ms: u64,
    /// False: only dead letters hold it (it must not run again).
    pub open: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredLetter {
    pub letter: u64,
    pub id: u64,
    pub attempts: u32,
    pub at_ms: u64,
    pub handler: String,
    /// JSON of its attempts' errors.
    pub errors: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    pub segment: u32,
    pub offset: u64,
    pub reason: &'static str,
    /// Bytes skipped to reach the next good frame (or the end).
    pub skipped: u64,
}

#[derive(Debug, Default)]
pub struct Recovered {
    /// Open events first by id, then events kept only by dead letters.
    pub events: Vec<PendingEvent>,
    pub types: Vec<String>,
    /// The segments as read: recovered events are not copied out of them.
    pub buffers: Vec<Vec<u8>>,
    pub letters: Vec<RecoveredLetter>,
    pub records: u64,
    /// Torn tails cut off (one per crash, at most).
    pub truncated: u64,
    pub truncated_bytes: u64,
    pub corruptions: Vec<Corruption>,
    pub next_id: u64,
    pub next_letter: u64,
}

/// What the writer continues from.
pub struct Replayed {
    pub recovered: Recovered,
    pub index: Index,
    /// Segments kept, with the bytes written in each.
    pub segments: Vec<(u32, u64)>,
}

pub fn replay(dir: &Path) -> Result<Replayed, String> {
    let numbers = list(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut rec = Recovered {
        next_id: 1,
        next_letter: 1,
        ..Recovered::default()
    };
    let mut index = Index::default();
    // Read first, so the index is sized once for every event in them.
    let mut files = Vec::with_capacity(numbers.len());
    let mut accepted = 0;
    for (i, &n) in numbers.iter().enumerate() {
        let path = segment_path(dir, n);
        let (buf, count) =
            read_data(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let header = buf.get(..SEGMENT_HEADER).unwrap_or(&buf);
        match format::read_segment_header(header) {
            Ok(_) => {}
            Err(_) if i + 1 == numbers.len() && buf.iter().all(|&b| b == 0) => {
                // Created, not yet headed, when the process died.
                let _ = fs::remove_file(&path);
                continue;
            }
            Err(why) if why.contains("newer") => return Err(format!("{}: {why}", path.display())),
            Err(_) => {
                // A damaged header: its records are read as if it were whole
                // (each frame checks itself), and the damage is reported.
                rec.corruptions.push(Corruption {
                    segment: n,
                    offset: 0,
                    reason: "damaged segment header",
                    skipped: 0,
                });
            }
        }
        accepted += count;
        files.push((n, buf));
    }
    index.reserve(accepted);
    let mut kept = Vec::with_capacity(files.len());
    for (i, (n, buf)) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        let end = scan(*n, buf, last, &mut index, &mut rec);
        if last && end < buf.len() as u64 && !is_zero(&buf[end as usize..]) {
            // The torn tail goes, so the next replay does not count it again.
            let path = segment_path(dir, *n);
            rec.truncated += 1;
            rec.truncated_bytes += tail_len(&buf[end as usize..]);
            zero_from(&path, end, buf.len() as u64)
                .map_err(|e| format!("cannot truncate {}: {e}", path.display()))?;
        }
        kept.push((*n, end));
    }
    extract(&index, &files, &mut rec);
    rec.buffers = files.into_iter().map(|(_, buf)| buf).collect();
    Ok(Replayed {
        recovered: rec,
        index,
        segments: kept,
    })
}

/// A segment's bytes up to the end of what was written, and how many
/// `Accepted` records it holds: read in chunks until its frames reach the
/// zeros of its preallocated tail, which is not read. A frame that does not
/// add up makes it read the whole file, so replay can tell a torn tail from
/// damage in the middle.
fn read_data(path: &Path) -> std::io::Result<(Vec<u8>, usize)> {
    use std::os::unix::fs::FileExt;
    const CHUNK: usize = 4 << 20;
    let file = fs::File::open(path)?;
    let len = file.metadata()?.len() as usize;
    let mut buf: Vec<u8> = Vec::new();
    let mut at = SEGMENT_HEADER;
    let mut accepted = 0;
    let mut whole = false;
    loop {
        let want = if whole {
            len
        } else {
            (buf.len() + CHUNK).min(len)
        };
        if want > buf.len() {
            let from = buf.len();
            buf.resize(want, 0);
            file.read_exact_at(&mut buf[from..], from as u64)?;
        }
        if buf.len() == len && whole {
            return Ok((buf, accepted));
        }
        // Walk the frames by their length words only; replay checks them.
        while at + FRAME_HEADER <= buf.len() {
            let word = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
            let (body, crc) = (word(at) as usize, word(at + 4));
            if body == 0 && crc == 0 {
                return Ok((buf, accepted));
            }
            if body == 0 || body > format::MAX_BODY {
                whole = true;
                break;
            }
            if at + FRAME_HEADER + body > buf.len() {
                whole = buf.len() == len;
                break;
            }
            // A damaged length could land on zeros and end the walk early.
            if crc32fast::hash(&buf[at + FRAME_HEADER..at + FRAME_HEADER + body]) != crc {
                whole = true;
                break;
            }
            accepted += usize::from(buf[at + FRAME_HEADER] == format::ACCEPTED_KIND);
            at += FRAME_HEADER + body;
        }
        if buf.len() == len {
            return Ok((buf, accepted));
        }
    }
}

/// Reads one segment's frames into the index; returns where its good
/// records end.
fn scan(segment: u32, buf: &[u8], last: bool, index: &mut Index, rec: &mut Recovered) -> u64 {
    let mut at = SEGMENT_HEADER;
    let mut end = at;
    while at < buf.len() {
        match format::decode(&buf[at..]) {
            Frame::Record(entry, len) => {
                note_ids(&entry, rec);
                let loc = Loc {
                    segment,
                    offset: at as u64,
                    len: len as u32,
                };
                index.apply(&entry, loc);
                rec.records += 1;
                at += len;
                end = at;
            }
            Frame::End => break,
            Frame::Torn | Frame::Corrupt(_) if last && resync(buf, at + 1).is_none() => break,
            Frame::Torn | Frame::Corrupt(_) => {
                let reason = match format::decode(&buf[at..]) {
                    Frame::Corrupt(why) => why,
                    _ => "record cut short",
                };
                let next = resync(buf, at + 1).unwrap_or(buf.len());
                rec.corruptions.push(Corruption {
                    segment,
                    offset: at as u64,
                    reason,
                    skipped: (next - at) as u64,
                });
                at = next;
            }
        }
    }
    end as u64
}

fn note_ids(entry: &Entry<'_>, rec: &mut Recovered) {
    if let Some(id) = entry.event() {
        rec.next_id = rec.next_id.max(id + 1);
    }
    if let Entry::Lettered { letter, .. } = *entry {
        rec.next_letter = rec.next_letter.max(letter + 1);
    }
}

/// The next offset from `from` where a good frame starts. Runs of zeros
/// (a preallocated tail) are skipped at once: a frame's length word is
/// never zero.
fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let stop = buf.len().saturating_sub(FRAME_HEADER);
    let mut at = from;
    while at < stop {
        if buf[at..at + 4] == [0; 4] {
            let next = buf[at..].iter().position(|&b| b != 0)?;
            at = (at + next).saturating_sub(3).max(at + 1);
            continue;
        }
        if format::starts_record(&buf[at..]) {
            return Some(at);
        }
        at += 1;
    }
    None
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Bytes up to the last non-zero one: what the torn write left.
fn tail_len(b: &[u8]) -> u64 {
    b.iter().rposition(|&x| x != 0).map_or(0, |p| p as u64 + 1)
}

/// Zeroes a torn tail in place, keeping the file's preallocated size.
fn zero_from(path: &Path, from: u64, to: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = OpenOptions::new().write(true).open(path)?;
    let zeros = vec![0u8; (to - from).min(1 << 20) as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_data()
}
