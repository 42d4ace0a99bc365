//! Arguments of the cache directives, parsed without nginx types.

use super::error::ConfError;

/// The smallest zone nginx's slab allocator can manage usefully: eight pages.
pub const MIN_ZONE_SIZE: usize = 8 * 4096;

/// Parses a size in nginx's syntax: a number with an optional `k` or `m`
/// suffix, in either case.
pub fn parse_size(value: &[u8]) -> Option<usize> {
    let (digits, scale) = match value.last()? {
        b'k' | b'K' => (value.get(..value.len() - 1)?, 1024),
        b'm' | b'M' => (value.get(..value.len() - 1)?, 1024 * 1024),
        _ => (value, 1),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number: usize = core::str::from_utf8(digits).ok()?.parse().ok()?;
    number.checked_mul(scale)
}

/// Parses a time in nginx's syntax into milliseconds: one or more numbers
/// with units `y`, `M`, `w`, `d`, `h`, `m`, `s`, `ms`, each at most once and
/// in that order, where a bare number means seconds, e.g. `90`, `1m30s`,
/// `500ms`. Like nginx, it rejects `30s30s` and `1s1m`.
pub fn parse_time(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut previous_scale = u64::MAX;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let (number, tail) = rest.split_at(digits);
        let number: u64 = core::str::from_utf8(number).ok()?.parse().ok()?;
        let (scale, tail) = match tail {
            [b'm', b's', tail @ ..] => (1, tail),
            [b's', tail @ ..] => (1000, tail),
            [b'm', tail @ ..] => (60_000, tail),
            [b'h', tail @ ..] => (3_600_000, tail),
            [b'd', tail @ ..] => (86_400_000, tail),
            [b'w', tail @ ..] => (7 * 86_400_000, tail),
            [b'M', tail @ ..] => (30 * 86_400_000, tail),
            [b'y', tail @ ..] => (365 * 86_400_000, tail),
            [] => (1000, tail),
            _ => return None,
        };
        if scale >= previous_scale {
            return None;
        }
        previous_scale = scale;
        total = total.checked_add(number.checked_mul(scale)?)?;
        rest = tail;
    }
    Some(total)
}

/// Parses `zone=name:size` into the zone name and its size in bytes.
pub fn parse_zone(arg: &[u8]) -> Result<(&[u8], usize), ConfError> {
    let invalid = || ConfError::InvalidValue(String::from_utf8_lossy(arg).into_owned());
    let spec = arg.strip_prefix(b"zone=").ok_or_else(invalid)?;
    let colon = spec
        .iter()
        .rposition(|&byte| byte == b':')
        .ok_or_else(invalid)?;
    let (name, size) = spec.split_at(colon);
    let size = size.get(1..).unwrap_or_default();
    if name.is_empty() {
        return Err(invalid());
    }
    let bytes = parse_size(size)
        .ok_or_else(|| ConfError::InvalidZoneSize(String::from_utf8_lossy(size).into_owned()))?;
    if bytes < MIN_ZONE_SIZE {
        return Err(ConfError::ZoneTooSmall(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    Ok((name, bytes))
}

/// The answer kinds that one `authgear_cache_valid` names.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ValidKinds {
    pub valid: bool,
    pub invalid: bool,
    pub none: bool,
}

/// Parses the arguments of `authgear_cache_valid [valid] [invalid] [none]
/// time`. Without kinds, the time applies to all three.
pub fn parse_valid(args: &[&[u8]]) -> Result<(ValidKinds, u64), ConfError> {
    let (time, kinds) = args
        .split_last()
        .ok_or_else(|| ConfError::InvalidValue(String::new()))?;
    let time = parse_time(time)
        .ok_or_else(|| ConfError::InvalidTime(String::from_utf8_lossy(time).into_owned()))?;

    let mut selected = ValidKinds::default();
    for kind in kinds {
        let flag = match *kind {
            b"valid" => &mut selected.valid,
            b"invalid" => &mut selected.invalid,
            b"none" => &mut selected.none,
            other => {
                return Err(ConfError::InvalidValue(
                    String::from_utf8_lossy(other).into_owned(),
                ))
            }
        };
        if *flag {
            return Err(ConfError::DuplicateValue(
                String::from_utf8_lossy(kind).into_owned(),
            ));
        }
        *flag = true;
    }
    if kinds.is_empty() {
        selected = ValidKinds {
            valid: true,
            invalid: true,
            none: true,
        };
    }
    Ok((selected, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_size_units() {
        let cases: &[(&str, Option<usize>)] = &[
            ("1024", Some(1024)),
            ("64k", Some(65536)),
            ("10M", Some(10 * 1024 * 1024)),
            ("1m", Some(1024 * 1024)),
            ("", None),
            ("m", None),
            ("1g", None),
            ("-1", None),
            ("1.5m", None),
            ("99999999999999999999999m", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_size(value.as_bytes()), *expected, "size {value:?}");
        }
    }

    #[test]
    fn parse_time_units() {
        let cases: &[(&str, Option<u64>)] = &[
            ("30", Some(30_000)),
            ("30s", Some(30_000)),
            ("500ms", Some(500)),
            ("1m", Some(60_000)),
            ("1m30s", Some(90_000)),
            ("1h", Some(3_600_000)),
            ("2d", Some(172_800_000)),
            ("0", Some(0)),
            ("", None),
            ("s", None),
            ("10x", None),
            ("1.5s", None),
            ("m5", None),
            ("30s30s", None),
            ("1s1m", None),
            ("1h1h", None),
            ("1d2h3m4s5ms", Some(93_784_005)),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_time(value.as_bytes()), *expected, "time {value:?}");
        }
    }

    #[test]
    fn parse_zone_reads_name_and_size() {
        assert_eq!(
            parse_zone(b"zone=sessions:10m"),
            Ok((&b"sessions"[..], 10 << 20))
        );
        assert_eq!(parse_zone(b"zone=a:b:64k"), Ok((&b"a:b"[..], 65536)));
    }

    #[test]
    fn parse_zone_rejects_bad_arguments() {
        let cases: &[(&str, ConfError)] = &[
            (
                "sessions:10m",
                ConfError::InvalidValue("sessions:10m".into()),
            ),
            (
                "zone=sessions",
                ConfError::InvalidValue("zone=sessions".into()),
            ),
            ("zone=:10m", ConfError::InvalidValue("zone=:10m".into())),
            ("zone=s:ten", ConfError::InvalidZoneSize("ten".into())),
            ("zone=s:", ConfError::InvalidZoneSize("".into())),
            ("zone=s:4k", ConfError::ZoneTooSmall("s".into())),
        ];
        for (arg, expected) in cases {
            assert_eq!(
                parse_zone(arg.as_bytes()),
                Err(expected.clone()),
                "argument {arg:?}"
            );
        }
    }

    #[test]
    fn parse_valid_selects_kinds() {
        let all = ValidKinds {
            valid: true,
            invalid: true,
            none: true,
        };
        assert_eq!(parse_valid(&[b"5m"]), Ok((all, 300_000)));
        assert_eq!(
            parse_valid(&[b"invalid", b"none", b"10s"]),
            Ok((
                ValidKinds {
                    valid: false,
                    invalid: true,
                    none: true
                },
                10_000
            ))
        );
    }

    #[test]
    fn parse_valid_rejects_bad_arguments() {
        assert_eq!(
            parse_valid(&[b"valid", b"ten"]),
            Err(ConfError::InvalidTime("ten".into()))
        );
        assert_eq!(
            parse_valid(&[b"expired", b"1m"]),
            Err(ConfError::InvalidValue("expired".into()))
        );
        assert_eq!(
            parse_valid(&[b"valid", b"valid", b"1m"]),
            Err(ConfError::DuplicateValue("valid".into()))
        );
    }
}
