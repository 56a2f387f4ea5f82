//! `--rate`: `N/s`, `N/min` or `N/h` (decimals allowed), and the one limiter every worker
//! shares.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second; `None` is no limit (`--rate unlimited`).
    pub per_second: Option<f64>,
}

impl Rate {
    pub fn per_second(n: f64) -> Self {
        Rate {
            per_second: Some(n),
        }
    }
    pub const UNLIMITED: Rate = Rate { per_second: None };
}

const MIN_PER_SECOND: f64 = 1.0 / 3600.0;
const MAX_PER_SECOND: f64 = 1_000_000.0;

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("unlimited") {
            return Ok(Rate::UNLIMITED);
        }
        let bad =
            || format!("'{s}' is not a rate (write it as 10/s, 600/min, 1000/h or unlimited)");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let n: f64 = n.trim().parse().map_err(|_| bad())?;
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            _ => return Err(bad()),
        };
        if !n.is_finite() || n <= 0.0 {
            return Err(format!("'{s}': the rate must be above zero (or unlimited)"));
        }
        let per_second = n / seconds;
        // Slower than one request an hour would take days for a handful of rows; faster than
        // a million a second is no limit at all: both are typing mistakes.
        if !(MIN_PER_SECOND..=MAX_PER_SECOND).contains(&per_second) {
            return Err(format!(
                "'{s}': give a rate between 1/h and 1000000/s (or unlimited)"
            ));
        }
        Ok(Rate::per_second(per_second))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per_second {
            None => f.write_str("unlimited"),
            Some(r) if r >= 1.0 => write!(f, "{}/s", trim(r)),
            Some(r) if r * 60.0 >= 1.0 => write!(f, "{}/min", trim(r * 60.0)),
            Some(r) => write!(f, "{}/h", trim(r * 3600.0)),
        }
    }
}

/// A rate achieved (rows or requests a second) with as many digits as a person reads:
/// `1,234`, `12.5`, `0.8`, `0.042`; never `1234.5678901`.
pub fn shown(per_second: f64) -> String {
    if !per_second.is_finite() || per_second <= 0.0 {
        return "0".into();
    }
    if per_second >= 99.95 {
        let whole = format!("{:.0}", per_second);
        let mut out = String::with_capacity(whole.len() + whole.len() / 3);
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(digit);
        }
        out
    } else if per_second >= 0.095 {
        format!("{per_second:.1}")
    } else {
        // Two significant digits: a slow run is not shown as 0.0.
        let decimals = (1.0 - per_second.log10().floor()) as usize;
        trim_zeros(format!("{per_second:.decimals$}"))
    }
}

fn trim_zeros(s: String) -> String {
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A GCRA limiter with a burst of one: requests are spaced evenly, so no one-second window
/// holds more than the rate plus one.
pub struct Limiter {
    inner: Option<DefaultDirectRateLimiter>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Self {
        let inner = rate.per_second.map(|r| {
            let period = Duration::from_secs_f64(1.0 / r).max(Duration::from_nanos(1));
            let quota = Quota::with_period(period)
                .expect("period is positive")
                .allow_burst(NonZeroU32::MIN);
            DefaultDirectRateLimiter::direct(quota)
        });
        Limiter { inner }
    }

    /// Blocks until the next request may go.
    pub fn wait(&self) {
        let Some(limiter) = &self.inner else { return };
        let clock = DefaultClock::default();
        while let Err(not_until) = limiter.check() {
            std::thread::sleep(not_until.wait_time_from(clock.now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_shown_with_the_digits_a_person_reads() {
        for (rate, text) in [
            (1234.5678901, "1,235"),
            (1_234_567.4, "1,234,567"),
            (999.6, "1,000"),
            (100.0, "100"),
            (99.96, "100"),
            (12.54, "12.5"),
            (0.8, "0.8"),
            (0.0423, "0.042"),
            (0.00312, "0.0031"),
            (0.0, "0"),
            (f64::INFINITY, "0"),
        ] {
            assert_eq!(shown(rate), text, "{rate}");
        }
    }

    #[test]
    fn rates_parse_in_every_unit() {
        assert_eq!("50/s".parse::<Rate>().unwrap(), Rate::per_second(50.0));
        assert_eq!("120/min".parse::<Rate>().unwrap(), Rate::per_second(2.0));
        assert_eq!("1.5/s".parse::<Rate>().unwrap(), Rate::per_second(1.5));
        assert_eq!("3600/h".parse::<Rate>().unwrap(), Rate::per_second(1.0));
        assert_eq!("unlimited".parse::<Rate>().unwrap(), Rate::UNLIMITED);
        assert!("0/s".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
        assert!("10/day".parse::<Rate>().is_err());
        for absurd in ["1e-300/s", "1e300/s", "0.5/h", "NaN/s", "inf/s"] {
            assert!(absurd.parse::<Rate>().is_err(), "{absurd}");
        }
    }

    #[test]
    fn rates_print_in_the_largest_whole_unit() {
        assert_eq!(Rate::per_second(0.5).to_string(), "30/min");
        assert_eq!(Rate::per_second(50.0).to_string(), "50/s");
    }
}
