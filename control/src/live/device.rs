//! What a subscribe user agent says about the device, as the device says it.
//!
//! Firmware reports `<model>/<asic>/<firmware>` (ESP-Miner, NerdQAxe: `bitaxe/BM1370/v2.4.0`,
//! `NerdQAxe++/BM1370/v1.0.38`), `<model>/<firmware>` (`NerdMinerV2/V1.8.3`,
//! `cgminer/4.11.1`, `whatsminer/v1.0`) or a bare name. Nothing is guessed: the model is the
//! first segment, the firmware the last one when there are at least two, the ASIC the middle
//! one when there are three (MINERS.md §5).

/// The parts of a user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Device<'a> {
    /// The first segment (empty without a user agent).
    pub model: &'a str,
    /// The middle segment of a three-part user agent.
    pub asic: Option<&'a str>,
    /// The last segment of a user agent with two parts or more.
    pub firmware: Option<&'a str>,
}

/// Splits `user_agent` (see the module docs).
#[must_use]
pub fn parse(user_agent: Option<&str>) -> Device<'_> {
    let Some(ua) = user_agent.map(str::trim).filter(|s| !s.is_empty()) else {
        return Device::default();
    };
    // Up to three parts without collecting (the workers table parses every worker's agent).
    let mut parts = ua.splitn(3, '/').map(str::trim);
    let model = parts.next().unwrap_or_default();
    match (parts.next(), parts.next()) {
        (None, _) => Device {
            model,
            ..Device::default()
        },
        (Some(firmware), None) => Device {
            model,
            asic: None,
            firmware: Some(firmware),
        },
        // Three or more: the model, the ASIC, and the rest as the firmware.
        (Some(asic), Some(firmware)) => Device {
            model,
            asic: Some(asic),
            firmware: Some(firmware),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_user_agents_split_as_they_are_sent() {
        let bitaxe = parse(Some("bitaxe/BM1370/v2.4.0"));
        assert_eq!(
            (bitaxe.model, bitaxe.asic, bitaxe.firmware),
            ("bitaxe", Some("BM1370"), Some("v2.4.0"))
        );
        let nerd = parse(Some("NerdMinerV2/V1.8.3"));
        assert_eq!(
            (nerd.model, nerd.asic, nerd.firmware),
            ("NerdMinerV2", None, Some("V1.8.3"))
        );
        let octaxe = parse(Some("NerdOCTAXE-γ/BM1370/v1.0.38"));
        assert_eq!(octaxe.model, "NerdOCTAXE-γ");
        assert_eq!(parse(Some("cpuminer")).model, "cpuminer");
        assert_eq!(parse(None), Device::default());
        assert_eq!(parse(Some("  ")), Device::default());
        let long = parse(Some("a/b/c/d"));
        assert_eq!((long.asic, long.firmware), (Some("b"), Some("c/d")));
    }
}
