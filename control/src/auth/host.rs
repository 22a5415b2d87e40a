//! The `Host` header check against DNS rebinding.
//!
//! A rebinding page is served from the attacker's own name, which they then point at the
//! pool's address: the browser keeps sending `Host: attacker.example`. So every request whose
//! `Host` names something else than the pool itself is refused, before any other check:
//! - loopback names and addresses: `localhost`, `127.0.0.0/8`, `::1` (`*.localhost` is not
//!   accepted: not every resolver keeps RFC 6761's promise that it is loopback);
//! - the bind address; when the pool binds the unspecified address (`0.0.0.0`, `::`) it is
//!   reached by any of the machine's addresses, so any IP literal: a rebinding attack can
//!   never produce one (the browser would connect to that address, not through a name);
//! - the names the operator configured (a reverse proxy's name, `pool.home.arpa`, ...).
//!
//! The port is not compared (reverse proxies and port forwards change it); names are
//! compared without case and without a trailing dot.

use std::net::IpAddr;

use warppool_core::limits::{ALLOWED_HOSTS_MAX, HOST_HEADER_BYTES_MAX};

use super::AuthError;
use super::secret::truncate;

/// What the `Host` header may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    bind: IpAddr,
    names: Vec<String>,
}

impl AllowedHosts {
    /// Loopback, `bind` (the HTTP listener's address) and `names`.
    ///
    /// # Errors
    /// [`AuthError::InvalidRequest`] for more than [`ALLOWED_HOSTS_MAX`] names or a name that is
    /// not a DNS name.
    pub fn new<S: AsRef<str>>(bind: IpAddr, names: &[S]) -> Result<Self, AuthError> {
        if names.len() > ALLOWED_HOSTS_MAX {
            return Err(AuthError::InvalidRequest {
                field: "allowed_hosts",
                problem: format!("at most {ALLOWED_HOSTS_MAX} names"),
            });
        }
        let names = names
            .iter()
            .map(|name| {
                normal_name(name.as_ref()).ok_or_else(|| AuthError::InvalidRequest {
                    field: "allowed_hosts",
                    problem: format!("{:?} is not a DNS name", name.as_ref()),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { bind, names })
    }

    /// The allowed names (normalised), loopback and the bind address aside.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_loopback() || self.bind.is_unspecified() || ip == self.bind.to_canonical()
    }

    fn allows_name(&self, name: &str) -> bool {
        name == "localhost" || self.names.iter().any(|n| n == name)
    }
}

/// A DNS name lower-cased without its trailing dot, or `None` if it is not one (letters,
/// digits, `-` and `.`, labels of 1 to 63 bytes, at most 253 bytes).
fn normal_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then_some(name)
}

/// The host part of a `Host` header value (`name`, `name:port`, `1.2.3.4:port`,
/// `[v6]:port`): an address or a normalised name. `None` if malformed.
fn parse(header: &str) -> Option<Result<IpAddr, String>> {
    let header = header.trim();
    let (host, port) = if let Some(rest) = header.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = inside.parse().ok()?;
        (Ok(IpAddr::V6(ip)), after.strip_prefix(':'))
    } else {
        let (host, port) = match header.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (header, None),
        };
        let host = match host.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => Ok(IpAddr::V4(ip)),
            Err(_) => Err(normal_name(host)?),
        };
        (host, port)
    };
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.parse::<u16>().is_ok());
    port_ok.then_some(host)
}

/// Refuses a request whose `Host` header (`None` if absent) is not allowed. Call it first
/// for every request of the HTTP API, public or not.
///
/// # Errors
/// [`AuthError::HostNotAllowed`], with the header as received (cut to
/// [`HOST_HEADER_BYTES_MAX`]).
pub fn check_host(host_header: Option<&str>, allowed: &AllowedHosts) -> Result<(), AuthError> {
    let header = host_header.unwrap_or_default();
    let ok = header.len() <= HOST_HEADER_BYTES_MAX
        && match parse(header) {
            Some(Ok(ip)) => allowed.allows_ip(ip),
            Some(Err(name)) => allowed.allows_name(&name),
            None => false,
        };
    if ok {
        return Ok(());
    }
    Err(AuthError::HostNotAllowed {
        host: truncate(header, HOST_HEADER_BYTES_MAX).to_owned(),
    })
}
