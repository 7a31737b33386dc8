//! The export's line format: writing it, and reading it back with every line checked.
//!
//! ```text
//! {"line":"store","format":"portcullis-store","version":1,"schema":301}
//! {"line":"table","name":"accounts","columns":["id","name",...]}
//! [1,"alice","admin","$argon2id$...",0,null,1700000000,1700000000]
//! ...                                     (every table of tables::TABLES, in that order)
//! {"line":"end","rows":[["classifier_weights",4096],...],"sha256":"<hex>"}
//! ```
//!
//! A row is a JSON array in the table's column order: integers as JSON integers, reals as strings
//! (Rust's shortest round-trip form, so a score survives exactly), text as JSON strings, blobs as
//! base64 strings, NULL as `null`. The last line counts the rows of each table and holds the SHA-256
//! of every byte before it.
//!
//! # Security
//! The reader takes untrusted bytes. Every line is bounded before it is parsed (its table's longest
//! possible row), every marker has exactly its known fields, tables come in the fixed order with
//! exactly their known columns, and every value is checked against its column: type, NULL, size, no
//! NUL in text, finite reals. There is no place in the format for anything but rows of known tables.

use super::tables::{Column, Kind, TABLES, Table, table};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::{BufRead, Read, Write};

/// The `format` of the first line.
pub(crate) const FORMAT: &str = "portcullis-store";
/// The version of this line format (not of the schema, which is the `schema` field).
pub(crate) const VERSION: u32 = 1;
/// The longest marker line (the first, each table's, the last).
const MAX_MARKER_LINE: usize = 64 << 10;
/// The longest text of a real (Rust's `{:?}` of any finite f64 is at most 24 bytes).
pub(crate) const MAX_REAL_TEXT: usize = 32;

/// A line that is not a row.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "snake_case", deny_unknown_fields)]
enum Marker {
    Store { format: String, version: u32, schema: i64 },
    Table { name: String, columns: Vec<String> },
    End { rows: Vec<(String, u64)>, sha256: String },
}

/// One value of a row, typed by its column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

/// What an export holds: the schema version and the rows of each table, and its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The highest migration the exported store had applied.
    pub schema_version: i64,
    /// Every table's name and row count, in export order.
    pub tables: Vec<(&'static str, u64)>,
    /// SHA-256 (hex) of every line before the last.
    pub sha256: String,
}

/// Writes the lines, hashing them and counting rows.
pub(crate) struct Writer<W: Write> {
    out: W,
    hash: ring::digest::Context,
    tables: Vec<(&'static str, u64)>,
    schema_version: i64,
    line: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub(crate) fn start(out: W, schema_version: i64) -> std::io::Result<Writer<W>> {
        let mut w = Writer {
            out,
            hash: ring::digest::Context::new(&ring::digest::SHA256),
            tables: Vec::new(),
            schema_version,
            line: Vec::new(),
        };
        w.marker(&Marker::Store { format: FORMAT.into(), version: VERSION, schema: schema_version })?;
        Ok(w)
    }

    pub(crate) fn table(&mut self, table: &'static Table) -> std::io::Result<()> {
        self.tables.push((table.name, 0));
        let columns = table.columns.iter().map(|c| c.name.to_string()).collect();
        self.marker(&Marker::Table { name: table.name.into(), columns })
    }

    /// One row of the table last started, its values in column order.
    pub(crate) fn row(&mut self, values: &[Value]) -> std::io::Result<()> {
        self.line.clear();
        self.line.push(b'[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.line.push(b',');
            }
            write_value(&mut self.line, value)?;
        }
        self.line.extend_from_slice(b"]\n");
        if let Some((_, rows)) = self.tables.last_mut() {
            *rows += 1;
        }
        self.emit()
    }

    /// Write the last line and return what was written, with the sink.
    pub(crate) fn finish(mut self) -> std::io::Result<(ExportSummary, W)> {
        let sha256 = hex(self.hash.clone().finish().as_ref());
        let rows = self.tables.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        self.line = line_of(&Marker::End { rows, sha256: sha256.clone() })?;
        self.out.write_all(&self.line)?;
        self.out.flush()?;
        Ok((ExportSummary { schema_version: self.schema_version, tables: self.tables, sha256 }, self.out))
    }

    fn marker(&mut self, marker: &Marker) -> std::io::Result<()> {
        self.line = line_of(marker)?;
        self.emit()
    }

    fn emit(&mut self) -> std::io::Result<()> {
        self.hash.update(&self.line);
        self.out.write_all(&self.line)
    }
}

fn line_of(marker: &Marker) -> std::io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(marker)?;
    line.push(b'\n');
    Ok(line)
}

fn write_value(line: &mut Vec<u8>, value: &Value) -> std::io::Result<()> {
    match value {
        Value::Int(None) | Value::Real(None) | Value::Text(None) | Value::Blob(None) => {
            line.extend_from_slice(b"null")
        }
        Value::Int(Some(i)) => line.extend_from_slice(i.to_string().as_bytes()),
        Value::Real(Some(r)) => {
            if !r.is_finite() {
                return Err(std::io::Error::other(format!(
                    "a real that is not finite ({r}) cannot be exported"
                )));
            }
            serde_json::to_writer(&mut *line, &format!("{r:?}"))?
        }
        Value::Text(Some(s)) => serde_json::to_writer(&mut *line, s)?,
        Value::Blob(Some(b)) => serde_json::to_writer(&mut *line, &BASE64.encode(b))?,
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why an export was refused while reading it, with the line it was found on.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot read the store export: {0}")]
    Io(#[from] std::io::Error),
    #[error("store export line {line}: {why}")]
    Refused { line: u64, why: String },
    #[error(
        "the store export is of schema version {archive}, this binary's is {binary}: restore it with the \
         Portcullis version that made it (then upgrade), or export again with this one"
    )]
    SchemaVersion { archive: i64, binary: i64 },
}

/// What [`Reader::next`] found.
#[derive(Debug)]
pub(crate) enum Event {
    /// A table's rows follow.
    Table(&'static Table),
    /// One checked row of the table last started.
    Row(&'static Table, Vec<Value>),
    /// The last line, checked: the export is whole.
    End(ExportSummary),
}

/// Reads an export line by line, checking each line before it is returned.
pub(crate) struct Reader<R: BufRead> {
    input: R,
    schema_version: i64,
    line_no: u64,
    buf: Vec<u8>,
    hash: ring::digest::Context,
    /// The tables seen so far with their rows.
    tables: Vec<(&'static str, u64)>,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    /// Read and check the first line; the export's schema must be `binary_schema`.
    pub(crate) fn open(input: R, binary_schema: i64) -> Result<Reader<R>, FormatError> {
        let mut r = Reader {
            input,
            schema_version: 0,
            line_no: 0,
            buf: Vec::new(),
            hash: ring::digest::Context::new(&ring::digest::SHA256),
            tables: Vec::new(),
            done: false,
        };
        if !r.read_line(MAX_MARKER_LINE)? {
            return Err(r.refused("empty: not a store export"));
        }
        match r.marker()? {
            Marker::Store { format, version, schema } if format == FORMAT && version == VERSION => {
                if schema != binary_schema {
                    return Err(FormatError::SchemaVersion { archive: schema, binary: binary_schema });
                }
                r.schema_version = schema;
            }
            Marker::Store { format, version, .. } => {
                return Err(r.refused(&format!(
                    "format {:?} version {version}, expected {FORMAT:?} version {VERSION}",
                    format
                )));
            }
            _ => return Err(r.refused("the first line must name the format")),
        }
        r.hash.update(&r.buf);
        Ok(r)
    }

    /// The next table, row or the end; `None` after the end.
    pub(crate) fn next(&mut self) -> Result<Option<Event>, FormatError> {
        if self.done {
            return Ok(None);
        }
        let current = self.tables.last().and_then(|(name, _)| table(name));
        let limit = current.map_or(MAX_MARKER_LINE, |t| t.max_line().max(MAX_MARKER_LINE));
        if !self.read_line(limit)? {
            return Err(self.refused("the export ends early (truncated: no end line)"));
        }
        if self.buf.first() == Some(&b'[') {
            let Some(table) = current else {
                return Err(self.refused("a row before any table"));
            };
            let values = self.row(table)?;
            self.hash.update(&self.buf);
            if let Some((_, rows)) = self.tables.last_mut() {
                *rows += 1;
            }
            return Ok(Some(Event::Row(table, values)));
        }
        match self.marker()? {
            Marker::Table { name, columns } => {
                let table = self.next_table(&name, &columns)?;
                self.hash.update(&self.buf);
                self.tables.push((table.name, 0));
                Ok(Some(Event::Table(table)))
            }
            Marker::End { rows, sha256 } => {
                let summary = self.end(rows, sha256)?;
                self.done = true;
                Ok(Some(Event::End(summary)))
            }
            Marker::Store { .. } => Err(self.refused("a second first line")),
        }
    }

    /// The number of the line last read (from 1).
    pub(crate) fn line(&self) -> u64 {
        self.line_no
    }

    /// Read every line to the end (nothing is written anywhere): what `backup --verify` does.
    pub(crate) fn check_all(mut self) -> Result<ExportSummary, FormatError> {
        loop {
            if let Some(Event::End(summary)) = self.next()? {
                return Ok(summary);
            }
        }
    }

    /// The table a table line names: the next one of [`TABLES`], with exactly its columns.
    fn next_table(&self, name: &str, columns: &[String]) -> Result<&'static Table, FormatError> {
        let expected = TABLES.get(self.tables.len());
        let Some(table) = table(name) else {
            return Err(self.refused(&format!(
                "unknown table {:?}: a store export holds only the store's tables",
                name
            )));
        };
        if expected.map(|t| t.name) != Some(table.name) {
            return Err(self.refused(&format!(
                "table {name} out of order (expected {})",
                expected.map_or("the end line", |t| t.name)
            )));
        }
        let want: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        if let Some(unknown) = columns.iter().find(|c| !want.contains(&c.as_str())) {
            return Err(self.refused(&format!("unknown column {:?} in table {name}", unknown)));
        }
        if columns != want {
            return Err(self.refused(&format!("table {name} must have the columns {want:?} in that order")));
        }
        Ok(table)
    }

    fn end(&mut self, rows: Vec<(String, u64)>, sha256: String) -> Result<ExportSummary, FormatError> {
        if self.tables.len() != TABLES.len() {
            return Err(self.refused(&format!(
                "the end line after {} of {} tables (missing {})",
                self.tables.len(),
                TABLES.len(),
                TABLES[self.tables.len()].name
            )));
        }
        let counted: Vec<(String, u64)> = self.tables.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        if rows != counted {
            return Err(self.refused("the row counts of the end line are not the rows in the export"));
        }
        let actual = hex(self.hash.clone().finish().as_ref());
        if sha256 != actual {
            return Err(self.refused("the checksum of the end line does not match the export (altered)"));
        }
        let mut rest = [0u8; 1];
        if self.input.read(&mut rest)? != 0 {
            return Err(self.refused("data after the end line"));
        }
        Ok(ExportSummary { schema_version: self.schema_version, tables: self.tables.clone(), sha256 })
    }

    /// Read the next line into `buf` (with its newline); false at the end of input. A line longer than
    /// `limit` or without its newline is refused.
    fn read_line(&mut self, limit: usize) -> Result<bool, FormatError> {
        self.buf.clear();
        self.line_no += 1;
        let n = (&mut self.input).take(limit as u64 + 1).read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(false);
        }
        if self.buf.last() != Some(&b'\n') {
            return Err(if n > limit {
                self.refused(&format!("longer than the {limit} bytes allowed here"))
            } else {
                self.refused("the export ends inside a line (truncated)")
            });
        }
        Ok(true)
    }

    fn marker(&self) -> Result<Marker, FormatError> {
        serde_json::from_slice(&self.buf).map_err(|e| self.refused(&format!("not a valid line: {e}")))
    }

    fn row(&self, table: &Table) -> Result<Vec<Value>, FormatError> {
        let cells: Vec<Cell<'_>> = serde_json::from_slice(&self.buf)
            .map_err(|e| self.refused(&format!("table {}: not a row: {e}", table.name)))?;
        if cells.len() != table.columns.len() {
            return Err(self.refused(&format!(
                "table {}: {} values for {} columns",
                table.name,
                cells.len(),
                table.columns.len()
            )));
        }
        cells
            .into_iter()
            .zip(table.columns)
            .map(|(cell, column)| {
                check(cell, column).map_err(|why| {
                    self.refused(&format!("table {} column {}: {why}", table.name, column.name))
                })
            })
            .collect()
    }

    fn refused(&self, why: &str) -> FormatError {
        FormatError::Refused { line: self.line_no, why: why.to_string() }
    }
}

/// A JSON value as a row may hold it: null, an integer or a string (borrowed from the line when it
/// has no escapes, so a large blob is not copied before it is decoded).
enum Cell<'a> {
    Null,
    Int(i64),
    Str(Cow<'a, str>),
}

impl<'de> Deserialize<'de> for Cell<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Cell<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("null, an integer or a string")
            }
            fn visit_unit<E>(self) -> Result<Cell<'de>, E> {
                Ok(Cell::Null)
            }
            fn visit_i64<E>(self, v: i64) -> Result<Cell<'de>, E> {
                Ok(Cell::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Cell<'de>, E> {
                i64::try_from(v).map(Cell::Int).map_err(|_| E::custom("an integer beyond 64 bits"))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cell<'de>, E> {
                Ok(Cell::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Cell<'de>, E> {
                Ok(Cell::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Cell<'de>, E> {
                Ok(Cell::Str(Cow::Owned(v)))
            }
        }
        d.deserialize_any(Visit)
    }
}

/// The value `cell` holds for `column`, or why it cannot be one.
fn check(cell: Cell<'_>, column: &Column) -> Result<Value, String> {
    let kind = column.kind;
    match (cell, kind) {
        (Cell::Null, _) if !column.nullable => Err("NULL in a NOT NULL column".into()),
        (Cell::Null, Kind::Int) => Ok(Value::Int(None)),
        (Cell::Null, Kind::Real) => Ok(Value::Real(None)),
        (Cell::Null, Kind::Text(_)) => Ok(Value::Text(None)),
        (Cell::Null, Kind::Blob(_)) => Ok(Value::Blob(None)),
        (Cell::Int(i), Kind::Int) => Ok(Value::Int(Some(i))),
        (Cell::Str(s), Kind::Real) => {
            let r: f64 = (s.len() <= MAX_REAL_TEXT)
                .then(|| s.parse().ok())
                .flatten()
                .filter(|r: &f64| r.is_finite())
                .ok_or_else(|| "not a finite real number".to_string())?;
            Ok(Value::Real(Some(r)))
        }
        (Cell::Str(s), Kind::Text(max)) => {
            if s.len() > max {
                return Err(format!("{} bytes of text, over the {max} allowed", s.len()));
            }
            if s.contains('\0') {
                return Err("a NUL character in text".into());
            }
            Ok(Value::Text(Some(s.into_owned())))
        }
        (Cell::Str(s), Kind::Blob(max)) => {
            if s.len() > max.div_ceil(3) * 4 {
                return Err(format!("over the {max} bytes allowed"));
            }
            let bytes = BASE64.decode(s.as_bytes()).map_err(|e| format!("not base64: {e}"))?;
            if bytes.len() > max {
                return Err(format!("{} bytes, over the {max} allowed", bytes.len()));
            }
            Ok(Value::Blob(Some(bytes)))
        }
        (Cell::Int(_), _) => Err(format!("an integer where {kind:?} belongs")),
        (Cell::Str(_), Kind::Int) => Err("a string where an integer belongs".into()),
    }
}
