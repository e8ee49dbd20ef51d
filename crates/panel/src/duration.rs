//! Durations written as Go writes them (`52h44m37s`, `15s`), the format the Katalog API and
//! seed 004 use for uptime and resync.

use std::time::Duration;

/// `d` in whole seconds as Go's `time.Duration.String()` would print it after rounding to a
/// second: hours, minutes and seconds, leading zero units dropped (`0s` for zero).
#[must_use]
pub fn go_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(Duration::from_secs(0)), "0s");
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_secs(65)), "1m5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(
            go_duration(Duration::from_secs(52 * 3600 + 44 * 60 + 37)),
            "52h44m37s"
        );
    }
}
