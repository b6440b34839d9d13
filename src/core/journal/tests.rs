//! The journal on real files: what a reopened journal recovers, how it
//! bounds its disk, and what corruption costs.

use std::fs;
use std::path::{Path, PathBuf};

use super::segments::{list, segment_path};
use super::*;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("bfy-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn options(dir: &Path, segment_kb: u64) -> JournalOptions {
    JournalOptions {
        dir: dir.to_path_buf(),
        max_disk_bytes: 64 << 20,
        segment_bytes: segment_kb << 10,
        fsync: false,
        logs: Logs::default(),
    }
}

/// Packs `(slot, type, payload)` as JavaScript does (event id `id-<slot>`).
fn pack(events: &[(u32, &str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (slot, ty, payload) in events {
        let id = format!("id-{slot}");
        out.extend_from_slice(&slot.to_le_bytes());
        out.push(1);
        out.push(ENCODING_JSON);
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&1.5f64.to_le_bytes());
        for len in [ty.len(), id.len(), 0, payload.len()] {
            out.extend_from_slice(&(len as u32).to_le_bytes());
        }
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(payload.as_bytes());
    }
    out
}

/// The payloads of the open events recovered, in order.
fn envelopes(rec: &Recovered) -> Vec<String> {
    rec.events
        .iter()
        .filter(|e| e.open)
        .map(|e| {
            let buf = &rec.buffers[e.buffer as usize];
            String::from_utf8_lossy(&buf[e.payload_start..e.end]).into_owned()
        })
        .collect()
}

fn open(dir: &Path, segment_kb: u64) -> (Journal, Recovered) {
    Journal::open(options(dir, segment_kb)).expect("journal opens")
}

#[test]
fn unfinished_events_come_back_in_order_with_their_retries() {
    let tmp = TempDir::new("order");
    {
        let (j, rec) = open(&tmp.0, 64);
        assert!(rec.events.is_empty());
        j.accept(&pack(&[(0, "a", "e0"), (1, "b", "e1"), (2, "a", "e2")]))
            .unwrap();
        j.finished([1]);
        j.freed([1]);
        j.reopened(2, 2, 123_456);
        j.flush().unwrap();
    }
    let (_j, rec) = open(&tmp.0, 64);
    assert_eq!(envelopes(&rec), ["e0", "e2"]);
    let retry = &rec.events[1];
    assert_eq!((retry.attempt, retry.due_ms), (2, 123_456));
    assert_eq!(rec.types[rec.events[0].type_index as usize], "a");
    let first = &rec.events[0];
    assert_eq!(
        &rec.buffers[first.buffer as usize][first.start..first.id_end],
        b"id-0"
    );
    assert_eq!(first.timestamp, 1.5);
    assert_eq!(rec.next_id, 4);
}

#[test]
fn a_retry_recorded_before_its_event_was_journaled_follows_it() {
    let tmp = TempDir::new("early");
    {
        let (j, _) = open(&tmp.0, 64);
        // An isolate failed the event before the main thread's batch came.
        j.reopened(3, 1, 77);
        j.accept(&pack(&[(3, "a", "e3")])).unwrap();
        j.flush().unwrap();
    }
    let (_j, rec) = open(&tmp.0, 64);
    assert_eq!(envelopes(&rec), ["e3"]);
    assert_eq!((rec.events[0].attempt, rec.events[0].due_ms), (1, 77));
}

#[test]
fn dead_letters_come_back_with_their_event_until_removed() {
    let tmp = TempDir::new("letters");
    {
        let (j, _) = open(&tmp.0, 64);
        j.accept(&pack(&[(0, "a", "e0"), (1, "a", "e1")])).unwrap();
        j.lettered(0, 7, 4, 99, "send", "[]");
        j.finished([0]);
        j.lettered(1, 8, 1, 99, "send", "[]");
        j.finished([1]);
        j.unlettered([8]);
        j.flush().unwrap();
    }
    let (_j, rec) = open(&tmp.0, 64);
    assert!(
        envelopes(&rec).is_empty(),
        "a dead-lettered event does not run again"
    );
    assert_eq!(rec.letters.len(), 1);
    assert_eq!(
        (rec.letters[0].letter, rec.letters[0].handler.as_str()),
        (7, "send")
    );
    assert_eq!(rec.events.len(), 1, "the letter's event is kept for replay");
    assert_eq!(rec.next_letter, 8 + 1);
}

#[test]
fn settled_segments_are_deleted_and_pinned_records_copied_forward() {
    let tmp = TempDir::new("compact");
    let envelope = "x".repeat(200);
    let (j, _) = open(&tmp.0, 16);
    // A long-lived retry in the first segment, then churn.
    j.accept(&pack(&[(0, "slow", &envelope)])).unwrap();
    j.reopened(0, 1, 42);
    for round in 0..400u32 {
        let slot = 1 + round % 50;
        j.accept(&pack(&[(slot, "fast", &envelope)])).unwrap();
        j.finished([slot]);
        j.freed([slot]);
        j.flush().unwrap();
    }
    let stats = j.stats();
    assert!(stats.segments <= 3, "{} segments left", stats.segments);
    assert!(stats.segments_deleted > 3);
    assert!(stats.copied_forward >= 1);
    drop(j);
    let (_j, rec) = open(&tmp.0, 16);
    assert_eq!(rec.events.len(), 1);
    assert_eq!((rec.events[0].attempt, rec.events[0].due_ms), (1, 42));
}

#[test]
fn finished_events_stay_finished_while_older_segments_remain() {
    let tmp = TempDir::new("order-of-deletion");
    let payload = "p".repeat(380);
    {
        let (j, _) = open(&tmp.0, 16);
        // 38 records of 429 bytes fill the first segment, which stays over
        // a quarter live and is kept as is.
        for slot in 0..38u32 {
            j.accept(&pack(&[(slot, "a", &payload)])).unwrap();
        }
        // Their ends (and later segments' churn) land in newer segments,
        // which hold nothing live themselves.
        j.finished(0..20);
        j.freed(0..20);
        for round in 0..200u32 {
            let slot = 1000 + round % 10;
            j.accept(&pack(&[(slot, "b", &payload)])).unwrap();
            j.finished([slot]);
            j.freed([slot]);
            j.flush().unwrap();
        }
    }
    let (_j, rec) = open(&tmp.0, 16);
    let open_slots: Vec<String> = rec
        .events
        .iter()
        .filter(|e| e.open)
        .map(|e| {
            String::from_utf8_lossy(&rec.buffers[e.buffer as usize][e.start..e.id_end]).into_owned()
        })
        .collect();
    let expected: Vec<String> = (20..38).map(|s| format!("id-{s}")).collect();
    assert_eq!(
        open_slots, expected,
        "exactly the unfinished events come back"
    );
}

#[test]
fn a_second_open_of_the_directory_is_refused() {
    let tmp = TempDir::new("lock");
    let (_j, _) = open(&tmp.0, 64);
    let err = Journal::open(options(&tmp.0, 64)).err().expect("refused");
    assert_eq!(err.code(), "JOURNAL_LOCKED");
    assert!(err.to_string().contains("in use by another bus"), "{err}");
}

/// Writes three events to one segment and returns its path.
fn three_events(dir: &Path) -> PathBuf {
    let (j, _) = open(dir, 64);
    j.accept(&pack(&[(0, "a", "e0"), (1, "a", "e1"), (2, "a", "e2")]))
        .unwrap();
    drop(j);
    segment_path(dir, *list(dir).unwrap().last().unwrap())
}

/// Offset where the frame of the event with envelope `e<i>` starts.
fn frame_of(buf: &[u8], i: usize) -> usize {
    let needle = format!("e{i}");
    let at = buf.windows(2).position(|w| w == needle.as_bytes()).unwrap();
    // The payload ends its frame; walk back over the record's fields
    // (type "a", id "id-<i>", no correlation id).
    at - (format::FRAME_HEADER + 1 + 8 + 1 + 1 + 8 + 4 + 1 + 4 + 4 + 4 + 4)
}

#[test]
fn a_torn_tail_is_cut_and_counted_once() {
    let tmp = TempDir::new("torn");
    let path = three_events(&tmp.0);
    let mut buf = fs::read(&path).unwrap();
    let last = frame_of(&buf, 2);
    // The crash wrote half of the last frame.
    let end = buf[last..].iter().rposition(|&b| b != 0).unwrap() + last;
    for b in &mut buf[last + (end - last) / 2..=end] {
        *b = 0;
    }
    fs::write(&path, &buf).unwrap();
    let (j, rec) = open(&tmp.0, 64);
    assert_eq!(envelopes(&rec), ["e0", "e1"]);
    assert_eq!((rec.truncated, rec.corruptions.len()), (1, 0));
    drop(j);
    let (_j, rec) = open(&tmp.0, 64);
    assert_eq!(rec.truncated, 0, "the tail was cut, not counted again");
}

/// Three events in `dir`, with a byte of event `i`'s record flipped;
/// returns the segment and the record's offset.
fn flipped(dir: &Path, i: usize) -> (PathBuf, usize) {
    let path = three_events(dir);
    let mut buf = fs::read(&path).unwrap();
    let at = frame_of(&buf, i);
    buf[at + 12] ^= 1;
    fs::write(&path, &buf).unwrap();
    (path, at)
}

#[test]
fn a_flipped_byte_in_the_last_record_is_a_torn_tail() {
    let tmp = TempDir::new("flip-last");
    flipped(&tmp.0, 2);
    let (_j, rec) = open(&tmp.0, 64);
    assert_eq!(envelopes(&rec), ["e0", "e1"]);
    assert_eq!(rec.truncated, 1);
}

#[test]
fn a_flipped_byte_in_the_middle_is_reported_and_skipped() {
    let tmp = TempDir::new("flip-middle");
    let (path, middle) = flipped(&tmp.0, 1);
    let (_j, rec) = open(&tmp.0, 64);
    assert_eq!(envelopes(&rec), ["e0", "e2"]);
    assert_eq!(rec.truncated, 0);
    let c = &rec.corruptions[..];
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].offset, c[0].reason),
        (middle as u64, "checksum mismatch")
    );
    assert!(path.ends_with(format!("{:08}.seg", c[0].segment)));
}

#[test]
fn accepts_see_the_room_left_under_the_disk_bound() {
    let tmp = TempDir::new("room");
    let mut opts = options(&tmp.0, 16);
    opts.max_disk_bytes = 64 << 10;
    let (j, _) = Journal::open(opts).unwrap();
    let before = j.room();
    assert!(before > 0 && before <= 64 << 10);
    let envelope = "y".repeat(1000);
    j.accept(&pack(&[(0, "a", &envelope)])).unwrap();
    assert!(j.room() < before);
}

/// Not a test: `cargo test --release --lib replay_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn replay_speed() {
    let tmp = TempDir::new("speed");
    let n: u32 = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    {
        let (j, _) = open(&tmp.0, 32 << 10);
        let payload = r#"{"i":1,"user":"u-1","amount":42}"#;
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let batch: Vec<(u32, &str, &str)> =
                chunk.iter().map(|&s| (s, "pending", payload)).collect();
            j.accept(&pack(&batch)).unwrap();
        }
        j.flush().unwrap();
    }
    let started = std::time::Instant::now();
    let (_j, rec) = open(&tmp.0, 32 << 10);
    eprintln!(
        "open + replay of {n}: {:?} ({} events)",
        started.elapsed(),
        rec.events.len()
    );
}
