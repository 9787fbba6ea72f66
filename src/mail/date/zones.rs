//! Zone names and month names seen in real `Date` headers.

/// Seconds east of UTC for a zone name (lower-case), if we know it.
///
/// RFC 5322 section 4.3 defines UT, GMT and the North American names; the rest are the
/// abbreviations mail clients actually write. Names that mean different places (IST:
/// India, Ireland, Israel) are left out on purpose: an unknown name counts as `-0000`.
pub(super) fn zone_offset(name: &str) -> Option<i32> {
    const H: i32 = 3600;
    Some(match name {
        "ut" | "utc" | "gmt" | "z" | "zulu" | "wet" => 0,
        "edt" => -4 * H,
        "est" | "cdt" => -5 * H,
        "cst" | "mdt" => -6 * H,
        "mst" | "pdt" => -7 * H,
        "pst" | "akdt" => -8 * H,
        "akst" => -9 * H,
        "hst" => -10 * H,
        "ast" => -4 * H,
        "adt" => -3 * H,
        "nst" => -(3 * H + 30 * 60),
        "ndt" => -(2 * H + 30 * 60),
        "bst" | "west" | "cet" | "met" | "mez" => H,
        "cest" | "mest" | "mesz" | "eet" | "sast" => 2 * H,
        "eest" | "msk" => 3 * H,
        "msd" => 4 * H,
        "hkt" | "sgt" | "awst" | "wita" => 8 * H,
        "jst" | "kst" => 9 * H,
        "acst" => 9 * H + 30 * 60,
        "aest" => 10 * H,
        "acdt" => 10 * H + 30 * 60,
        "aedt" => 11 * H,
        "nzst" => 12 * H,
        "nzdt" => 13 * H,
        _ => return None,
    })
}

/// The month (1-12) a name means: English full names and abbreviations (`sept`),
/// the German and Polish abbreviations that differ from them, and their full names
/// (`marca`, `października`, `Juni`: Outlook writes them in a forward's `Sent:` line).
pub(super) fn month_number(name: &str) -> Option<u32> {
    abbreviated_month(name).or_else(|| full_polish_or_german_month(name))
}

/// Polish months in any case form start with their abbreviation (`stycznia`, `lipiec`),
/// as do German `Oktober` and `Dezember`; only those tables are tried by prefix: an
/// English prefix would read the French `mardi` (Tuesday) as March.
fn full_polish_or_german_month(name: &str) -> Option<u32> {
    match name {
        "marca" | "marzec" => return Some(3),
        "juni" => return Some(6),
        "juli" => return Some(7),
        _ => {}
    }
    let three: String = name.chars().take(3).collect();
    if name.chars().count() <= 3 {
        return None;
    }
    match three.as_str() {
        "sty" | "lut" | "kwi" | "maj" | "cze" | "lip" | "sie" | "wrz" | "paź" | "lis" | "gru"
        | "mär" | "okt" | "dez" => abbreviated_month(&three),
        _ => None,
    }
}

fn abbreviated_month(name: &str) -> Option<u32> {
    const ENGLISH: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let name = name.trim_end_matches('.');
    if name.chars().count() >= 3
        && let Some(i) = ENGLISH.iter().position(|m| m.starts_with(name))
    {
        return u32::try_from(i + 1).ok();
    }
    Some(match name {
        "sty" => 1,
        "lut" => 2,
        "mär" | "mrz" => 3,
        "kwi" => 4,
        "mai" | "maj" => 5,
        "cze" => 6,
        "lip" => 7,
        "sie" => 8,
        "wrz" => 9,
        "okt" | "paź" | "paz" => 10,
        "lis" => 11,
        "gru" | "dez" => 12,
        // `paź` whose `ź` a charset mix-up turned into another single character.
        _ if name.chars().count() == 3 && name.starts_with("pa") => 10,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months() {
        assert_eq!(month_number("jan"), Some(1));
        assert_eq!(month_number("sept"), Some(9));
        assert_eq!(month_number("september"), Some(9));
        assert_eq!(month_number("dec."), Some(12));
        assert_eq!(month_number("paź"), Some(10));
        assert_eq!(month_number("pax"), Some(10));
        assert_eq!(month_number("mai"), Some(5));
        assert_eq!(month_number("ma"), None);
        assert_eq!(month_number("mon"), None);
        assert_eq!(month_number("thu"), None);
        assert_eq!(month_number(""), None);
        for (name, n) in [
            ("stycznia", 1),
            ("marca", 3),
            ("października", 10),
            ("grudzień", 12),
            ("märz", 3),
            ("juni", 6),
            ("oktober", 10),
        ] {
            assert_eq!(month_number(name), Some(n), "{name}");
        }
        // Weekdays that begin like a month are not months.
        for name in ["mardi", "martes", "martedì", "czwartek", "sobota"] {
            assert_eq!(month_number(name), None, "{name}");
        }
    }

    #[test]
    fn zones() {
        assert_eq!(zone_offset("cest"), Some(7200));
        assert_eq!(zone_offset("est"), Some(-18000));
        assert_eq!(zone_offset("ist"), None);
    }
}
