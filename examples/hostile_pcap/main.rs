//! Writes one hostile capture shape (issue 11, docs/memory.md) as pcap to stdout, streaming:
//! `cargo run --release --example hostile_pcap -- SHAPE [FLOWS] | meshsniff analyze -`.
//! SHAPE: tcp-out-of-order, h2c-headers, quic-crypto. `bench/memory.sh` runs each one;
//! `--bound MAX_FLOWS COLLECT_BYTES` prints the documented bound for those flags.

mod shapes;

use shapes::Shape;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--bound") {
        // `--bound MAX_FLOWS COLLECT_BYTES`: the documented bound (bytes, without the
        // binary's baseline), from the library's own type sizes.
        let n = |i: usize| args.get(i).and_then(|v| v.parse::<usize>().ok());
        let (Some(max_flows), Some(collect_bytes)) = (n(1), n(2)) else {
            eprintln!("usage: hostile_pcap --bound MAX_FLOWS COLLECT_BYTES");
            std::process::exit(2);
        };
        let cfg = meshsniff::flow::FlowConfig {
            max_flows,
            collect_bytes,
            ..Default::default()
        };
        println!("{}", cfg.memory_bound().total);
        return;
    }
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
        Some(Ok(n)) => n, // 0: a capture without packets (the baseline)
        Some(Err(_)) => {
            eprintln!("hostile_pcap: FLOWS must be an integer");
            std::process::exit(2);
        }
    };
    eprintln!(
        "hostile_pcap: writing {flows} flows of {} (~{} MB)",
        shape.name(),
        shape.bytes_per_flow() * u64::from(flows) / 1_000_000
    );
    // Release builds seal every Initial anew; the memory test (debug) repeats a few.
    let stdout = std::io::stdout().lock();
    match shapes::write(shape, flows, u32::MAX, stdout) {
        Ok(n) => eprintln!("hostile_pcap: {n} bytes written"),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("hostile_pcap: {e}");
            std::process::exit(2);
        }
    }
}
