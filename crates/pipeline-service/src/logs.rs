//! Log paging (reference §6.5) with bounded memory.
//!
//! A log is cut greedily into chunks of at most [`CHUNK_BYTES`] UTF-8 bytes, never inside a
//! character; page `after=i` is chunk `i`, answered as `{<taskKey>: chunk, "total": "n",
//! "after": "i+1"}` (`after` only when more follow).
//!
//! Upstream reads the whole log into memory for every page. Here a log is streamed: only the
//! chunk being cut is held (about one chunk). The log of a **finished** container cannot change,
//! so it is read from the API server once and spooled to a local file with its chunk offsets;
//! later pages are read from the file at their offset. A running container's log still grows,
//! so each page streams it again, holding one chunk at a time.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
};

use futures::{AsyncRead, AsyncReadExt as _};
use serde_json::{Map, Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _},
    sync::Mutex,
};

/// Largest chunk: 1 MiB minus 64 KiB, as upstream.
pub const CHUNK_BYTES: usize = 1_048_576 - 65_536;
/// Bytes read from the stream at a time.
const READ_BLOCK: usize = 64 * 1024;

/// Cuts a byte stream into chunks at character boundaries.
#[derive(Debug)]
pub struct Chunker {
    limit: usize,
    current: Vec<u8>,
    /// Chunks completed so far.
    pub count: usize,
}

impl Chunker {
    /// A chunker with chunks of at most `limit` bytes (`limit` ≥ 4, so a character always fits).
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(4),
            current: Vec::new(),
            count: 0,
        }
    }

    /// Adds bytes; calls `emit(index, chunk)` for each chunk completed.
    pub fn push(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(usize, &[u8])) {
        while !bytes.is_empty() {
            // Fill to one byte past the limit: only then is it known where the chunk ends.
            let room = (self.limit + 1).saturating_sub(self.current.len());
            let take = room.min(bytes.len());
            self.current.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.current.len() > self.limit {
                // The longest prefix ending at a character boundary (the next byte starts a character).
                let mut cut = self.limit;
                while cut > 0 && is_continuation(self.current[cut]) {
                    cut -= 1;
                }
                if cut == 0 {
                    cut = self.limit; // not UTF-8 at all: cut anywhere rather than loop
                }
                emit(self.count, &self.current[..cut]);
                self.count += 1;
                self.current.drain(..cut);
            }
        }
    }

    /// Ends the stream: emits the last chunk (an empty log is one empty chunk); returns the total.
    pub fn finish(mut self, emit: &mut impl FnMut(usize, &[u8])) -> usize {
        if !self.current.is_empty() || self.count == 0 {
            emit(self.count, &self.current);
            self.count += 1;
        }
        self.count
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0b1100_0000 == 0b1000_0000
}

/// What page was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// A valid index.
    Index(usize),
    /// `after` was not a number; the text is kept for the message.
    NotANumber(String),
    /// `after` was negative.
    Negative,
}

impl PageRequest {
    /// Reads `after`: absent or empty means page 0.
    #[must_use]
    pub fn parse(after: Option<&str>) -> Self {
        match after.map(str::trim).filter(|a| !a.is_empty()) {
            None => Self::Index(0),
            Some(a) => match a.parse::<i64>() {
                Ok(n) if n < 0 => Self::Negative,
                Ok(n) => usize::try_from(n).map_or(Self::Negative, Self::Index),
                Err(_) => Self::NotANumber(a.to_owned()),
            },
        }
    }
}

/// A page as the reference answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// Chunk `index` of `total`.
    Chunk {
        /// The chunk.
        text: String,
        /// Its index.
        index: usize,
        /// How many chunks there are.
        total: usize,
    },
    /// An invalid `after`: the reference's message.
    Invalid(String),
    /// A message instead of a log (no pods, no logs, an error).
    Message(String),
}

impl Page {
    /// The response body: `{taskKey: chunk, "total": "n", "after": "i+1"}` (all strings), or
    /// `{taskKey: message}` for invalid pages and `{"logs": message}` for messages.
    #[must_use]
    pub fn to_json(&self, task_key: &str) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            Self::Chunk { text, index, total } => {
                m.insert(task_key.to_owned(), json!(text));
                m.insert("total".into(), json!(total.to_string()));
                if index + 1 < *total {
                    m.insert("after".into(), json!((index + 1).to_string()));
                }
            }
            Self::Invalid(msg) => {
                m.insert(task_key.to_owned(), json!(msg));
            }
            Self::Message(msg) => {
                m.insert("logs".into(), json!(msg));
            }
        }
        m
    }
}

/// The reference's answer to an invalid request, before any log is read, if it is invalid.
#[must_use]
pub fn invalid_request(req: &PageRequest) -> Option<Page> {
    match req {
        PageRequest::Index(_) => None,
        PageRequest::NotANumber(a) => Some(Page::Invalid(format!(
            "Invalid pagination parameter: {a} is not a valid number"
        ))),
        PageRequest::Negative => Some(Page::Invalid("Invalid pagination index".into())),
    }
}

/// Streams `reader` and returns chunk `index` (the reader is read to its end to count chunks).
///
/// # Errors
/// Read errors.
pub async fn page_from_stream(
    mut reader: impl AsyncRead + Unpin,
    index: usize,
    limit: usize,
) -> std::io::Result<Page> {
    let mut chunker = Chunker::new(limit);
    let mut wanted: Option<Vec<u8>> = None;
    let mut buf = vec![0u8; READ_BLOCK];
    let mut keep = |i: usize, c: &[u8]| {
        if i == index {
            wanted = Some(c.to_vec());
        }
    };
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        chunker.push(&buf[..n], &mut keep);
    }
    let total = chunker.finish(&mut keep);
    Ok(match wanted {
        Some(bytes) => Page::Chunk {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            index,
            total,
        },
        None => Page::Invalid("Invalid pagination index".into()),
    })
}

/// A finished log on local disk, with where each chunk starts.
#[derive(Debug)]
struct Spooled {
    key: String,
    path: PathBuf,
    /// Start offset of each chunk, plus the end of the log.
    offsets: Vec<u64>,
}

/// Spooled logs of finished containers, the oldest dropped beyond `capacity`.
#[derive(Debug)]
pub struct LogSpool {
    dir: tempfile::TempDir,
    capacity: usize,
    limit: usize,
    entries: Mutex<VecDeque<Spooled>>,
    writer: Mutex<()>,
}

impl LogSpool {
    /// A spool keeping at most `capacity` logs, cut into chunks of `limit` bytes.
    ///
    /// # Errors
    /// When the spool directory cannot be created.
    pub fn new(capacity: usize, limit: usize) -> std::io::Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("pipelines-logs-").tempdir()?,
            capacity: capacity.max(1),
            limit,
            entries: Mutex::new(VecDeque::new()),
            writer: Mutex::new(()),
        })
    }

    /// The spool directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Held while checking for and spooling a log, so that one log is read once even when
    /// several pages of it are asked for at the same time.
    pub async fn writer(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writer.lock().await
    }

    /// Whether the log under `key` is already spooled.
    pub async fn contains(&self, key: &str) -> bool {
        self.entries.lock().await.iter().any(|e| e.key == key)
    }

    /// Spools `reader` under `key` (a finished container's identity), reading it once.
    ///
    /// # Errors
    /// Read or write errors.
    pub async fn store(&self, key: &str, mut reader: impl AsyncRead + Unpin) -> std::io::Result<()> {
        let path = self.dir.path().join(format!("{}.log", rand_suffix()));
        let mut file = tokio::fs::File::create(&path).await?;
        let mut chunker = Chunker::new(self.limit);
        let mut offsets = vec![0u64];
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut buf = vec![0u8; READ_BLOCK];
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            chunker.push(&buf[..n], &mut |_, c| pending.push(c.to_vec()));
            for c in pending.drain(..) {
                file.write_all(&c).await?;
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last + c.len() as u64);
            }
        }
        chunker.finish(&mut |_, c| pending.push(c.to_vec()));
        for c in pending.drain(..) {
            file.write_all(&c).await?;
            let last = offsets.last().copied().unwrap_or(0);
            offsets.push(last + c.len() as u64);
        }
        file.flush().await?;
        let mut entries = self.entries.lock().await;
        entries.retain(|e| e.key != key);
        entries.push_back(Spooled {
            key: key.to_owned(),
            path,
            offsets,
        });
        while entries.len() > self.capacity {
            if let Some(old) = entries.pop_front() {
                let _ = tokio::fs::remove_file(&old.path).await;
            }
        }
        Ok(())
    }

    /// Chunk `index` of the spooled log `key`, or `None` when it is not spooled.
    ///
    /// # Errors
    /// Read errors.
    pub async fn page(&self, key: &str, index: usize) -> std::io::Result<Option<Page>> {
        let (path, range, total) = {
            let entries = self.entries.lock().await;
            let Some(e) = entries.iter().find(|e| e.key == key) else {
                return Ok(None);
            };
            let total = e.offsets.len() - 1;
            if index >= total {
                return Ok(Some(Page::Invalid("Invalid pagination index".into())));
            }
            (e.path.clone(), (e.offsets[index], e.offsets[index + 1]), total)
        };
        let mut file = tokio::fs::File::open(&path).await?;
        file.seek(std::io::SeekFrom::Start(range.0)).await?;
        let len = usize::try_from(range.1 - range.0).unwrap_or(0);
        let mut bytes = vec![0u8; len];
        file.read_exact(&mut bytes).await?;
        Ok(Some(Page::Chunk {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            index,
            total,
        }))
    }
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chunks(data: &[u8], limit: usize, block: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut c = Chunker::new(limit);
        for part in data.chunks(block.max(1)) {
            c.push(part, &mut |_, x| out.push(x.to_vec()));
        }
        c.finish(&mut |_, x| out.push(x.to_vec()));
        out
    }

    #[test]
    fn chunks_are_greedy_and_never_split_a_character() {
        let text = "aé€😀".repeat(50); // 1 + 2 + 3 + 4 bytes per repetition
        for limit in [4, 5, 7, 10, 33] {
            for block in [1, 3, 64, 10_000] {
                let parts = chunks(text.as_bytes(), limit, block);
                assert_eq!(parts.concat(), text.as_bytes(), "limit {limit} block {block}");
                for (i, p) in parts.iter().enumerate() {
                    let s = std::str::from_utf8(p).unwrap();
                    assert!(p.len() <= limit);
                    // Greedy: the next character would not have fit.
                    if let Some(next) = parts.get(i + 1) {
                        let next_char = std::str::from_utf8(next).unwrap().chars().next().unwrap();
                        assert!(s.len() + next_char.len_utf8() > limit, "limit {limit}");
                    }
                }
            }
        }
    }

    #[test]
    fn exact_multiples_and_empty_logs() {
        assert_eq!(
            chunks(b"abcdefgh", 4, 3),
            vec![b"abcd".to_vec(), b"efgh".to_vec()]
        );
        assert_eq!(chunks(b"", 4, 3), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn after_is_parsed_as_the_reference_says() {
        assert_eq!(PageRequest::parse(None), PageRequest::Index(0));
        assert_eq!(PageRequest::parse(Some("")), PageRequest::Index(0));
        assert_eq!(PageRequest::parse(Some("3")), PageRequest::Index(3));
        assert_eq!(PageRequest::parse(Some("-1")), PageRequest::Negative);
        let bad = invalid_request(&PageRequest::parse(Some("x1"))).unwrap();
        assert_eq!(
            bad.to_json("ingestion_task"),
            json!({"ingestion_task": "Invalid pagination parameter: x1 is not a valid number"})
                .as_object()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn responses_carry_after_only_when_more_follow() {
        let p = Page::Chunk {
            text: "x".into(),
            index: 0,
            total: 2,
        };
        assert_eq!(
            Value::Object(p.to_json("t")),
            json!({"t": "x", "total": "2", "after": "1"})
        );
        let p = Page::Chunk {
            text: "y".into(),
            index: 1,
            total: 2,
        };
        assert_eq!(Value::Object(p.to_json("t")), json!({"t": "y", "total": "2"}));
    }

    #[tokio::test]
    async fn streamed_and_spooled_pages_agree() {
        let data: Vec<u8> = (0..10_000u32)
            .flat_map(|i| format!("line {i} ü\n").into_bytes())
            .collect();
        let spool = LogSpool::new(2, 1000).unwrap();
        spool
            .store("k", futures::io::Cursor::new(data.clone()))
            .await
            .unwrap();
        let mut joined = Vec::new();
        let mut i = 0;
        loop {
            let streamed = page_from_stream(futures::io::Cursor::new(data.clone()), i, 1000)
                .await
                .unwrap();
            let spooled = spool.page("k", i).await.unwrap().unwrap();
            assert_eq!(streamed, spooled);
            let Page::Chunk { text, total, .. } = spooled else {
                unreachable!()
            };
            joined.extend_from_slice(text.as_bytes());
            i += 1;
            if i == total {
                break;
            }
        }
        assert_eq!(joined, data);
        assert_eq!(
            spool.page("k", i).await.unwrap(),
            Some(Page::Invalid("Invalid pagination index".into()))
        );
        // Capacity 2: a third log drops the first.
        spool
            .store("k2", futures::io::Cursor::new(b"a".to_vec()))
            .await
            .unwrap();
        spool
            .store("k3", futures::io::Cursor::new(b"b".to_vec()))
            .await
            .unwrap();
        assert!(!spool.contains("k").await);
    }
}
