//! Measurement behind docs/decisions.md "capture reader": walks a capture with our reader and
//! with `pcap-parser` (DESIGN.md's first choice), counting packets and captured bytes, and prints
//! the time of each. Run: `cargo run --release --example reader_walk -- FILE`.

use std::time::Instant;

fn ours(path: &str) -> (u64, u64) {
    let f = std::fs::File::open(path).expect("open");
    let mut r = meshsniff::pcap::PcapReader::new(f).expect("capture");
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Ok(Some(frame)) = r.next_frame() {
        n += 1;
        bytes += frame.data.len() as u64;
    }
    (n, bytes)
}

fn theirs(path: &str) -> (u64, u64) {
    use pcap_parser::{PcapBlockOwned, PcapError};
    let f = std::fs::File::open(path).expect("open");
    let mut r = pcap_parser::create_reader(1 << 20, f).expect("capture");
    let (mut n, mut bytes) = (0u64, 0u64);
    loop {
        match r.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::Legacy(b) => {
                        n += 1;
                        bytes += b.data.len() as u64;
                    }
                    PcapBlockOwned::NG(pcap_parser::Block::EnhancedPacket(b)) => {
                        n += 1;
                        bytes += b.caplen as u64;
                    }
                    _ => {}
                }
                r.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if r.refill().is_err() {
                    break;
                }
            }
            Err(e) => {
                eprintln!("pcap-parser: {e:?}");
                break;
            }
        }
    }
    (n, bytes)
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: reader_walk FILE");
    for round in 0..3 {
        let t = Instant::now();
        let a = ours(&path);
        let ta = t.elapsed();
        let t = Instant::now();
        let b = theirs(&path);
        let tb = t.elapsed();
        println!(
            "round {round}: ours {:?} for {} packets / {} bytes; pcap-parser {:?} for {} packets / {} bytes",
            ta, a.0, a.1, tb, b.0, b.1
        );
    }
}
