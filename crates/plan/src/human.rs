//! How liftoff shows a measured duration to people, everywhere (reports, status, trigger
//! details): `44 ms`, `1.2 s`, `3 m 05 s`, `2 h 03 m`. A plan's own durations keep the
//! plan's syntax (`5m`) where they are quoted back.

use std::time::Duration;

/// `44 ms`, `<1 ms`, `1.2 s`, `9 s`, `3 m 05 s`, `2 h 03 m`: at most three significant
/// figures, rounded to the nearest unit shown.
pub fn duration(d: Duration) -> String {
    let ms = (d.as_nanos() + 500_000) / 1_000_000;
    if ms < 1_000 {
        return match ms {
            0 if !d.is_zero() => "<1 ms".to_string(),
            ms => format!("{ms} ms"),
        };
    }
    let tenths = (ms + 50) / 100;
    if tenths < 600 {
        return match (tenths / 10, tenths % 10) {
            (secs, 0) => format!("{secs} s"),
            (secs, tenth) => format!("{secs}.{tenth} s"),
        };
    }
    let secs = (ms + 500) / 1_000;
    if secs < 3_600 {
        return format!("{} m {:02} s", secs / 60, secs % 60);
    }
    let mins = (ms + 30_000) / 60_000;
    format!("{} h {:02} m", mins / 60, mins % 60)
}

/// [`duration`] of a number of seconds (a sample's window); `-` when it is not one.
pub fn duration_secs(secs: f64) -> String {
    Duration::try_from_secs_f64(secs).map_or_else(|_| "-".to_string(), duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> String {
        duration(Duration::from_millis(ms))
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(Duration::from_nanos(44_419_333)), "44 ms");
        assert_eq!(duration_secs(0.044419333), "44 ms");
        assert_eq!(ms(0), "0 ms");
        assert_eq!(duration(Duration::from_micros(300)), "<1 ms");
        assert_eq!(ms(850), "850 ms");
        assert_eq!(ms(1_200), "1.2 s");
        assert_eq!(ms(9_000), "9 s");
        assert_eq!(ms(12_340), "12.3 s");
        assert_eq!(ms(185_000), "3 m 05 s");
        assert_eq!(ms(7_380_000), "2 h 03 m");
        assert_eq!(ms(50 * 3_600_000), "50 h 00 m");
    }

    #[test]
    fn rounding_carries_into_the_next_unit() {
        assert_eq!(ms(999), "999 ms");
        assert_eq!(duration(Duration::from_micros(999_600)), "1 s");
        assert_eq!(ms(59_940), "59.9 s");
        assert_eq!(ms(59_960), "1 m 00 s");
        assert_eq!(ms(3_599_600), "1 h 00 m");
    }

    #[test]
    fn what_is_not_a_duration_is_a_dash() {
        assert_eq!(duration_secs(f64::NAN), "-");
        assert_eq!(duration_secs(-1.0), "-");
        assert_eq!(duration_secs(f64::INFINITY), "-");
    }
}
