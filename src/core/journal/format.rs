//! The journal's bytes: segment headers and CRC-framed records.
//!
//! A segment starts with a 32-byte header (magic, format version, segment
//! number). Records follow, each framed `[body length u32][crc32 of body
//! u32][body]`, little-endian; a zero length marks the end of what was
//! written (segments are preallocated, so their tail reads as zeros).
//! A body starts with its kind. Ids are the journal's own event ids,
//! never reused, so a record names its event across restarts.

pub const MAGIC: &[u8; 8] = b"BFYJRNL\0";
/// Bumped when a record's layout changes; a reader refuses newer segments.
pub const VERSION: u32 = 1;
pub const SEGMENT_HEADER: usize = 32;
pub const FRAME_HEADER: usize = 8;
/// No record is larger: a length word above it is corruption, not a record.
pub const MAX_BODY: usize = 1 << 28;

/// How an accepted event's payload was encoded (JSON, structured clone,
/// or the whole event as worker isolates read it in either: 2, 3); all
/// are decoded in JavaScript, which dead-letters what it cannot read.
pub const ENCODING_JSON: u8 = 0;
pub const ENCODING_CLONE: u8 = 1;

const ACCEPTED: u8 = 1;
/// The first body byte of an `Accepted` record.
pub const ACCEPTED_KIND: u8 = ACCEPTED;
const FINISHED: u8 = 2;
const REOPENED: u8 = 3;
const LETTERED: u8 = 4;
const UNLETTERED: u8 = 5;

/// One journal record.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// An emission was accepted: what recovery needs to emit it again.
    Accepted {
        id: u64,
        lane: u8,
        encoding: u8,
        /// Milliseconds since the Unix epoch, as the event carries it.
        timestamp: f64,
        /// UTF-8, as JavaScript wrote them; read back by JavaScript.
        event_type: &'a [u8],
        event_id: &'a [u8],
        /// Empty when it is the event id.
        correlation: &'a [u8],
        payload: &'a [u8],
    },
    /// All of its work ended (every handler succeeded, or dead-lettered).
    Finished { id: u64 },
    /// It runs again at `due_ms` (Unix ms; 0 = at once) as attempt
    /// `attempt`: a retry was scheduled, or a dead letter replayed.
    Reopened { id: u64, attempt: u32, due_ms: u64 },
    /// A dead letter holds it; `errors` is the JSON of its attempts' errors.
    Lettered {
        letter: u64,
        id: u64,
        attempts: u32,
        at_ms: u64,
        handler: &'a str,
        errors: &'a [u8],
    },
    /// The dead letter left the queue (removed, replayed or evicted).
    Unlettered { letter: u64 },
}

impl Entry<'_> {
    /// The event it is about (`None` for `Unlettered`, which names a letter).
    pub fn event(&self) -> Option<u64> {
        match *self {
            Entry::Accepted { id, .. }
            | Entry::Finished { id }
            | Entry::Reopened { id, .. }
            | Entry::Lettered { id, .. } => Some(id),
            Entry::Unlettered { .. } => None,
        }
    }
}

pub fn segment_header(segment: u32) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&segment.to_le_bytes());
    h
}

/// The segment number of a header, or why it is not one this build reads.
pub fn read_segment_header(h: &[u8]) -> Result<u32, String> {
    if h.len() < SEGMENT_HEADER || &h[..8] != MAGIC {
        return Err("not a journal segment (bad magic)".into());
    }
    let version = u32_at(h, 8);
    if version > VERSION {
        return Err(format!(
            "written by a newer format (version {version}; this build reads up to {VERSION})"
        ));
    }
    Ok(u32_at(h, 12))
}

/// Appends the framed record; returns the frame's length.
pub fn encode(entry: &Entry<'_>, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    match *entry {
        Entry::Accepted {
            id,
            lane,
            encoding,
            timestamp,
            event_type,
            event_id,
            correlation,
            payload,
        } => {
            out.push(ACCEPTED);
            out.extend_from_slice(&id.to_le_bytes());
            out.push(lane);
            out.push(encoding);
            out.extend_from_slice(&timestamp.to_le_bytes());
            put_bytes(out, event_type);
            put_bytes(out, event_id);
            put_bytes(out, correlation);
            put_bytes(out, payload);
        }
        Entry::Finished { id } => {
            out.push(FINISHED);
            out.extend_from_slice(&id.to_le_bytes());
        }
        Entry::Reopened {
            id,
            attempt,
            due_ms,
        } => {
            out.push(REOPENED);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&attempt.to_le_bytes());
            out.extend_from_slice(&due_ms.to_le_bytes());
        }
        Entry::Lettered {
            letter,
            id,
            attempts,
            at_ms,
            handler,
            errors,
        } => {
            out.push(LETTERED);
            out.extend_from_slice(&letter.to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&attempts.to_le_bytes());
            out.extend_from_slice(&at_ms.to_le_bytes());
            put_bytes(out, handler.as_bytes());
            put_bytes(out, errors);
        }
        Entry::Unlettered { letter } => {
            out.push(UNLETTERED);
            out.extend_from_slice(&letter.to_le_bytes());
        }
    }
    let body_len = out.len() - start - FRAME_HEADER;
    let crc = crc32fast::hash(&out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// What the bytes at some offset of a segment hold.
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    /// A record and the length of its frame.
    Record(Entry<'a>, usize),
    /// Zeros: nothing was written from here on.
    End,
    /// The frame runs past the end of the bytes: a write cut short.
    Torn,
    /// The frame does not check out.
    Corrupt(&'static str),
}

pub fn decode(buf: &[u8]) -> Frame<'_> {
    if buf.len() < FRAME_HEADER {
        return if buf.iter().all(|&b| b == 0) {
            Frame::End
        } else {
            Frame::Torn
        };
    }
    let len = u32_at(buf, 0) as usize;
    let crc = u32_at(buf, 4);
    if len == 0 {
        return if crc == 0 {
            Frame::End
        } else {
            Frame::Corrupt("empty record")
        };
    }
    if len > MAX_BODY {
        return Frame::Corrupt("record length out of range");
    }
    let Some(body) = buf.get(FRAME_HEADER..FRAME_HEADER + len) else {
        return Frame::Torn;
    };
    if crc32fast::hash(body) != crc {
        return Frame::Corrupt("checksum mismatch");
    }
    match parse(body) {
        Some(entry) => Frame::Record(entry, FRAME_HEADER + len),
        None => Frame::Corrupt("unknown or malformed record"),
    }
}

/// Whether a good frame starts `buf`, for finding one in damaged bytes:
/// parsed before the checksum, since garbage rarely parses, so a search
/// does not checksum a large body at every offset.
pub fn starts_record(buf: &[u8]) -> bool {
    if buf.len() < FRAME_HEADER {
        return false;
    }
    let len = u32_at(buf, 0) as usize;
    let Some(body) = buf.get(FRAME_HEADER..FRAME_HEADER.saturating_add(len)) else {
        return false;
    };
    len > 0 && len <= MAX_BODY && parse(body).is_some() && crc32fast::hash(body) == u32_at(buf, 4)
}

/// The record of a frame replay has already checked (no second checksum).
pub fn parse_checked(frame: &[u8]) -> Frame<'_> {
    match frame.get(FRAME_HEADER..).and_then(parse) {
        Some(entry) => Frame::Record(entry, frame.len()),
        None => Frame::Corrupt("unknown or malformed record"),
    }
}

fn parse(body: &[u8]) -> Option<Entry<'_>> {
    let mut r = Reader { buf: body, at: 1 };
    let entry = match *body.first()? {
        ACCEPTED => Entry::Accepted {
            id: r.u64()?,
            lane: r.u8()?,
            encoding: r.u8()?,
            timestamp: f64::from_bits(r.u64()?),
            event_type: r.bytes()?,
            event_id: r.bytes()?,
            correlation: r.bytes()?,
            payload: r.bytes()?,
        },
        FINISHED => Entry::Finished { id: r.u64()? },
        REOPENED => Entry::Reopened {
            id: r.u64()?,
            attempt: r.u32()?,
            due_ms: r.u64()?,
        },
        LETTERED => Entry::Lettered {
            letter: r.u64()?,
            id: r.u64()?,
            attempts: r.u32()?,
            at_ms: r.u64()?,
            handler: r.text()?,
            errors: r.bytes()?,
        },
        UNLETTERED => Entry::Unlettered { letter: r.u64()? },
        _ => return None,
    };
    (r.at == body.len()).then_some(entry)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(w)
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32_at(b, 0))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Some(u64::from_le_bytes(w))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Entry<'static>> {
        vec![
            Entry::Accepted {
                id: 7,
                lane: 2,
                encoding: ENCODING_JSON,
                timestamp: 1_764_000_000_000.5,
                event_type: b"user.created",
                event_id: b"ab12-7",
                correlation: b"",
                payload: br#"{"n":1}"#,
            },
            Entry::Finished { id: 7 },
            Entry::Reopened {
                id: u64::MAX,
                attempt: 3,
                due_ms: 1_700_000_000_000,
            },
            Entry::Lettered {
                letter: 9,
                id: 7,
                attempts: 4,
                at_ms: 5,
                handler: "send",
                errors: b"[]",
            },
            Entry::Unlettered { letter: 9 },
        ]
    }

    #[test]
    fn every_kind_round_trips_and_frames_are_self_delimiting() {
        let mut buf = Vec::new();
        let lens: Vec<usize> = samples().iter().map(|e| encode(e, &mut buf)).collect();
        buf.extend_from_slice(&[0; 64]);
        let mut at = 0;
        for (want, len) in samples().iter().zip(lens) {
            assert_eq!(decode(&buf[at..]), Frame::Record(want.clone(), len));
            at += len;
        }
        assert_eq!(decode(&buf[at..]), Frame::End);
    }

    #[test]
    fn a_cut_or_flipped_frame_is_never_a_record() {
        let mut buf = Vec::new();
        let len = encode(&samples()[0], &mut buf);
        for cut in 1..len {
            assert!(matches!(decode(&buf[..cut]), Frame::Torn | Frame::End));
        }
        for at in 0..len {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            assert!(
                !matches!(decode(&bad), Frame::Record(..)),
                "flipped byte {at} read as a record"
            );
        }
    }

    #[test]
    fn headers_name_their_segment_and_refuse_newer_versions() {
        let h = segment_header(42);
        assert_eq!(read_segment_header(&h), Ok(42));
        let mut newer = h;
        newer[8] = (VERSION + 1) as u8;
        assert!(read_segment_header(&newer).unwrap_err().contains("newer"));
        assert!(read_segment_header(&[0; 32]).is_err());
    }
}
