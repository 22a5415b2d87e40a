//! Firmware personalities (`shared/MINERS.md`): handshake order, blocking or pipelined
//! behaviour, JSON layout, submit format and nominal hashrate of each firmware family.
//!
//! Where MINERS.md marks a behaviour GUESSED (closed firmware: Antminer, Whatsminer, parts of
//! Braiins), the guess it names is what is simulated here.

use std::fmt;

/// One firmware family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Personality {
    /// NerdMiner V2 (ESP32, software hashing).
    NerdMiner,
    /// NerdNOS (NerdMiner host with a BM1397).
    NerdNos,
    /// Bitaxe / ESP-Miner v2.13+.
    Bitaxe,
    /// NerdQAxe++ (ESP-Miner-NerdQAxePlus).
    NerdQAxe,
    /// Avalon Nano 3s (cgminer 4.11.1 fork).
    Avalon,
    /// Antminer S21, stock firmware (cgminer-like, GUESSED).
    AntminerS21,
    /// Whatsminer btminer (cgminer-like, partly GUESSED).
    Whatsminer,
    /// Braiins OS (ii-stratum fixtures).
    Braiins,
    /// cpuminer-like software miner.
    Cpuminer,
}

/// How a handshake step waits before the next one is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Pipelined: send the next step right away.
    No,
    /// Read exactly one line; it must be this request's reply (cgminer's configure,
    /// NerdMiner's subscribe).
    NextLine,
    /// Handle notifications until this request's reply arrives.
    Reply,
}

/// The method of a handshake step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Configure,
    Subscribe,
    Authorize,
    SuggestDifficulty,
}

impl Method {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Configure => "mining.configure",
            Self::Subscribe => "mining.subscribe",
            Self::Authorize => "mining.authorize",
            Self::SuggestDifficulty => "mining.suggest_difficulty",
        }
    }
}

/// One request of the handshake.
#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub(crate) method: Method,
    /// The params array, already JSON text.
    pub(crate) params: String,
    pub(crate) wait: Wait,
    /// Send only once the authorize reply said `true` (Bitaxe's suggest_difficulty).
    pub(crate) after_authorized: bool,
}

/// Order of the keys and spacing of one request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `{"id":1,"method":"m","params":[..]}`.
    Compact,
    /// `{"id": 1, "method": "m", "params": [..]}`.
    Spaced,
    /// cgminer: `{"params": [..], "id": 1, "method": "m"}`.
    ParamsFirst,
    /// cpuminer: `{"method": "m", "params": [..], "id": 1}`.
    MethodFirst,
}

/// How extranonce2 is derived from the per-job counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum En2Scheme {
    /// NerdMiner: always 1, big-endian (`00000001`).
    FixedOne,
    /// Big-endian counter, zero-padded.
    BigEndian,
    /// Little-endian bytes of a counter (ESP-Miner, cgminer).
    LittleEndian,
}

/// How version bits go into the sixth submit param.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VersionBits {
    /// 5-param submits, no version rolling.
    None,
    /// `rolled ^ base` within the granted mask (ESP-Miner family, Braiins).
    Xor,
    /// NerdNOS: one of `0, 2000, 4000, 6000` with a hard-coded mask, no configure.
    NerdNos,
    /// cgminer/Avalon: the chosen entry of `[0, mask, each single mask bit]`, ORed in.
    Or,
}

impl Personality {
    /// Every personality, in the order `mix` assigns them.
    pub const ALL: [Self; 9] = [
        Self::NerdMiner,
        Self::NerdNos,
        Self::Bitaxe,
        Self::NerdQAxe,
        Self::Avalon,
        Self::AntminerS21,
        Self::Whatsminer,
        Self::Braiins,
        Self::Cpuminer,
    ];

    /// The CLI and report name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::NerdMiner => "nerdminer",
            Self::NerdNos => "nerdnos",
            Self::Bitaxe => "bitaxe",
            Self::NerdQAxe => "nerdqaxe",
            Self::Avalon => "avalon",
            Self::AntminerS21 => "antminer-s21",
            Self::Whatsminer => "whatsminer",
            Self::Braiins => "braiins",
            Self::Cpuminer => "cpuminer",
        }
    }

    /// Parses a CLI name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// Index in [`Self::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    /// Nominal hashrate in hashes per second (MINERS.md §12; vendor figures are GUESSED).
    #[must_use]
    pub const fn hashrate_hps(self) -> f64 {
        match self {
            Self::NerdMiner => 65e3,
            Self::NerdNos => 141e9,
            Self::Bitaxe => 1.07e12,
            Self::NerdQAxe => 4.8e12,
            Self::Avalon => 6e12,
            Self::AntminerS21 => 200e12,
            Self::Whatsminer => 186e12,
            Self::Braiins => 140e12,
            Self::Cpuminer => 5e6,
        }
    }

    /// The user agent of `mining.subscribe`.
    #[must_use]
    pub const fn user_agent(self) -> &'static str {
        match self {
            Self::NerdMiner => "NerdMinerV2/V1.8.3",
            Self::NerdNos => "NerdNOS/V1.7.0",
            Self::Bitaxe => "bitaxe/BM1370/v2.15.0",
            Self::NerdQAxe => "NerdQAxe++/BM1370/v1.0.38",
            Self::Avalon => "cgminer/4.11.1",
            Self::AntminerS21 => "Antminer S21/Fri Oct 11 16:34:48 CST 2024",
            Self::Whatsminer => "whatsminer/v1.0",
            Self::Braiins => "Braiins OS 2019-06-05",
            Self::Cpuminer => "cpuminer/2.5.1",
        }
    }

    /// The first request id on a connection.
    pub(crate) const fn first_id(self) -> u64 {
        match self {
            Self::Avalon | Self::AntminerS21 | Self::Braiins => 0,
            Self::Whatsminer => 196,
            _ => 1,
        }
    }

    const fn layout(self) -> Layout {
        match self {
            Self::NerdMiner | Self::Bitaxe | Self::Braiins => Layout::Compact,
            Self::NerdNos | Self::NerdQAxe => Layout::Spaced,
            Self::Avalon | Self::AntminerS21 | Self::Whatsminer => Layout::ParamsFirst,
            Self::Cpuminer => Layout::MethodFirst,
        }
    }

    pub(crate) const fn en2_scheme(self) -> En2Scheme {
        match self {
            Self::NerdMiner => En2Scheme::FixedOne,
            Self::NerdNos | Self::NerdQAxe | Self::Braiins => En2Scheme::BigEndian,
            _ => En2Scheme::LittleEndian,
        }
    }

    pub(crate) const fn version_bits(self) -> VersionBits {
        match self {
            Self::NerdMiner | Self::Cpuminer => VersionBits::None,
            Self::NerdNos => VersionBits::NerdNos,
            Self::Bitaxe | Self::NerdQAxe | Self::Braiins => VersionBits::Xor,
            Self::Avalon | Self::AntminerS21 | Self::Whatsminer => VersionBits::Or,
        }
    }

    /// NerdMiner prints the nonce with `String(nonce, HEX)`: no zero padding.
    pub(crate) const fn unpadded_nonce(self) -> bool {
        matches!(self, Self::NerdMiner)
    }

    /// cgminer rolls ntime (`roll_work_ntime`); Avalon is the one confirmed from source.
    pub(crate) const fn rolls_ntime(self) -> bool {
        matches!(self, Self::Avalon)
    }

    /// Waits for replies during the handshake (blocking firmware), as opposed to pipelining.
    #[must_use]
    pub fn blocking(self) -> bool {
        self.handshake("u", "p", "127.0.0.1:3333")
            .iter()
            .any(|s| s.wait != Wait::No)
    }

    /// The handshake requests in order.
    pub(crate) fn handshake(self, user: &str, pass: &str, host_port: &str) -> Vec<Step> {
        let (user, pass, ua) = (json_str(user), json_str(pass), json_str(self.user_agent()));
        let step = |method, params: String, wait| Step {
            method,
            params,
            wait,
            after_authorized: false,
        };
        use Method::{Authorize, Configure, Subscribe, SuggestDifficulty};
        match self {
            Self::NerdMiner | Self::NerdNos => {
                let suggest = if self == Self::NerdMiner {
                    "0.00015"
                } else {
                    "128"
                };
                vec![
                    step(Subscribe, format!("[{ua}]"), Wait::NextLine),
                    step(Authorize, format!("[{user}, {pass}]"), Wait::No),
                    step(SuggestDifficulty, format!("[{suggest}]"), Wait::No),
                ]
            }
            Self::Bitaxe => vec![
                step(
                    Configure,
                    r#"[["version-rolling"],{"version-rolling.mask":"ffffffff"}]"#.into(),
                    Wait::No,
                ),
                step(Subscribe, format!("[{ua}]"), Wait::No),
                step(Authorize, format!("[{user},{pass}]"), Wait::No),
                Step {
                    after_authorized: true,
                    ..step(SuggestDifficulty, "[1000]".into(), Wait::No)
                },
            ],
            Self::NerdQAxe => vec![
                step(Subscribe, format!("[{ua}]"), Wait::No),
                step(
                    Configure,
                    r#"[["version-rolling"], {"version-rolling.mask": "1fffe000"}]"#.into(),
                    Wait::No,
                ),
                step(Authorize, format!("[{user}, {pass}]"), Wait::No),
                step(SuggestDifficulty, "[1000]".into(), Wait::No),
            ],
            Self::Avalon => vec![
                step(
                    Configure,
                    r#"[["version-rolling"], {"version-rolling.mask": "ffffffff"}]"#.into(),
                    Wait::NextLine,
                ),
                step(Subscribe, format!("[{ua}]"), Wait::Reply),
                step(Authorize, format!("[{user}, {pass}]"), Wait::Reply),
            ],
            Self::AntminerS21 => vec![
                step(
                    Configure,
                    concat!(
                        r#"[["version-rolling"], {"version-rolling.mask": "1fffe000", "#,
                        r#""version-rolling.min-bit-count": 16}]"#
                    )
                    .into(),
                    Wait::NextLine,
                ),
                step(Subscribe, format!("[{ua}]"), Wait::Reply),
                step(Authorize, format!("[{user}, {pass}]"), Wait::Reply),
            ],
            Self::Whatsminer => vec![
                step(
                    Configure,
                    r#"[["version-rolling"], {"version-rolling.mask": "1fffe000"}]"#.into(),
                    Wait::NextLine,
                ),
                step(
                    Subscribe,
                    format!("[{ua}, \"ae6812eb4cd7735a302a8a9dd95cf71f\"]"),
                    Wait::Reply,
                ),
                step(Authorize, format!("[{user}, {pass}]"), Wait::Reply),
                step(SuggestDifficulty, "[65536]".into(), Wait::No),
            ],
            Self::Braiins => vec![
                step(
                    Configure,
                    concat!(
                        r#"[["version-rolling"],{"version-rolling.mask":"1fffe000","#,
                        r#""version-rolling.min-bit-count":16}]"#
                    )
                    .into(),
                    Wait::No,
                ),
                step(
                    Subscribe,
                    format!("[{ua},null,{},null]", json_str(host_port)),
                    Wait::No,
                ),
                step(Authorize, format!("[{user},\"\"]"), Wait::No),
            ],
            Self::Cpuminer => vec![
                step(Subscribe, format!("[{ua}]"), Wait::Reply),
                step(Authorize, format!("[{user}, {pass}]"), Wait::Reply),
            ],
        }
    }

    /// One request line (with its newline) in this firmware's layout.
    pub(crate) fn request_line(self, id: u64, method: &str, params: &str) -> String {
        match (self, method) {
            // NerdMiner's authorize puts params first (MINERS.md §2.1).
            (Self::NerdMiner | Self::NerdNos, "mining.authorize") => {
                format!("{{\"params\": {params}, \"id\": {id}, \"method\": \"{method}\"}}\n")
            }
            // NerdMiner's submit and suggest_difficulty are compact.
            (Self::NerdMiner, "mining.submit" | "mining.suggest_difficulty") => {
                format!("{{\"id\":{id},\"method\":\"{method}\",\"params\":{params}}}\n")
            }
            _ => match self.layout() {
                Layout::Compact => {
                    format!("{{\"id\":{id},\"method\":\"{method}\",\"params\":{params}}}\n")
                }
                Layout::Spaced => {
                    format!("{{\"id\": {id}, \"method\": \"{method}\", \"params\": {params}}}\n")
                }
                Layout::ParamsFirst => {
                    format!("{{\"params\": {params}, \"id\": {id}, \"method\": \"{method}\"}}\n")
                }
                Layout::MethodFirst => {
                    format!("{{\"method\": \"{method}\", \"params\": {params}, \"id\": {id}}}\n")
                }
            },
        }
    }

    /// The params array of a submit, as JSON text.
    pub(crate) fn submit_params(self, fields: &[String]) -> String {
        let sep = match self.layout() {
            Layout::Compact => ",",
            Layout::Spaced if self == Self::NerdNos => ",",
            _ => ", ",
        };
        let mut out = String::with_capacity(16 + fields.iter().map(|f| f.len() + 4).sum::<usize>());
        out.push('[');
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push_str(sep);
            }
            push_json_str(&mut out, f);
        }
        out.push(']');
        out
    }
}

impl fmt::Display for Personality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Appends `s` as a JSON string literal (hex fields need no escaping; anything else is
/// escaped by `serde_json`).
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&json_str(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_handshake_parses_as_json() {
        for p in Personality::ALL {
            assert_eq!(Personality::parse(p.name()), Some(p));
            for step in p.handshake("bcrt1qx.w", "x", "127.0.0.1:3333") {
                let line = p.request_line(7, step.method.name(), &step.params);
                let v: serde_json::Value = serde_json::from_str(line.trim_end())
                    .unwrap_or_else(|e| panic!("{p}: {line}: {e}"));
                assert_eq!(v["method"], step.method.name());
                assert!(v["params"].is_array(), "{p}: {line}");
            }
            let params = p.submit_params(&["u".into(), "1".into()]);
            let line = p.request_line(9, "mining.submit", &params);
            let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("JSON");
            assert_eq!(v["id"], 9);
        }
        assert!(Personality::Avalon.blocking());
        assert!(!Personality::NerdQAxe.blocking());
    }
}
