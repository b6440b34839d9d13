//! The journal's files: a lock file, and numbered segment files
//! (`00000001.seg`, ...) written full of zeros before use, so appending
//! changes neither a file's size nor its block map and a data sync needs
//! no metadata commit. Measured here (3 kB writes, each synced): 3.9 k
//! syncs/s zero-filled, 2.6 k `fallocate`d (its extents are converted on
//! first write), 2.0-2.6 k growing. The next segment is zero-filled by a
//! helper thread while the current one fills.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::format::{segment_header, SEGMENT_HEADER};
use crate::core::error::BusError;

pub const LOCK_FILE: &str = "LOCK";

pub fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.seg"))
}

const SPARE_FILE: &str = "next.seg.tmp";

/// A file of `size` zero bytes at `path`, on disk.
fn zero_filled(path: &Path, size: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()?;
    Ok(file)
}

/// A segment file zero-filled ahead of use, under a temporary name.
struct Spare {
    path: PathBuf,
    size: u64,
    file: SpareFile,
}

enum SpareFile {
    /// Left by an earlier run.
    Ready(File),
    /// Being filled by a helper thread.
    Filling(std::thread::JoinHandle<io::Result<File>>),
}

impl Spare {
    fn take(self) -> io::Result<(PathBuf, File)> {
        let file = match self.file {
            SpareFile::Ready(file) => file,
            SpareFile::Filling(thread) => thread
                .join()
                .map_err(|_| io::Error::other("the segment preparer panicked"))??,
        };
        Ok((self.path, file))
    }
}

/// Segment numbers in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<u32>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_suffix(".seg").and_then(|s| s.parse().ok()) {
            found.push(n);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Holds the directory for this journal alone while it lives. An advisory
/// `flock` on the lock file: the kernel drops it when the process dies,
/// however it dies, and a second open in the same process conflicts too.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock, BusError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| BusError::Journal(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {
                // Who holds it, for the message a second opener gets.
                let _ = file.set_len(0);
                let _ = file.write_all_at(std::process::id().to_string().as_bytes(), 0);
                Ok(DirLock { _file: file })
            }
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                Err(BusError::JournalLocked(format!(
                    "journal directory {} is in use by another bus (process {})",
                    dir.display(),
                    if holder.is_empty() {
                        "unknown"
                    } else {
                        holder.trim()
                    }
                )))
            }
            Err(fs::TryLockError::Error(e)) => Err(BusError::Journal(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

struct Segment {
    file: File,
    /// Bytes allocated (the file's size).
    size: u64,
    /// Bytes written, header included.
    end: u64,
    /// Written since the last sync.
    dirty: bool,
}

/// Where a frame was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub segment: u32,
    pub offset: u64,
    pub len: u32,
}

/// The open segments: older ones read-only (for copying live records
/// forward), the newest appended to.
pub struct Segments {
    dir: PathBuf,
    segment_bytes: u64,
    /// No spare is prepared that would take the files past this.
    max_bytes: u64,
    open: BTreeMap<u32, Segment>,
    current: u32,
    spare: Option<Spare>,
}

impl Segments {
    /// Opens the existing segments (already replayed: `(number, bytes
    /// written)`) and starts a fresh one after them: an old segment's tail
    /// is never appended to.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        max_bytes: u64,
        existing: &[(u32, u64)],
    ) -> io::Result<Segments> {
        // The spare an earlier run prepared; one cut short by a crash is
        // short (it is written from the start) and made again.
        let path = dir.join(SPARE_FILE);
        let spare = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) if file.metadata()?.len() == segment_bytes => Some(Spare {
                path,
                size: segment_bytes,
                file: SpareFile::Ready(file),
            }),
            _ => None,
        };
        let mut open = BTreeMap::new();
        for &(n, end) in existing {
            let file = OpenOptions::new().read(true).open(segment_path(dir, n))?;
            let size = file.metadata()?.len();
            let seg = Segment {
                file,
                size,
                end,
                dirty: false,
            };
            open.insert(n, seg);
        }
        let mut segments = Segments {
            dir: dir.to_path_buf(),
            segment_bytes,
            max_bytes,
            open,
            current: existing.last().map_or(0, |&(n, _)| n),
            spare,
        };
        segments.roll(0)?;
        Ok(segments)
    }

    pub fn current(&self) -> u32 {
        self.current
    }

    /// Bytes the segment files take on disk, the spare included.
    pub fn disk_bytes(&self) -> u64 {
        self.open.values().map(|s| s.size).sum::<u64>() + self.spare.as_ref().map_or(0, |s| s.size)
    }

    /// Bytes left in the newest segment.
    pub fn room(&self) -> u64 {
        self.open
            .get(&self.current)
            .map_or(0, |s| s.size.saturating_sub(s.end))
    }

    pub fn count(&self) -> usize {
        self.open.len()
    }

    /// Bytes a segment takes on disk (preallocated).
    pub fn size(&self, segment: u32) -> u64 {
        self.open.get(&segment).map_or(0, |s| s.size)
    }

    pub fn segments(&self) -> impl Iterator<Item = u32> + '_ {
        self.open.keys().copied()
    }

    /// Writes frames that must stay together (one record, or one event's
    /// state) to the newest segment, starting a new one when they do not
    /// fit. Returns where they start.
    pub fn append(&mut self, frames: &[u8]) -> io::Result<(u32, u64)> {
        if (frames.len() as u64) > self.room() {
            self.roll(frames.len() as u64)?;
        }
        let current = self.current;
        let seg = self
            .open
            .get_mut(&current)
            .ok_or_else(|| io::Error::other("no open segment"))?;
        seg.file.write_all_at(frames, seg.end)?;
        let at = seg.end;
        seg.end += frames.len() as u64;
        seg.dirty = true;
        Ok((current, at))
    }

    /// Puts everything written so far on stable storage (`fdatasync`).
    pub fn sync(&mut self) -> io::Result<()> {
        for seg in self.open.values_mut().filter(|s| s.dirty) {
            seg.file.sync_data()?;
            seg.dirty = false;
        }
        Ok(())
    }

    /// What was written in a segment, header included.
    pub fn read_written(&self, segment: u32) -> io::Result<Vec<u8>> {
        let seg = self
            .open
            .get(&segment)
            .ok_or_else(|| io::Error::other(format!("segment {segment} is gone")))?;
        let mut buf = vec![0u8; seg.end as usize];
        seg.file.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }

    /// Deletes a segment no live record needs (never the newest).
    pub fn remove(&mut self, segment: u32) -> io::Result<()> {
        if segment == self.current {
            return Ok(());
        }
        if self.open.remove(&segment).is_some() {
            fs::remove_file(segment_path(&self.dir, segment))?;
        }
        Ok(())
    }

    /// Starts the next segment, large enough for `at_least` bytes of frames.
    fn roll(&mut self, at_least: u64) -> io::Result<()> {
        if let Some(seg) = self.open.get_mut(&self.current) {
            if seg.dirty {
                // The old segment's records were handed to the kernel; a
                // later sync covers only the newest file.
                seg.file.sync_data()?;
                seg.dirty = false;
            }
        }
        let next = self.current + 1;
        let size = self
            .segment_bytes
            .max(at_least + SEGMENT_HEADER as u64)
            .next_multiple_of(4096);
        let path = segment_path(&self.dir, next);
        let file = match self.spare.take() {
            Some(spare) if spare.size >= size => {
                let (spare_path, file) = spare.take()?;
                fs::rename(spare_path, &path)?;
                file
            }
            other => {
                self.discard(other);
                // No spare yet (a new directory): a file of the right size
                // whose blocks are allocated as it is written. Later
                // segments come zero-filled.
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                file.set_len(size)?;
                file
            }
        };
        let size = file.metadata()?.len();
        file.write_all_at(&segment_header(next), 0)?;
        file.sync_all()?;
        // The new name must survive a crash before anything is written in it.
        File::open(&self.dir)?.sync_all()?;
        self.open.insert(
            next,
            Segment {
                file,
                size,
                end: SEGMENT_HEADER as u64,
                dirty: false,
            },
        );
        self.current = next;
        self.prepare();
        Ok(())
    }

    /// Starts zero-filling the next segment, unless a spare is ready.
    fn prepare(&mut self) {
        if self.spare.is_some() || self.disk_bytes() + self.segment_bytes > self.max_bytes {
            return;
        }
        let (path, size) = (self.dir.join(SPARE_FILE), self.segment_bytes);
        let target = path.clone();
        let thread = std::thread::Builder::new()
            .name("bootify-journal-prep".into())
            .spawn(move || zero_filled(&target, size));
        // Without a helper thread the next segment is allocated as written.
        if let Ok(thread) = thread {
            self.spare = Some(Spare {
                path,
                size,
                file: SpareFile::Filling(thread),
            });
        }
    }

    fn discard(&self, spare: Option<Spare>) {
        if let Some(spare) = spare {
            if let Ok((path, _)) = spare.take() {
                let _ = fs::remove_file(path);
            }
        }
    }

    /// Waits for the segment being prepared (the next run takes it) and
    /// closes every file: nothing is written after this.
    pub fn close(&mut self) {
        if let Some(spare) = self.spare.take() {
            let _ = spare.take();
        }
        self.open.clear();
    }
}
