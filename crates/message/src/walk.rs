//! The MIME walk: an explicit work stack over (buffer, range) jobs, never recursion.
//!
//! Why not the MIME library's own walk: mail-parser 0.11.9 re-scans the rest of the message for every
//! multipart whose boundary is missing (quadratic: 1.2 MB of such parts took 4 s), matches boundaries in
//! the middle of lines, and builds enclosed `message/rfc822` parts as a recursive tree that it copies
//! recursively when they were base64-encoded, which overflowed the stack and aborted the process on
//! 20,000 nested levels. Here every part is one job on a heap stack, depth and part count are checked
//! before a job is pushed, and each multipart body is scanned once per level (depth is bounded), so work
//! is linear in the input for a fixed depth limit.

use crate::header_block::{self, HeaderBlock, RawField};
use crate::limits::{Hits, Limit, MessageLimits};
use crate::view::{Attachment, Defect, PartInfo, TextPart, Url};
use crate::{decode, encoded_word, html, params, urls};
use std::ops::Range;

/// One part still to read: which buffer (0 is the raw message, others are decoded enclosed
/// messages), which bytes, how deep, and its path.
struct Job {
    buf: usize,
    range: Range<usize>,
    depth: usize,
    path: String,
    /// Inside a `multipart/digest`, a part without a type is a message.
    in_digest: bool,
}

/// Everything the walk produced.
#[derive(Default)]
pub(crate) struct Walked {
    pub parts: Vec<PartInfo>,
    pub texts: Vec<TextPart>,
    pub html: Option<String>,
    pub urls: Vec<Url>,
    pub attachments: Vec<Attachment>,
}

pub(crate) struct Walker<'a> {
    limits: &'a MessageLimits,
    pub hits: Hits,
    decoded_total: usize,
    text_total: usize,
    pub out: Walked,
}

/// What a part turned out to be: what to do next.
enum Next {
    Nothing,
    Children(Vec<Job>),
    /// An enclosed message that had to be decoded first.
    Decoded(Vec<u8>, usize, String),
}

impl<'a> Walker<'a> {
    pub fn new(limits: &'a MessageLimits) -> Self {
        Walker { limits, hits: Hits::default(), decoded_total: 0, text_total: 0, out: Walked::default() }
    }

    /// Walk the message whose top-level header block has been split already (`top`).
    pub fn walk(&mut self, raw: &[u8], top: &HeaderBlock) {
        let mut buffers: Vec<Vec<u8>> = Vec::new();
        let top_job = Job { buf: 0, range: 0..raw.len(), depth: 0, path: String::new(), in_digest: false };
        let first = self.part(raw, top, &top_job);
        let mut stack: Vec<Job> = Vec::new();
        self.schedule(first, &mut stack, &mut buffers);
        let mut seen = 1;
        while let Some(job) = stack.pop() {
            if seen >= self.limits.max_parts {
                self.hits.add(Limit::Parts, self.limits.max_parts, &job.path);
                break;
            }
            seen += 1;
            let data: &[u8] = if job.buf == 0 { raw } else { &buffers[job.buf - 1] };
            let block = header_block::split(data, job.range.clone(), self.limits, &mut self.hits, &job.path);
            let next = self.part(data, &block, &job);
            self.schedule(next, &mut stack, &mut buffers);
        }
    }

    fn schedule(&mut self, next: Next, stack: &mut Vec<Job>, buffers: &mut Vec<Vec<u8>>) {
        match next {
            Next::Nothing => {}
            Next::Children(mut jobs) => {
                // Reversed so that popping yields document order.
                jobs.reverse();
                stack.extend(jobs);
            }
            Next::Decoded(bytes, depth, path) => {
                let range = 0..bytes.len();
                buffers.push(bytes);
                stack.push(Job { buf: buffers.len(), range, depth, path, in_digest: false });
            }
        }
    }

    /// Read one part whose header block is `block`; its body runs to the end of the job's range.
    fn part(&mut self, data: &[u8], block: &HeaderBlock, job: &Job) -> Next {
        let (path, depth, in_digest) = (job.path.clone(), job.depth, job.in_digest);
        let end = job.range.end;
        let body = block.body_start.min(end)..end;
        let fields = PartFields::read(data, &block.fields);
        let default_type = if in_digest { "message/rfc822" } else { "text/plain" };
        let ctype = fields.content_type.as_deref().map(params::parse).unwrap_or_default();
        let mime = if ctype.value.contains('/') { ctype.value.clone() } else { default_type.to_string() };
        let disposition = fields.disposition.as_deref().map(params::parse).unwrap_or_default();
        let mut info = PartInfo {
            path: path.clone(),
            depth,
            content_type: mime.clone(),
            transfer_encoding: fields.transfer_encoding.clone(),
            defects: fields.defects(block),
        };
        if !ctype.duplicated.is_empty() || !disposition.duplicated.is_empty() {
            info.defects.push(Defect::DuplicateParameter);
        }
        if !ctype.disagreeing.is_empty() || !disposition.disagreeing.is_empty() {
            info.defects.push(Defect::FilenameMismatch);
        }
        let next = if mime.starts_with("multipart/") {
            self.multipart(data, body.clone(), &ctype, &mime, job, &mut info)
        } else if mime == "message/rfc822" || mime == "message/global" {
            self.enclosed(data, body.clone(), job, &mut info)
        } else {
            None
        };
        let next = next.unwrap_or_else(|| {
            let name = disposition.get("filename").or(ctype.get("name")).map(str::to_string);
            let is_attachment = disposition.value == "attachment" || name.is_some();
            self.leaf(&data[body], &mime, ctype.get("charset"), name, is_attachment, &mut info);
            Next::Nothing
        });
        self.out.parts.push(info);
        next
    }

    /// A multipart: its children as jobs, or `None` to read it as a leaf.
    fn multipart(
        &mut self,
        data: &[u8],
        body: Range<usize>,
        ctype: &params::Params,
        mime: &str,
        job: &Job,
        info: &mut PartInfo,
    ) -> Option<Next> {
        let (path, depth) = (job.path.as_str(), job.depth);
        let Some(boundary) = ctype.get("boundary").filter(|b| !b.is_empty()) else {
            info.defects.push(Defect::MissingBoundary);
            return None;
        };
        if depth + 1 > self.limits.max_depth {
            self.hits.add(Limit::Depth, self.limits.max_depth, path);
            return Some(Next::Nothing);
        }
        let split = split_multipart(data, body, boundary.as_bytes());
        if split.parts.is_empty() {
            info.defects.push(Defect::BoundaryNotFound);
            return None;
        }
        if !split.closed {
            info.defects.push(Defect::MissingClosingBoundary);
        }
        if split.mixed_line_endings {
            info.defects.push(Defect::MixedLineEndings);
        }
        let in_digest = mime == "multipart/digest";
        let jobs = split
            .parts
            .into_iter()
            .enumerate()
            .map(|(i, range)| Job {
                buf: job.buf,
                range,
                depth: depth + 1,
                path: child_path(path, i + 1),
                in_digest,
            })
            .collect();
        Some(Next::Children(jobs))
    }

    /// An enclosed message: walked as its own header block and body, one level deeper.
    fn enclosed(&mut self, data: &[u8], body: Range<usize>, job: &Job, info: &mut PartInfo) -> Option<Next> {
        let (path, depth) = (job.path.as_str(), job.depth);
        if depth + 1 > self.limits.max_depth {
            self.hits.add(Limit::Depth, self.limits.max_depth, path);
            return Some(Next::Nothing);
        }
        let child = child_path(path, 1);
        if matches!(info.transfer_encoding.as_str(), "base64" | "quoted-printable") {
            let (bytes, defect) = decode::body(&data[body], &info.transfer_encoding);
            info.defects.extend(defect);
            if !self.charge(bytes.len(), path) {
                return Some(Next::Nothing);
            }
            return Some(Next::Decoded(bytes, depth + 1, child));
        }
        Some(Next::Children(vec![Job {
            buf: job.buf,
            range: body,
            depth: depth + 1,
            path: child,
            in_digest: false,
        }]))
    }

    /// Take `n` decoded bytes from the whole-message budget; false (and a hit) if it is spent.
    fn charge(&mut self, n: usize, path: &str) -> bool {
        if self.decoded_total.saturating_add(n) > self.limits.max_decoded_bytes {
            self.hits.add(Limit::DecodedBytes, self.limits.max_decoded_bytes, path);
            return false;
        }
        self.decoded_total += n;
        true
    }

    fn leaf(
        &mut self,
        body: &[u8],
        mime: &str,
        charset: Option<&str>,
        name: Option<String>,
        is_attachment: bool,
        info: &mut PartInfo,
    ) {
        let (mut bytes, defect) = decode::body(body, &info.transfer_encoding);
        info.defects.extend(defect);
        let size = bytes.len();
        let keep =
            size.min(self.limits.max_part_bytes).min(self.limits.max_decoded_bytes - self.decoded_total);
        if keep < size {
            let limit =
                if size > self.limits.max_part_bytes { Limit::PartBytes } else { Limit::DecodedBytes };
            let bound = if limit == Limit::PartBytes {
                self.limits.max_part_bytes
            } else {
                self.limits.max_decoded_bytes
            };
            self.hits.add(limit, bound, &info.path);
            bytes.truncate(keep);
        }
        self.decoded_total += keep;
        let is_text = mime == "text/plain" || mime == "text/html";
        if is_text && !is_attachment {
            self.text(bytes, mime == "text/html", charset, info);
            return;
        }
        self.out.attachments.push(Attachment {
            path: info.path.clone(),
            filename: name,
            declared_type: mime.to_string(),
            detected_type: infer::get(&bytes[..bytes.len().min(8192)]).map(|t| t.mime_type()),
            size,
            truncated: bytes.len() < size,
            data: bytes,
        });
    }

    fn text(&mut self, bytes: Vec<u8>, is_html: bool, charset: Option<&str>, info: &PartInfo) {
        let path = info.path.as_str();
        let ascii_as_is =
            |c: &[u8]| encoded_word::is_utf8(c) || encoded_word::is_ascii_superset(c) && bytes.is_ascii();
        let other_charset = charset.map(str::as_bytes).filter(|c| !ascii_as_is(c));
        let decoded = match other_charset.and_then(|c| encoded_word::to_text(c, &bytes)) {
            Some(text) => text,
            // UTF-8, ASCII, or a charset nobody knows: moved, not copied, when it is valid UTF-8.
            None => String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        };
        let room = self.limits.max_text_bytes.saturating_sub(self.text_total);
        let url_room = self.limits.max_urls.saturating_sub(self.out.urls.len());
        let form = is_html && html::has_form_tag(decoded.as_bytes());
        let (mut text, links) = if is_html {
            let r = html::render(&decoded, room.saturating_add(1), url_room);
            if self.out.html.is_none() {
                // Moved, not copied: the source is not needed once rendered.
                let mut source = decoded;
                source.truncate(floor_char_boundary(&source, self.limits.max_text_bytes));
                self.out.html = Some(source);
            }
            (r.text, r.links)
        } else {
            (decoded, Vec::new())
        };
        let mut truncated = false;
        if text.len() > room {
            truncated = true;
            self.hits.add(Limit::TextBytes, self.limits.max_text_bytes, path);
            text.truncate(floor_char_boundary(&text, room));
        }
        self.text_total += text.len();
        self.out.urls.extend(links);
        if !is_html {
            urls::find(&text, self.limits.max_urls, &mut self.out.urls);
        }
        if self.out.urls.len() >= self.limits.max_urls {
            self.hits.add(Limit::Urls, self.limits.max_urls, "message");
        }
        let base64 = info.transfer_encoding == "base64";
        self.out.texts.push(TextPart {
            path: info.path.clone(),
            html: is_html,
            form,
            base64,
            text,
            truncated,
        });
    }
}

pub(crate) fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn child_path(parent: &str, n: usize) -> String {
    if parent.is_empty() { n.to_string() } else { format!("{parent}.{n}") }
}

/// The MIME fields of one part (the first of each; repeats are defects).
struct PartFields {
    content_type: Option<String>,
    transfer_encoding: String,
    disposition: Option<String>,
    content_types: usize,
    transfer_encodings: usize,
}

impl PartFields {
    fn read(data: &[u8], fields: &[RawField]) -> Self {
        let mut f = PartFields {
            content_type: None,
            transfer_encoding: String::new(),
            disposition: None,
            content_types: 0,
            transfer_encodings: 0,
        };
        for field in fields {
            let name = &data[field.name.clone()];
            let name = name.strip_suffix(b" ").unwrap_or(name);
            let value = || header_block::unfolded(&data[field.value.clone()]);
            if name.eq_ignore_ascii_case(b"content-type") {
                f.content_types += 1;
                f.content_type.get_or_insert_with(value);
            } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
                f.transfer_encodings += 1;
                if f.transfer_encodings == 1 {
                    f.transfer_encoding = value().to_ascii_lowercase();
                }
            } else if name.eq_ignore_ascii_case(b"content-disposition") {
                f.disposition.get_or_insert_with(value);
            }
        }
        f
    }

    fn defects(&self, block: &HeaderBlock) -> Vec<Defect> {
        let mut d = Vec::new();
        if self.content_types > 1 {
            d.push(Defect::DuplicateContentType);
        }
        if self.transfer_encodings > 1 {
            d.push(Defect::DuplicateTransferEncoding);
        }
        if block.malformed_line {
            d.push(Defect::MalformedHeaderLine);
        }
        d
    }
}

/// A multipart body cut at its delimiter lines.
struct Split {
    parts: Vec<Range<usize>>,
    closed: bool,
    mixed_line_endings: bool,
}

/// Cut `body` at `--boundary` lines (RFC 2046 section 5.1.1): the line break before a
/// delimiter belongs to it; the preamble and epilogue are dropped. One pass over the body.
fn split_multipart(data: &[u8], body: Range<usize>, boundary: &[u8]) -> Split {
    let mut split = Split { parts: Vec::new(), closed: false, mixed_line_endings: false };
    let (mut crlf, mut lf) = (0usize, 0usize);
    let mut current: Option<usize> = None;
    let mut pos = body.start;
    while pos < body.end {
        let line_end = memchr::memchr(b'\n', &data[pos..body.end]).map_or(body.end, |i| pos + i + 1);
        let line = &data[pos..line_end];
        let rest = line.strip_prefix(b"--").and_then(|l| l.strip_prefix(boundary));
        // Only whitespace may follow (RFC 2046 transport padding): `--b1` must not match `--b10`.
        let rest = rest.filter(|r| {
            let r = r.strip_prefix(b"--").unwrap_or(r);
            r.iter().all(u8::is_ascii_whitespace)
        });
        if let Some(rest) = rest {
            if line.ends_with(b"\r\n") {
                crlf += 1;
            } else if line.ends_with(b"\n") {
                lf += 1;
            }
            if let Some(start) = current.take() {
                split.parts.push(start..line_break_before(data, start, pos));
            }
            if rest.starts_with(b"--") {
                split.closed = true;
                break;
            }
            current = Some(line_end);
        }
        pos = line_end;
    }
    if let Some(start) = current {
        split.parts.push(start..body.end);
    }
    split.mixed_line_endings = crlf > 0 && lf > 0;
    split
}

/// Where the line break ending the line before `pos` starts (not before `start`).
fn line_break_before(data: &[u8], start: usize, pos: usize) -> usize {
    let mut e = pos;
    if e > start && data[e - 1] == b'\n' {
        e -= 1;
    }
    if e > start && data[e - 1] == b'\r' {
        e -= 1;
    }
    e
}
