//! Times from the platform (roster times, a command's `issued_at`), parsed with a real date-time library
//! (jiff) rather than by hand.
//!
//! - A time with an offset (`2026-11-24T08:00:00Z`, `…+08:00`, `…-05:30`, fractional seconds allowed) is
//!   that instant: the offset is honoured, whatever it is.
//! - A time without one (`2026-11-24 08:00:00` or `2026-11-24T08:00:00`) is a wall-clock time at the
//!   site, taken in the site's offset (`rollcalls.utc_offset`, the same offset as the roll-call times).
//!   Where no site offset applies (a signed command's `issued_at`) it is refused: a wrong guess would
//!   shift a shift or a session by hours.
//! - Anything else (a date alone, no seconds, a time zone name without an offset, garbage) is refused,
//!   never guessed.

use std::time::SystemTime;

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};

/// What a time is read as when it carries no offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naive {
    /// Refused: the time must say its offset.
    Refuse,
    /// Wall-clock time at the site: this many seconds east of UTC.
    SiteOffset(i32),
}

/// Parses a platform time; the error says what is wrong with `text` (the caller adds where it was).
pub fn parse(text: &str, naive: Naive) -> Result<SystemTime, String> {
    let has_time = text.len() >= 19 && matches!(text.as_bytes().get(10), Some(b'T' | b't' | b' '));
    let clock = text.get(11..).unwrap_or("");
    if !has_time || text.get(16..17) != Some(":") {
        return Err(format!(
            "{text:?} is not a date and time: use RFC 3339 with seconds, e.g. \"2026-11-24T08:00:00+08:00\""
        ));
    }
    // An explicit offset: `Z`, or a sign after the clock time.
    if clock.contains(['Z', 'z', '+', '-']) {
        let timestamp: Timestamp = text.replacen(' ', "T", 1).parse().map_err(|e| format!("{text:?}: {e}"))?;
        return Ok(SystemTime::from(timestamp));
    }
    let offset = match naive {
        Naive::SiteOffset(secs) => secs,
        Naive::Refuse => {
            return Err(format!("{text:?} has no UTC offset: add one, e.g. \"Z\" or \"+08:00\""));
        }
    };
    if clock.contains('[') {
        return Err(format!("{text:?}: a time zone name needs a UTC offset before it, e.g. \"+08:00[Asia/Shanghai]\""));
    }
    let civil: DateTime = text.replacen(' ', "T", 1).parse().map_err(|e| format!("{text:?}: {e}"))?;
    let offset = Offset::from_seconds(offset).map_err(|e| format!("site offset {offset} s: {e}"))?;
    let zoned = civil.to_zoned(TimeZone::fixed(offset)).map_err(|e| format!("{text:?}: {e}"))?;
    Ok(SystemTime::from(zoned.timestamp()))
}

/// RFC 3339 in UTC with seconds (and milliseconds when there are any), as the agent writes times.
pub fn format(t: SystemTime) -> String {
    match Timestamp::try_from(t) {
        Ok(ts) => ts.to_string(),
        Err(_) => humantime::format_rfc3339(t).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UTC8: Naive = Naive::SiteOffset(8 * 3600);

    fn utc(text: &str) -> SystemTime {
        SystemTime::from(text.parse::<Timestamp>().unwrap())
    }

    /// The issue: `2026-11-24 08:00:00` in a UTC+8 hospital was read as UTC, 8 hours off.
    #[test]
    fn naive_roster_time_is_site_local() {
        for text in ["2026-11-24 08:00:00", "2026-11-24T08:00:00", "2026-11-24t08:00:00"] {
            assert_eq!(parse(text, UTC8), Ok(utc("2026-11-24T00:00:00Z")), "{text}");
        }
        assert_eq!(parse("2026-11-24 08:00:00.250", UTC8), Ok(utc("2026-11-24T00:00:00.25Z")));
        assert_eq!(parse("2026-11-24 02:30:00", Naive::SiteOffset(-5 * 3600 - 1800)), Ok(utc("2026-11-24T08:00:00Z")));
        assert_eq!(parse("2026-11-24 08:00:00", Naive::SiteOffset(0)), Ok(utc("2026-11-24T08:00:00Z")));
        let err = parse("2026-11-24 08:00:00", Naive::Refuse).unwrap_err();
        assert!(err.contains("no UTC offset") && err.contains("2026-11-24 08:00:00"), "{err}");
    }

    /// The issue: an explicit `+08:00` was rejected.
    #[test]
    fn explicit_offset_is_honoured() {
        for naive in [UTC8, Naive::SiteOffset(-3600), Naive::Refuse] {
            assert_eq!(parse("2026-11-24T08:00:00+08:00", naive), Ok(utc("2026-11-24T00:00:00Z")));
            assert_eq!(parse("2026-11-24 08:00:00+08:00", naive), Ok(utc("2026-11-24T00:00:00Z")));
            assert_eq!(parse("2026-11-24T08:00:00Z", naive), Ok(utc("2026-11-24T08:00:00Z")));
            assert_eq!(parse("2026-11-24T08:00:00.5z", naive), Ok(utc("2026-11-24T08:00:00.5Z")));
            assert_eq!(parse("2026-11-24T03:00:00-05:00", naive), Ok(utc("2026-11-24T08:00:00Z")));
            assert_eq!(parse("2026-11-24T08:00:00+00:00", naive), Ok(utc("2026-11-24T08:00:00Z")));
        }
    }

    #[test]
    fn ambiguous_and_malformed_times_are_refused_with_the_value() {
        for text in [
            "",
            "2026-11-24",
            "2026-11-24 08:00",
            "2026-11-24T08:00Z",
            "24/11/2026 08:00:00",
            "2026-13-24T08:00:00Z",
            "2026-11-31 08:00:00",
            "2026-11-24T25:00:00+08:00",
            "2026-11-24T08:00:00+8",
            "2026-11-24T08:00:00[Asia/Shanghai]",
            "tomorrow at eight",
            "1764000000",
        ] {
            let err = parse(text, UTC8).expect_err(text);
            assert!(err.contains(&format!("{text:?}")), "{text}: {err}");
        }
    }

    #[test]
    fn formatted_times_parse_back() {
        let t = utc("2026-11-24T08:00:00.125Z");
        assert_eq!(format(t), "2026-11-24T08:00:00.125Z");
        assert_eq!(parse(&format(t), Naive::Refuse), Ok(t));
        assert_eq!(format(utc("2026-11-24T08:00:00Z")), "2026-11-24T08:00:00Z");
    }
}
