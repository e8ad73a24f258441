//! Registry names: protocol versions, cipher suites (the ones seen in practice; unknown ones
//! keep their number), alert descriptions, named groups.

use std::borrow::Cow;

/// "1.3", "1.2", …, "ssl3", "ssl2", "1.3-draft-28"; unknown values as hex. Known names are
/// static: no allocation per flow.
pub fn version(v: u16) -> Cow<'static, str> {
    match v {
        0x0304 => "1.3".into(),
        0x0303 => "1.2".into(),
        0x0302 => "1.1".into(),
        0x0301 => "1.0".into(),
        0x0300 => "ssl3".into(),
        0x0002 => "ssl2".into(),
        0x7f00..=0x7fff => format!("1.3-draft-{}", v & 0xff).into(),
        0xfb00..=0xfbff => format!("1.3-draft-fb{:02x}", v & 0xff).into(),
        _ => format!("0x{v:04x}").into(),
    }
}

/// IANA cipher suite name, if known.
pub fn cipher(id: u16) -> Option<&'static str> {
    Some(match id {
        0x0000 => "TLS_NULL_WITH_NULL_NULL",
        0x0001 => "TLS_RSA_WITH_NULL_MD5",
        0x0002 => "TLS_RSA_WITH_NULL_SHA",
        0x0004 => "TLS_RSA_WITH_RC4_128_MD5",
        0x0005 => "TLS_RSA_WITH_RC4_128_SHA",
        0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0033 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0x0039 => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
        0x003b => "TLS_RSA_WITH_NULL_SHA256",
        0x003c => "TLS_RSA_WITH_AES_128_CBC_SHA256",
        0x003d => "TLS_RSA_WITH_AES_256_CBC_SHA256",
        0x0067 => "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
        0x006b => "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
        0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0x00ff => "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x1305 => "TLS_AES_128_CCM_8_SHA256",
        0x5600 => "TLS_FALLBACK_SCSV",
        0xc006 => "TLS_ECDHE_ECDSA_WITH_NULL_SHA",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc010 => "TLS_ECDHE_RSA_WITH_NULL_SHA",
        0xc011 => "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        0xc012 => "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xc024 => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        0xc027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0xc028 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xc039 => "TLS_ECDHE_PSK_WITH_NULL_SHA",
        0xc03a => "TLS_ECDHE_PSK_WITH_NULL_SHA256",
        0xc03b => "TLS_ECDHE_PSK_WITH_NULL_SHA384",
        0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xccaa => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        _ => return None,
    })
}

/// NULL-encryption suites: records after ChangeCipherSpec are plaintext plus a MAC.
pub fn cipher_is_null(id: u16) -> bool {
    cipher(id).is_some_and(|n| n.contains("_WITH_NULL_") || n.ends_with("_NULL_NULL"))
}

/// Alert description names (RFC 8446 §6, RFC 5246 §7.2).
pub fn alert(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        _ => return None,
    })
}

/// Named groups (IANA "TLS Supported Groups").
pub fn group(id: u16) -> Cow<'static, str> {
    match id {
        23 => "secp256r1".into(),
        24 => "secp384r1".into(),
        25 => "secp521r1".into(),
        29 => "x25519".into(),
        30 => "x448".into(),
        256 => "ffdhe2048".into(),
        257 => "ffdhe3072".into(),
        258 => "ffdhe4096".into(),
        259 => "ffdhe6144".into(),
        260 => "ffdhe8192".into(),
        0x11ec => "X25519MLKEM768".into(),
        0x6399 => "X25519Kyber768Draft00".into(),
        _ => format!("0x{id:04x}").into(),
    }
}

/// Finished-message hash length of a TLS 1.3 suite (SHA-384 for 0x1302, else SHA-256).
pub fn tls13_hash_len(cipher: u16) -> usize {
    if cipher == 0x1302 { 48 } else { 32 }
}

/// Signature schemes (IANA "TLS SignatureScheme").
pub fn signature_scheme(id: u16) -> Cow<'static, str> {
    match id {
        0x0401 => "rsa_pkcs1_sha256".into(),
        0x0501 => "rsa_pkcs1_sha384".into(),
        0x0601 => "rsa_pkcs1_sha512".into(),
        0x0403 => "ecdsa_secp256r1_sha256".into(),
        0x0503 => "ecdsa_secp384r1_sha384".into(),
        0x0603 => "ecdsa_secp521r1_sha512".into(),
        0x0804 => "rsa_pss_rsae_sha256".into(),
        0x0805 => "rsa_pss_rsae_sha384".into(),
        0x0806 => "rsa_pss_rsae_sha512".into(),
        0x0807 => "ed25519".into(),
        0x0808 => "ed448".into(),
        0x0809 => "rsa_pss_pss_sha256".into(),
        0x080a => "rsa_pss_pss_sha384".into(),
        0x080b => "rsa_pss_pss_sha512".into(),
        0x0201 => "rsa_pkcs1_sha1".into(),
        0x0203 => "ecdsa_sha1".into(),
        0x081a => "ecdsa_brainpoolP256r1tls13_sha256".into(),
        0x081b => "ecdsa_brainpoolP384r1tls13_sha384".into(),
        0x081c => "ecdsa_brainpoolP512r1tls13_sha512".into(),
        // TLS 1.2 SignatureAndHashAlgorithm pairs (RFC 5246 §7.4.1.4.1) not named above.
        0x0101 => "rsa_md5".into(),
        0x0102 => "dsa_md5".into(),
        0x0103 => "ecdsa_md5".into(),
        0x0202 => "dsa_sha1".into(),
        0x0301 => "rsa_sha224".into(),
        0x0302 => "dsa_sha224".into(),
        0x0303 => "ecdsa_sha224".into(),
        0x0402 => "dsa_sha256".into(),
        0x0502 => "dsa_sha384".into(),
        0x0602 => "dsa_sha512".into(),
        _ => format!("0x{id:04x}").into(),
    }
}

/// psk_key_exchange_modes values (RFC 8446 §4.2.9).
pub fn psk_mode(m: u8) -> Cow<'static, str> {
    match m {
        0 => Cow::Borrowed("psk_ke"),
        1 => Cow::Borrowed("psk_dhe_ke"),
        _ => Cow::Owned(format!("0x{m:02x}")),
    }
}
