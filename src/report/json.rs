//! JSON printers: JSON Lines (one object per line, flushed per record when streaming live) and a
//! single JSON document `{"flows":[...],"summary":{...}}` written incrementally.

use super::{FlowRecord, Sink, Summary};
use std::io::{self, Write};

/// `--format jsonl`.
#[derive(Debug)]
pub struct JsonlSink<W: Write> {
    out: W,
    flush_each: bool,
    buf: Vec<u8>,
}

impl<W: Write> JsonlSink<W> {
    /// `flush_each`: flush after every record (live use, so a reader sees flows as they close).
    pub fn new(out: W, flush_each: bool) -> Self {
        JsonlSink {
            out,
            flush_each,
            buf: Vec::with_capacity(4096),
        }
    }
}

impl<W: Write> Sink for JsonlSink<W> {
    fn flow(&mut self, record: &FlowRecord) -> io::Result<()> {
        self.buf.clear();
        super::fastjson::flow(&mut self.buf, record);
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)?;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }
    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, summary)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// `--format json`: one document, streamed (flows are never held in memory).
#[derive(Debug)]
pub struct JsonDocSink<W: Write> {
    out: W,
    count: u64,
    buf: Vec<u8>,
}

impl<W: Write> JsonDocSink<W> {
    pub fn new(out: W) -> Self {
        JsonDocSink {
            out,
            count: 0,
            buf: Vec::with_capacity(4096),
        }
    }
}

impl<W: Write> Sink for JsonDocSink<W> {
    fn flow(&mut self, record: &FlowRecord) -> io::Result<()> {
        self.out.write_all(if self.count == 0 {
            b"{\"flows\":[\n"
        } else {
            b",\n"
        })?;
        self.count += 1;
        self.buf.clear();
        super::fastjson::flow(&mut self.buf, record);
        self.out.write_all(&self.buf)
    }
    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        self.out.write_all(if self.count == 0 {
            b"{\"flows\":["
        } else {
            b"\n"
        })?;
        self.out.write_all(b"],\n\"summary\":")?;
        serde_json::to_writer(&mut self.out, summary)?;
        self.out.write_all(b"}\n")?;
        self.out.flush()
    }
}
