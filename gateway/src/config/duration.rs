//! Durations in the configuration (`"1s"`, `"250ms"`, `"2h"`): humantime
//! text, bounded so that no timer, deadline or back-off can overflow.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// The longest duration any setting accepts. Far beyond any sensible
/// timeout, far below what `Instant + Duration` can hold.
pub const MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn parse(text: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(text).map_err(|e| format!("invalid duration `{text}`: {e}"))?;
    if d > MAX {
        return Err(format!(
            "duration `{text}` is longer than the maximum of 10 years"
        ));
    }
    Ok(d)
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    humantime_serde::serialize(d, s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// The same for an optional setting.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(d, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_durations_are_refused_not_panicked_on() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("3650d"), Ok(MAX));
        assert!(parse("3651d").is_err());
        // Parses (it fits a u64 of seconds) but would overflow any Instant.
        assert!(parse("500000000000y").is_err_and(|e| e.contains("maximum")));
        assert!(parse("99999999999999999999999y").is_err());
        assert!(parse("soon").is_err());
    }
}
