//! NDJSON files as a replay source: one payload per line, plain, gzip or zstd, in any store
//! `store::Location` opens (a folder, `file://`, `gs://`). This is the form of Cloud Logging's
//! exports to GCS (`*.json`, one `LogEntry` per line).
//!
//! A file is read as a stream: compressed pieces from the store, decompressed a slice at a time,
//! split into lines, so memory holds one batch of lines and one slice's output, whatever the size
//! of the file. The splitter's rules:
//! - a line ends at `\n`; a `\r` just before it is dropped (CRLF files); a last line without
//!   `\n` is still a line;
//! - lines are numbered from 1, counting every line, so `FILE:N` is what an editor shows;
//! - lines holding only spaces, tabs or `\r` are skipped, not errors;
//! - bytes are not checked here: a line that is not UTF-8 or not JSON is the chain's to refuse;
//! - a line longer than [`MAX_LINE`] keeps its first `MAX_LINE` bytes and is marked, so it
//!   becomes a dead letter instead of growing memory without bound.
//!
//! A truncated or corrupt gzip/zstd stream is an error naming the file and the lines read so far.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetResult, GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt};

/// The longest line kept whole: Pub/Sub's own message limit (10 MB).
pub const MAX_LINE: usize = 10 * 1024 * 1024;

/// Compressed input is decompressed this much at a time, which bounds one step's output.
const SLICE: usize = 64 * 1024;

/// A local file is read this much at a time (object_store reads 8 KiB per thread hand-off).
const LOCAL_READ: usize = 1024 * 1024;

/// How a file is compressed, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn name(self) -> &'static str {
        match self {
            Compression::None => "plain",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// The compression of an NDJSON file name (`.ndjson`, `.jsonl` or `.json`, optionally followed by
/// `.gz` or `.zst`), or `None` for any other name.
pub fn compression_of(name: &str) -> Option<Compression> {
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s, Compression::Zstd)
    } else {
        (name, Compression::None)
    };
    [".ndjson", ".jsonl", ".json"].iter().any(|e| stem.ends_with(e)).then_some(compression)
}

#[derive(Debug, thiserror::Error)]
pub enum NdjsonError {
    /// Listing or reading the store failed; a retry may pass.
    // Fields named `error`, not `source`: the text already shows it, and a source would show twice.
    #[error("reading {name}: {error}")]
    Store { name: String, error: object_store::Error },
    /// The compressed stream is truncated or corrupt; retrying will not help.
    #[error(
        "{name}: the {codec} stream is truncated or corrupt after {at} compressed bytes (lines before {line} were \
         read): {error}"
    )]
    Decode { name: String, codec: &'static str, at: u64, line: u64, error: std::io::Error },
}

/// The NDJSON files under `prefix` in path order, leaving out hidden ones (`_`- or `.`-prefixed
/// folders and files, such as replay checkpoints).
pub async fn list(store: &Arc<dyn ObjectStore>, prefix: &ObjectPath) -> Result<Vec<ObjectMeta>, NdjsonError> {
    let listed: Vec<ObjectMeta> = store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|error| NdjsonError::Store { name: prefix.to_string(), error })?;
    let mut files: Vec<ObjectMeta> = listed
        .into_iter()
        .filter(|m| m.location.filename().is_some_and(|n| compression_of(n).is_some()))
        .filter(|m| {
            let relative = m.location.as_ref().strip_prefix(prefix.as_ref()).unwrap_or(m.location.as_ref());
            !super::plan::hidden(relative)
        })
        .collect();
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(files)
}

/// One line of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// From 1, counting blank lines too.
    pub number: u64,
    /// Without its `\n` (or `\r\n`).
    pub payload: Bytes,
    /// Longer than [`MAX_LINE`]: `payload` holds only its first `MAX_LINE` bytes.
    pub cut: bool,
}

/// Splits decompressed blocks into lines; lines inside a block are slices of it (no copy).
#[derive(Debug, Default)]
pub struct Splitter {
    /// The start of a line whose end has not arrived yet.
    carry: Vec<u8>,
    /// The carried line is longer than `MAX_LINE`; the rest of it is dropped.
    cut: bool,
    /// The number of the last line ended.
    last: u64,
}

impl Splitter {
    /// Split `block`, appending the lines it ends to `out`.
    pub fn push(&mut self, block: Bytes, out: &mut VecDeque<Line>) {
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &block) {
            let payload = if self.carry.is_empty() && !self.cut {
                block.slice(start..end)
            } else {
                self.keep(&block[start..end]);
                Bytes::from(std::mem::take(&mut self.carry))
            };
            self.emit(payload, out);
            start = end + 1;
        }
        if start < block.len() {
            self.keep(&block[start..]);
        }
    }

    /// The end of the input: a last line without `\n` is still a line.
    pub fn finish(&mut self, out: &mut VecDeque<Line>) {
        if !self.carry.is_empty() || self.cut {
            let payload = Bytes::from(std::mem::take(&mut self.carry));
            self.emit(payload, out);
        }
    }

    fn keep(&mut self, part: &[u8]) {
        let room = MAX_LINE - self.carry.len();
        self.cut |= part.len() > room;
        self.carry.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn emit(&mut self, mut payload: Bytes, out: &mut VecDeque<Line>) {
        self.last += 1;
        let cut = std::mem::take(&mut self.cut);
        if payload.len() > MAX_LINE {
            payload.truncate(MAX_LINE);
            return out.push_back(Line { number: self.last, payload, cut: true });
        }
        if payload.last() == Some(&b'\r') && !cut {
            payload.truncate(payload.len() - 1);
        }
        if payload.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) && !cut {
            return;
        }
        out.push_back(Line { number: self.last, payload, cut });
    }
}

/// A streaming decompressor: compressed bytes in, decompressed bytes out.
enum Decoder {
    Plain,
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Vec<u8>>>),
}

impl Decoder {
    fn new(compression: Compression) -> std::io::Result<Decoder> {
        Ok(match compression {
            Compression::None => Decoder::Plain,
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new()))),
            Compression::Zstd => Decoder::Zstd(Box::new(zstd::stream::write::Decoder::new(Vec::new())?)),
        })
    }

    /// Decompress a slice; what came out of it (some output may wait for the next slice).
    fn feed(&mut self, input: Bytes) -> std::io::Result<Bytes> {
        let out = match self {
            Decoder::Plain => return Ok(input),
            Decoder::Gzip(d) => {
                d.write_all(&input)?;
                d.get_mut()
            }
            Decoder::Zstd(d) => {
                d.write_all(&input)?;
                d.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// The end of the input: the rest of the output, or an error if the stream is incomplete.
    fn finish(&mut self) -> std::io::Result<Bytes> {
        let out = match self {
            Decoder::Plain => return Ok(Bytes::new()),
            Decoder::Gzip(d) => {
                d.try_finish()?;
                d.get_mut()
            }
            Decoder::Zstd(d) => {
                d.do_finish()?;
                d.get_mut()
            }
        };
        Ok(Bytes::from(std::mem::take(out)))
    }
}

/// The object's bytes: a local file in blocks of [`LOCAL_READ`], anything else as the store sends it.
fn stream(got: GetResult) -> BoxStream<'static, object_store::Result<Bytes>> {
    use std::io::{Read, Seek};
    let (file, path) = match got.payload {
        GetResultPayload::File(file, path) => (file, path),
        GetResultPayload::Stream(s) => return s,
    };
    let fail = |e: std::io::Error| object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) };
    let state = (file, path, got.range.start, got.range.end - got.range.start);
    futures::stream::try_unfold(state, move |(mut file, path, at, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let read = tokio::task::spawn_blocking(move || {
            file.seek(std::io::SeekFrom::Start(at))?;
            let mut block = Vec::with_capacity(LOCAL_READ.min(left as usize));
            (&mut file).take(LOCAL_READ.min(left as usize) as u64).read_to_end(&mut block)?;
            Ok::<_, std::io::Error>((file, block))
        });
        let (file, block) = read.await.map_err(|e| fail(e.into()))?.map_err(fail)?;
        if block.is_empty() {
            let gone = format!("{} ended {left} bytes early", path.display());
            return Err(fail(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, gone)));
        }
        let n = block.len() as u64;
        Ok(Some((Bytes::from(block), (file, path, at + n, left - n))))
    })
    .boxed()
}

/// The lines of one file, read as they are needed.
pub struct Lines {
    name: String,
    compression: Compression,
    input: BoxStream<'static, object_store::Result<Bytes>>,
    /// Input taken from the store but not decompressed yet.
    pending: Bytes,
    decoder: Decoder,
    splitter: Splitter,
    ready: VecDeque<Line>,
    /// Compressed bytes decompressed so far.
    read: u64,
    ended: bool,
}

impl Lines {
    /// Open `path` in `store`; `name` (the file's full location) is used in errors.
    pub async fn open(store: &Arc<dyn ObjectStore>, path: &ObjectPath, name: &str) -> Result<Lines, NdjsonError> {
        let compression = compression_of(path.filename().unwrap_or_default()).unwrap_or(Compression::None);
        let store_error = |error| NdjsonError::Store { name: name.to_owned(), error };
        let input = stream(store.get(path).await.map_err(store_error)?);
        let decoder = Decoder::new(compression).map_err(|error| NdjsonError::Decode {
            name: name.to_owned(),
            codec: compression.name(),
            at: 0,
            line: 1,
            error,
        })?;
        Ok(Lines {
            name: name.to_owned(),
            compression,
            input,
            pending: Bytes::new(),
            decoder,
            splitter: Splitter::default(),
            ready: VecDeque::new(),
            read: 0,
            ended: false,
        })
    }

    /// Compressed bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The next line, or `None` at the end of the file.
    pub async fn next(&mut self) -> Result<Option<Line>, NdjsonError> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if self.ended {
                return Ok(None);
            }
            self.step().await?;
        }
    }

    /// Decompress one slice (reading from the store when none is pending) and split its output.
    async fn step(&mut self) -> Result<(), NdjsonError> {
        if self.pending.is_empty() {
            match self.input.next().await {
                Some(chunk) => {
                    self.pending = chunk.map_err(|error| NdjsonError::Store { name: self.name.clone(), error })?;
                }
                None => {
                    let rest = self.decoder.finish().map_err(|e| self.decode_error(e))?;
                    self.splitter.push(rest, &mut self.ready);
                    self.splitter.finish(&mut self.ready);
                    self.ended = true;
                    return Ok(());
                }
            }
        }
        let slice = self.pending.split_to(self.pending.len().min(SLICE));
        let n = slice.len() as u64;
        let out = self.decoder.feed(slice).map_err(|e| self.decode_error(e))?;
        self.read += n;
        self.splitter.push(out, &mut self.ready);
        Ok(())
    }

    fn decode_error(&self, error: std::io::Error) -> NdjsonError {
        NdjsonError::Decode {
            name: self.name.clone(),
            codec: self.compression.name(),
            at: self.read,
            line: self.splitter.last + 1,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::PutPayload;

    fn split(blocks: &[&[u8]]) -> Vec<(u64, String, bool)> {
        let mut s = Splitter::default();
        let mut out = VecDeque::new();
        for b in blocks {
            s.push(Bytes::copy_from_slice(b), &mut out);
        }
        s.finish(&mut out);
        out.into_iter().map(|l| (l.number, String::from_utf8_lossy(&l.payload).into_owned(), l.cut)).collect()
    }

    fn line(n: u64, text: &str) -> (u64, String, bool) {
        (n, text.into(), false)
    }

    #[test]
    fn splits_exactly_across_blocks() {
        let want = vec![line(1, "{\"a\":1}"), line(2, "{\"b\":2}"), line(3, "{\"c\":3}")];
        assert_eq!(split(&[b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"]), want);
        // Any cut of the input gives the same lines.
        let text = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n";
        for at in 0..text.len() {
            assert_eq!(split(&[&text[..at], &text[at..]]), want, "cut at {at}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(split(&bytes), want);
    }

    #[test]
    fn a_last_line_without_newline_is_a_line() {
        assert_eq!(split(&[b"{}\n[1]"]), vec![line(1, "{}"), line(2, "[1]")]);
        assert_eq!(split(&[b"[1", b"]"]), vec![line(1, "[1]")]);
        assert_eq!(split(&[b""]), vec![]);
    }

    #[test]
    fn crlf_is_one_line_end_and_blank_lines_are_skipped_but_counted() {
        assert_eq!(split(&[b"a\r\nb\r", b"\n"]), vec![line(1, "a"), line(2, "b")]);
        assert_eq!(split(&[b"\n\n  \t\r\na\n\r\n\nb"]), vec![line(4, "a"), line(7, "b")]);
        // A lone \r inside a line stays; only the one before \n (or at the very end) goes.
        assert_eq!(split(&[b"a\rb\n"]), vec![line(1, "a\rb")]);
    }

    #[test]
    fn bytes_are_kept_as_they_are() {
        let mut s = Splitter::default();
        let mut out = VecDeque::new();
        s.push(Bytes::from_static(b"\xff\xfe\n\"\xc3\xa9\"\n"), &mut out);
        assert_eq!(out[0].payload.as_ref(), b"\xff\xfe");
        assert_eq!(out[1].payload.as_ref(), "\"é\"".as_bytes());
    }

    #[test]
    fn an_overlong_line_is_cut_and_marked_and_the_next_line_is_whole() {
        let long = vec![b'x'; MAX_LINE + 10];
        let mut s = Splitter::default();
        let mut out = VecDeque::new();
        s.push(Bytes::from_static(b"{}\n"), &mut out);
        for piece in long.chunks(MAX_LINE / 3) {
            s.push(Bytes::copy_from_slice(piece), &mut out);
        }
        s.push(Bytes::from_static(b"\n[2]\n"), &mut out);
        s.push(Bytes::from(long.clone()), &mut out);
        s.finish(&mut out);
        let got: Vec<(u64, usize, bool)> = out.iter().map(|l| (l.number, l.payload.len(), l.cut)).collect();
        assert_eq!(got, vec![(1, 2, false), (2, MAX_LINE, true), (3, 3, false), (4, MAX_LINE, true)]);
    }

    #[test]
    fn names_give_the_compression() {
        assert_eq!(compression_of("a.ndjson"), Some(Compression::None));
        assert_eq!(compression_of("00:00:00_00:59:59_S0.json"), Some(Compression::None));
        assert_eq!(compression_of("a.jsonl.zst"), Some(Compression::Zstd));
        assert_eq!(compression_of("a.ndjson.gz"), Some(Compression::Gzip));
        assert_eq!(compression_of("a.json.gz"), Some(Compression::Gzip));
        assert_eq!(compression_of("a.parquet"), None);
        assert_eq!(compression_of("a.gz"), None);
        assert_eq!(compression_of("a.ndjson.bz2"), None);
    }

    fn gzip(text: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    async fn read_all(name: &str, data: Vec<u8>) -> Result<Vec<(u64, String)>, NdjsonError> {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = ObjectPath::from(name);
        store.put(&path, PutPayload::from(data)).await.unwrap();
        let mut lines = Lines::open(&store, &path, name).await?;
        let mut got = Vec::new();
        while let Some(l) = lines.next().await? {
            got.push((l.number, String::from_utf8(l.payload.to_vec()).unwrap()));
        }
        Ok(got)
    }

    fn text(n: u64) -> Vec<u8> {
        (1..=n).map(|i| format!("{{\"i\":{i}}}\n")).collect::<String>().into_bytes()
    }

    #[tokio::test]
    async fn reads_plain_gzip_multi_member_gzip_and_zstd() {
        let want: Vec<(u64, String)> = (1..=20_000).map(|i| (i, format!("{{\"i\":{i}}}"))).collect();
        assert_eq!(read_all("a.ndjson", text(20_000)).await.unwrap(), want);
        assert_eq!(read_all("a.ndjson.gz", gzip(&text(20_000))).await.unwrap(), want);
        let whole = text(20_000);
        let (first, second) = whole.split_at(whole.len() / 2 + 3);
        let members = [gzip(first), gzip(second)].concat();
        assert_eq!(read_all("a.json.gz", members).await.unwrap(), want);
        let zst = zstd::encode_all(&whole[..], 1).unwrap();
        assert_eq!(read_all("a.ndjson.zst", zst).await.unwrap(), want);
        // Several frames, as parallel compressors write them.
        let frames = [zstd::encode_all(first, 1).unwrap(), zstd::encode_all(second, 1).unwrap()].concat();
        assert_eq!(read_all("a.ndjson.zst", frames).await.unwrap(), want);
    }

    #[tokio::test]
    async fn a_local_file_is_read_whole_across_its_blocks() {
        let (dir, whole) = (tempfile::tempdir().unwrap(), text(300_000));
        assert!(whole.len() > 2 * LOCAL_READ, "lines cross block ends");
        std::fs::write(dir.path().join("a.ndjson"), &whole).unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir).unwrap());
        let mut lines = Lines::open(&store, &ObjectPath::from("a.ndjson"), "a.ndjson").await.unwrap();
        let mut n = 0;
        while let Some(l) = lines.next().await.unwrap() {
            n += 1;
            assert_eq!((l.number, l.payload.as_ref()), (n, format!("{{\"i\":{n}}}").as_bytes()));
        }
        assert_eq!((n, lines.bytes_read()), (300_000, whole.len() as u64));
    }

    #[tokio::test]
    async fn a_truncated_stream_is_an_error_naming_the_file() {
        let gz = gzip(&text(20_000));
        let err = read_all("x/a.ndjson.gz", gz[..gz.len() - 5].to_vec()).await.unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("x/a.ndjson.gz: the gzip stream is truncated or corrupt after"), "{shown}");
        let err = read_all("a.ndjson.gz", gz[..gz.len() / 2].to_vec()).await.unwrap_err();
        assert!(matches!(err, NdjsonError::Decode { line, .. } if line > 1), "{err}");
        let zst = zstd::encode_all(&text(20_000)[..], 1).unwrap();
        let err = read_all("a.ndjson.zst", zst[..zst.len() / 2].to_vec()).await.unwrap_err();
        assert!(err.to_string().contains("the zstd stream is truncated or corrupt"), "{err}");
        let err = read_all("a.ndjson.gz", b"not gzip at all\n".to_vec()).await.unwrap_err();
        assert!(matches!(err, NdjsonError::Decode { line: 1, .. }), "{err}");
    }
}
