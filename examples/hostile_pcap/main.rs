//! Writes one hostile capture shape (issue 11, docs/memory.md) as pcap to stdout, streaming:
//! `cargo run --release --example hostile_pcap -- SHAPE [FLOWS] | meshsniff analyze -`.
//! SHAPE: tcp-out-of-order, h2c-headers, quic-crypto. `bench/memory.sh` runs each one.

mod shapes;

use shapes::Shape;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(shape) = args.first().and_then(|s| Shape::parse(s)) else {
        let names: Vec<_> = Shape::ALL.iter().map(|s| s.name()).collect();
        eprintln!(
            "usage: hostile_pcap SHAPE [FLOWS]   (SHAPE: {})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    let flows = match args.get(1).map(|f| f.parse::<u32>()) {
        None => 100,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("hostile_pcap: FLOWS must be a positive integer");
            std::process::exit(2);
        }
    };
    // Release builds seal every Initial anew; the memory test (debug) repeats a few.
    let stdout = std::io::stdout().lock();
    match shapes::write(shape, flows, u32::MAX, stdout) {
        Ok(n) => eprintln!(
            "hostile_pcap: {} flows of {}, {n} bytes",
            flows,
            shape.name()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("hostile_pcap: {e}");
            std::process::exit(2);
        }
    }
}
