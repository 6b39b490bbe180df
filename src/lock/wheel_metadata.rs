//! A wheel's core metadata read straight out of its zip over HTTP range requests, as pip's
//! "lazy wheel" does: the end of the archive for its central directory, then the one
//! `*.dist-info/METADATA` entry, inflated. For indexes and mirrors that serve no PEP 658
//! `.metadata` file; a multi-gigabyte wheel costs a few small requests, not a download. The
//! same directory of a wheel on disk gives what it installs ([`installed_size`], for `plan`).

use bytes::Bytes;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;

use crate::http::{Http, HttpError};

/// How much of the archive's end is read first: the end record and, mostly, the directory.
const TAIL: u64 = 64 * 1024;
/// A server that ignores ranges sends the whole file; beyond this size that is refused.
const WHOLE_FILE_LIMIT: usize = 64 * 1024 * 1024;
/// Metadata larger than this is not metadata.
const METADATA_LIMIT: usize = 16 * 1024 * 1024;

const END_OF_DIRECTORY: u32 = 0x0605_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const DIRECTORY_ENTRY: u32 = 0x0201_4b50;
const LOCAL_HEADER: u32 = 0x0403_4b50;

/// Why the metadata could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WheelMetadataError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url} is not a wheel the lock can read: {reason}")]
    Archive { url: String, reason: String },
}

/// Part of the file, and the file's whole size.
struct Slice {
    bytes: Bytes,
    start: u64,
    total: u64,
}

/// The text of the wheel's `METADATA` file.
pub async fn read(http: &Http, url: &str) -> Result<String, WheelMetadataError> {
    let bad = |reason: &str| WheelMetadataError::Archive {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let _permit = http.permit().await;
    let tail = fetch(http, url, &format!("bytes=-{TAIL}")).await?;
    let (directory_offset, directory_size) = directory_location(http, url, &tail)
        .await?
        .ok_or_else(|| bad("no zip end record"))?;
    let directory = if directory_offset >= tail.start {
        let from = usize::try_from(directory_offset - tail.start).map_err(|_| bad("offset"))?;
        let to = from.saturating_add(usize::try_from(directory_size).map_err(|_| bad("size"))?);
        tail.bytes
            .get(from..to)
            .map(|slice| tail.bytes.slice_ref(slice))
            .ok_or_else(|| bad("a directory past the end of the file"))?
    } else {
        let end = directory_offset + directory_size - 1;
        fetch(http, url, &format!("bytes={directory_offset}-{end}"))
            .await?
            .bytes
    };
    let entry = find_metadata(&directory).ok_or_else(|| bad("no *.dist-info/METADATA in it"))?;
    let slack = 64 * 1024;
    let end = entry.local_offset + 30 + entry.compressed + slack;
    let end = end.min(tail.total.saturating_sub(1));
    let local = fetch(http, url, &format!("bytes={}-{end}", entry.local_offset)).await?;
    let header = &local.bytes;
    if le32(header, 0) != Some(LOCAL_HEADER) {
        return Err(bad("no local header where the directory points"));
    }
    let name_len = u64::from(le16(header, 26).ok_or_else(|| bad("a short local header"))?);
    let extra_len = u64::from(le16(header, 28).ok_or_else(|| bad("a short local header"))?);
    let data_start = usize::try_from(30 + name_len + extra_len).map_err(|_| bad("offset"))?;
    let data_end = data_start + usize::try_from(entry.compressed).map_err(|_| bad("size"))?;
    let data = header
        .get(data_start..data_end)
        .ok_or_else(|| bad("METADATA runs past what was read"))?;
    let text = match entry.method {
        0 => data.to_vec(),
        8 => miniz_oxide::inflate::decompress_to_vec_with_limit(data, METADATA_LIMIT)
            .map_err(|_| bad("METADATA does not inflate"))?,
        _ => {
            return Err(bad(
                "METADATA is compressed with a method other than deflate",
            ))
        }
    };
    String::from_utf8(text).map_err(|_| bad("METADATA is not UTF-8"))
}

/// GETs a byte range; a server that ignores ranges answers with the whole (small) file.
async fn fetch(http: &Http, url: &str, range: &str) -> Result<Slice, WheelMetadataError> {
    let response = http
        .send(url, |client| client.get(url).header(RANGE, range))
        .await?;
    let status = response.status();
    if !status.is_success() {
        return Err(HttpError::Status {
            url: url.to_owned(),
            status,
        }
        .into());
    }
    let content_range = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_content_range);
    if status == StatusCode::OK
        && response
            .content_length()
            .is_some_and(|len| len > WHOLE_FILE_LIMIT as u64)
    {
        return Err(WheelMetadataError::Archive {
            url: url.to_owned(),
            reason: "the server ignores ranges and the wheel is too big to read whole".to_owned(),
        });
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|err| HttpError::from_reqwest(url, &err))?;
    let (start, total) = match (status, content_range) {
        (StatusCode::PARTIAL_CONTENT, Some(range)) => range,
        _ => (0, bytes.len() as u64),
    };
    Ok(Slice {
        bytes,
        start,
        total,
    })
}

/// `bytes 100-199/200` -> (100, 200).
fn parse_content_range(text: &str) -> Option<(u64, u64)> {
    let (range, total) = text.strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split('-').next()?.parse().ok()?;
    Some((start, total.parse().ok()?))
}

/// Where the central directory is and how long, from the end record (or its zip64 form).
async fn directory_location(
    http: &Http,
    url: &str,
    tail: &Slice,
) -> Result<Option<(u64, u64)>, WheelMetadataError> {
    let bytes = &tail.bytes;
    let record_at = match end_record(bytes) {
        None => return Ok(None),
        Some(EndRecord::Directory { offset, size }) => return Ok(Some((offset, size))),
        Some(EndRecord::Zip64At(at)) => at,
    };
    let record = if record_at >= tail.start {
        let from = usize::try_from(record_at - tail.start).unwrap_or(usize::MAX);
        bytes.get(from..).map(|slice| bytes.slice_ref(slice))
    } else {
        Some(
            fetch(http, url, &format!("bytes={record_at}-{}", record_at + 55))
                .await?
                .bytes,
        )
    };
    Ok(record.and_then(|record| zip64_directory(&record)))
}

/// What the end of a zip archive says about its central directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndRecord {
    Directory {
        offset: u64,
        size: u64,
    },
    /// The directory is described by a zip64 end record at this offset of the file.
    Zip64At(u64),
}

/// Reads the end record in the last bytes of an archive.
fn end_record(bytes: &[u8]) -> Option<EndRecord> {
    let end = (0..bytes.len().saturating_sub(21))
        .rev()
        .find(|&at| le32(bytes, at) == Some(END_OF_DIRECTORY))?;
    let size = u64::from(le32(bytes, end + 12)?);
    let offset = u64::from(le32(bytes, end + 16)?);
    if size != u64::from(u32::MAX) && offset != u64::from(u32::MAX) {
        return Some(EndRecord::Directory { offset, size });
    }
    // ZIP64: a locator just before the end record points at the zip64 end record.
    let locator = end
        .checked_sub(20)
        .filter(|&at| le32(bytes, at) == Some(ZIP64_LOCATOR))?;
    Some(EndRecord::Zip64At(le64(bytes, locator + 8)?))
}

/// (offset, size) of the central directory from a zip64 end record.
fn zip64_directory(record: &[u8]) -> Option<(u64, u64)> {
    (le32(record, 0) == Some(ZIP64_END)).then_some(())?;
    Some((le64(record, 48)?, le64(record, 40)?))
}

/// An entry of a central directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    method: u16,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
}

/// Every entry of a central directory, with zip64 sizes and offsets resolved.
fn entries(directory: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut at = 0;
    while le32(directory, at) == Some(DIRECTORY_ENTRY) {
        let Some((entry, next)) = entry_at(directory, at) else {
            break;
        };
        entries.push(entry);
        at = next;
    }
    entries
}

fn entry_at(directory: &[u8], at: usize) -> Option<(Entry, usize)> {
    let method = le16(directory, at + 10)?;
    let mut compressed = u64::from(le32(directory, at + 20)?);
    let mut uncompressed = u64::from(le32(directory, at + 24)?);
    let name_len = usize::from(le16(directory, at + 28)?);
    let extra_len = usize::from(le16(directory, at + 30)?);
    let comment_len = usize::from(le16(directory, at + 32)?);
    let mut local_offset = u64::from(le32(directory, at + 42)?);
    let name = directory.get(at + 46..at + 46 + name_len)?;
    let extra = directory.get(at + 46 + name_len..at + 46 + name_len + extra_len)?;
    // Sizes and offsets that do not fit 32 bits live in the zip64 extra field, in this
    // order, each only when its 32-bit field is all ones.
    let all_ones = u64::from(u32::MAX);
    let mut field = 0;
    while field + 4 <= extra.len() {
        let id = le16(extra, field)?;
        let len = usize::from(le16(extra, field + 2)?);
        if id == 1 {
            let mut value = field + 4;
            let mut next = || {
                let read = le64(extra, value);
                value += 8;
                read
            };
            if uncompressed == all_ones {
                uncompressed = next()?;
            }
            if compressed == all_ones {
                compressed = next()?;
            }
            if local_offset == all_ones {
                local_offset = next()?;
            }
        }
        field += 4 + len;
    }
    let entry = Entry {
        name: String::from_utf8_lossy(name).into_owned(),
        method,
        compressed,
        uncompressed,
        local_offset,
    };
    Some((entry, at + 46 + name_len + extra_len + comment_len))
}

/// The top-level `*.dist-info/METADATA` entry of a central directory.
fn find_metadata(directory: &[u8]) -> Option<Entry> {
    entries(directory).into_iter().find(|entry| {
        entry
            .name
            .strip_suffix(".dist-info/METADATA")
            .is_some_and(|folder| !folder.is_empty() && !folder.contains('/'))
    })
}

/// What a wheel on disk installs: the sum of its files' uncompressed sizes, as its central
/// directory lists them (the sizes its RECORD lists, plus RECORD itself). `None` when the file
/// is not a readable zip. Reads the end of the file only, so a multi-gigabyte wheel costs two
/// small reads.
pub fn installed_size(path: &std::path::Path) -> Option<u64> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let total = file.metadata().ok()?.len();
    let mut read_at = |offset: u64, len: u64| -> Option<Vec<u8>> {
        file.seek(SeekFrom::Start(offset)).ok()?;
        let mut bytes = vec![0; usize::try_from(len).ok()?];
        file.read_exact(&mut bytes).ok()?;
        Some(bytes)
    };
    let tail_start = total.saturating_sub(TAIL);
    let tail = read_at(tail_start, total - tail_start)?;
    let (offset, size) = match end_record(&tail)? {
        EndRecord::Directory { offset, size } => (offset, size),
        EndRecord::Zip64At(at) => zip64_directory(&read_at(at, 56)?)?,
    };
    if offset.checked_add(size)? > total || size > METADATA_LIMIT as u64 * 4 {
        return None;
    }
    let directory = read_at(offset, size)?;
    Some(
        entries(&directory)
            .iter()
            .map(|entry| entry.uncompressed)
            .sum(),
    )
}

fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn le64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-entry zip directory, as written by zipfile (stored METADATA).
    fn directory(name: &str, method: u16, compressed: u32, offset: u32) -> Vec<u8> {
        let mut entry = Vec::new();
        entry.extend_from_slice(&DIRECTORY_ENTRY.to_le_bytes());
        entry.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
        entry.extend_from_slice(&method.to_le_bytes());
        entry.extend_from_slice(&[0; 8]); // time, date, crc
        entry.extend_from_slice(&compressed.to_le_bytes());
        entry.extend_from_slice(&compressed.to_le_bytes());
        entry.extend_from_slice(&u16::try_from(name.len()).unwrap().to_le_bytes());
        entry.extend_from_slice(&[0; 12]); // extra, comment, disk, attributes
        entry.extend_from_slice(&offset.to_le_bytes());
        entry.extend_from_slice(name.as_bytes());
        entry
    }

    #[test]
    fn finds_the_top_level_metadata_entry() {
        let mut listing = directory("six.py", 8, 10, 0);
        listing.extend(directory("vendored/x.dist-info/METADATA", 8, 5, 10));
        listing.extend(directory("six-1.17.0.dist-info/METADATA", 8, 42, 200));
        assert_eq!(
            find_metadata(&listing),
            Some(Entry {
                name: "six-1.17.0.dist-info/METADATA".into(),
                method: 8,
                compressed: 42,
                uncompressed: 42,
                local_offset: 200
            })
        );
        assert_eq!(find_metadata(&directory("six.py", 8, 10, 0)), None);
    }

    #[test]
    fn reads_content_ranges() {
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, 200)));
        assert_eq!(parse_content_range("bytes */200"), None);
    }
}
