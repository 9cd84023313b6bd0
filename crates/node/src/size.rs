//! Human sizes: parsing `5GB`, `500MB`, `1.5 TiB`, `1048576`, and printing `5.00 GB`.
//!
//! The original program treats `KB`, `MB`, `GB` and `TB` as powers of 1024 (its
//! README equates 5 GB with 5,368,709,120 bytes), and its quota files hold numbers
//! computed that way. We keep that meaning so existing habits and files carry over,
//! and accept the unambiguous `KiB`/`MiB`/`GiB`/`TiB` spellings as the same thing.

use std::fmt;

/// Why a size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason} (examples: 500MB, 5GB, 1.5TB, 1048576)")]
pub struct SizeError {
    input: String,
    reason: &'static str,
}

const UNITS: [(&str, u64); 13] = [
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kb", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1 << 20),
    ("mb", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1 << 30),
    ("gb", 1 << 30),
    ("gib", 1 << 30),
    ("tb", 1 << 40),
    ("tib", 1 << 40),
];

/// Parses a size such as `5GB` into bytes (1 GB = 1024^3 bytes).
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError {
        input: input.trim().to_string(),
        reason,
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(err("it does not start with a number"));
    }
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier = UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, m)| *m)
        .ok_or_else(|| err("unknown unit; use B, KB, MB, GB or TB"))?;
    let bytes = if let Some((whole, frac)) = number.split_once('.') {
        if frac.contains('.') {
            return Err(err("it has more than one decimal point"));
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err("the number is too large"))?
        };
        let frac_digits = frac.len().min(9) as u32;
        let frac_value: u64 = if frac.is_empty() {
            0
        } else {
            frac[..frac_digits as usize]
                .parse()
                .map_err(|_| err("the number is not valid"))?
        };
        let scale = 10u64.pow(frac_digits);
        let whole_bytes = whole
            .checked_mul(multiplier)
            .ok_or_else(|| err("the size is too large"))?;
        let frac_bytes =
            (u128::from(frac_value) * u128::from(multiplier) / u128::from(scale)) as u64;
        whole_bytes
            .checked_add(frac_bytes)
            .ok_or_else(|| err("the size is too large"))?
    } else {
        number
            .parse::<u64>()
            .map_err(|_| err("the number is too large"))?
            .checked_mul(multiplier)
            .ok_or_else(|| err("the size is too large"))?
    };
    Ok(bytes)
}

/// Displays bytes as the original does: `2.00 KB`, `5.00 GB` (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanSize(pub u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < NAMES.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.2} {}", NAMES[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_originals_examples() {
        assert_eq!(parse_size("5GB"), Ok(5_368_709_120));
        assert_eq!(parse_size("1GB"), Ok(1_073_741_824));
        assert_eq!(parse_size("10GB"), Ok(10_737_418_240));
        assert_eq!(parse_size("500MB"), Ok(500 << 20));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("10mb"), Ok(10 << 20));
        assert_eq!(HumanSize(5_368_709_120).to_string(), "5.00 GB");
        assert_eq!(HumanSize(2048).to_string(), "2.00 KB");
        assert_eq!(HumanSize(17).to_string(), "17 B");
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        for bad in [
            "",
            "GB",
            "5XB",
            "1.2.3GB",
            "99999999999999999999",
            "-5GB",
            "20000000TB",
        ] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains("invalid size"), "{bad}: {e}");
        }
    }

    proptest! {
        #[test]
        fn whole_numbers_with_units_are_exact(n in 0u64..1_000_000, unit in 0usize..UNITS.len()) {
            let (name, mult) = UNITS[unit];
            prop_assert_eq!(parse_size(&format!("{n}{name}")), Ok(n * mult));
        }

        #[test]
        fn never_panics(s in ".{0,20}") {
            let _ = parse_size(&s);
        }
    }
}
