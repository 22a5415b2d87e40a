//! The generated self-signed certificate: made once, kept next to the database (the key
//! 0600), so its fingerprint stays the same across restarts. Delete both files to make a new
//! one (a new fingerprint; the phones that trusted the old one must trust it again).

use std::{
    io::Write,
    net::IpAddr,
    os::unix::fs::OpenOptionsExt,
    path::Path,
    time::{Duration, SystemTime},
};

use warppool_core::limits::{HTTPS_SAN_ADDRESSES_MAX, HTTPS_SELF_SIGNED_DAYS};

use super::TlsError;

/// The generated certificate's file name, in the database's directory.
pub const GENERATED_CERT_FILE: &str = "https-cert.pem";
/// The generated key's file name (mode 0600), in the database's directory.
pub const GENERATED_KEY_FILE: &str = "https-key.pem";

const SECS_PER_DAY: u64 = 86_400;

/// The machine's host name (from the kernel), lower-cased, if it is a usable DNS name other
/// than `localhost`.
#[must_use]
pub fn host_name() -> Option<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let host = host.trim().to_ascii_lowercase();
    (!host.is_empty() && host != "localhost" && rcgen_name_ok(&host)).then_some(host)
}

/// The names a generated certificate holds: `localhost`, the machine's host name, `allowed`
/// (`[http] allowed_hosts`), loopback, `listen` (unless unspecified) and the machine's own
/// interface addresses (at most `HTTPS_SAN_ADDRESSES_MAX`; read from the kernel, no network
/// access).
#[must_use]
pub fn machine_names(listen: IpAddr, allowed: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    names.extend(host_name());
    for name in allowed {
        if !names.contains(name) && rcgen_name_ok(name) {
            names.push(name.clone());
        }
    }
    let mut ips: Vec<IpAddr> = vec![
        std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ];
    if !listen.is_unspecified() {
        ips.push(listen);
    }
    let found = interface_addresses();
    if found.len() > HTTPS_SAN_ADDRESSES_MAX {
        tracing::warn!(
            found = found.len(),
            kept = HTTPS_SAN_ADDRESSES_MAX,
            "more interface addresses than a generated certificate names"
        );
    }
    ips.extend(found.into_iter().take(HTTPS_SAN_ADDRESSES_MAX));
    for ip in ips {
        let text = ip.to_string();
        if !names.contains(&text) {
            names.push(text);
        }
    }
    names
}

fn rcgen_name_ok(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The machine's interface addresses (IPv4 and IPv6 except link-local), loopback excluded.
fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocated into `head`, which we free below.
    if unsafe { libc::getifaddrs(&raw mut head) } != 0 {
        return out;
    }
    let mut at = head;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, not freed yet.
        let entry = unsafe { &*at };
        at = entry.ifa_next;
        if entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family field tells its real type; the
        // casts below follow that family.
        let ip = unsafe {
            match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let a = &*entry.ifa_addr.cast::<libc::sockaddr_in>();
                    Some(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()))
                }
                libc::AF_INET6 => {
                    let a = &*entry.ifa_addr.cast::<libc::sockaddr_in6>();
                    Some(IpAddr::from(a.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        let link_local = |ip: &IpAddr| match ip {
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            IpAddr::V4(_) => false,
        };
        if let Some(ip) = ip
            && !ip.is_loopback()
            && !link_local(&ip)
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    // SAFETY: `head` is the list getifaddrs allocated; nothing points into it any more.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Generates the certificate and key in `dir` unless both exist already.
///
/// # Errors
/// [`TlsError`] if they cannot be generated or written.
pub(super) fn ensure(dir: &Path, names: &[String]) -> Result<(), TlsError> {
    let cert_path = dir.join(GENERATED_CERT_FILE);
    let key_path = dir.join(GENERATED_KEY_FILE);
    if cert_path.exists() && key_path.exists() {
        return Ok(());
    }
    let generate = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(generate)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "WarpPool (self-signed)");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now.saturating_sub(Duration::from_secs(SECS_PER_DAY));
    params.not_after = epoch + now + Duration::from_secs(HTTPS_SELF_SIGNED_DAYS * SECS_PER_DAY);
    let key = rcgen::KeyPair::generate().map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::warn!(
        cert = %cert_path.display(),
        names = ?names,
        "generated a self-signed https certificate (compare its fingerprint on first visit)"
    );
    Ok(())
}

/// Writes `bytes` to a new `path` (replacing a lone leftover) with `mode`, synced.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}
