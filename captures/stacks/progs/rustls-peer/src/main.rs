//! rustls-peer: a tiny rustls TLS 1.3 client for captures/record-stacks.sh. It writes an NSS key
//! log (rustls::KeyLogFile, path from SSLKEYLOGFILE) and exists only to put rustls' handshake on
//! the wire; it is not part of meshsniff.
//!
//!   rustls-peer ADDR SNI CA N [CERT KEY]   N connections sharing one session store (resumption)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&a[2]).expect("CA");
    for c in rustls_pemfile::certs(&mut &ca[..]) {
        roots.add(c.expect("CA PEM")).expect("CA cert");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots);
    let mut cfg = if a.len() >= 6 {
        let pem = std::fs::read(&a[4]).expect("cert");
        let chain = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<Vec<_>, _>>()
            .expect("cert PEM");
        let key = std::fs::read(&a[5]).expect("key");
        let key = rustls_pemfile::private_key(&mut &key[..])
            .expect("key PEM")
            .expect("a key");
        builder
            .with_client_auth_cert(chain, key)
            .expect("client cert")
    } else {
        builder.with_no_client_auth()
    };
    cfg.key_log = Arc::new(rustls::KeyLogFile::new());
    let cfg = Arc::new(cfg);
    let n: usize = a[3].parse().expect("N");
    for _ in 0..n {
        let name = rustls::pki_types::ServerName::try_from(a[1].clone()).expect("SNI");
        let mut conn = rustls::ClientConnection::new(cfg.clone(), name).expect("conn");
        let mut sock = TcpStream::connect(&a[0]).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
        sock.set_write_timeout(Some(Duration::from_secs(5))).ok();
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        if let Err(e) = tls.write_all(b"GET / HTTP/1.0\r\n\r\n") {
            eprintln!("rustls-peer: {e}");
            continue;
        }
        let mut buf = Vec::new();
        let r = tls.read_to_end(&mut buf);
        println!("{:?} {} bytes {:?}", conn.handshake_kind(), buf.len(), r.err());
        std::thread::sleep(Duration::from_millis(200));
    }
}
