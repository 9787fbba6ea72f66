//! CSS colors and font sizes, read as far as telling whether text can be seen needs:
//! what is not understood here is `None`, and its declaration is dropped.

/// An sRGB color, each channel and alpha from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Rgba {
    pub r: f32,
    pub g: f32,
    pub b: f32,
    pub a: f32,
}

impl Rgba {
    pub(super) const WHITE: Rgba = Rgba::opaque(1.0, 1.0, 1.0);
    pub(super) const BLACK: Rgba = Rgba::opaque(0.0, 0.0, 0.0);
    pub(super) const TRANSPARENT: Rgba = Rgba {
        r: 0.0,
        g: 0.0,
        b: 0.0,
        a: 0.0,
    };

    const fn opaque(r: f32, g: f32, b: f32) -> Rgba {
        Rgba { r, g, b, a: 1.0 }
    }

    fn bytes(r: u8, g: u8, b: u8, a: f32) -> Rgba {
        Rgba {
            r: f32::from(r) / 255.0,
            g: f32::from(g) / 255.0,
            b: f32::from(b) / 255.0,
            a: a.clamp(0.0, 1.0),
        }
    }

    /// This color painted over the opaque `below`.
    pub(super) fn over(self, below: Rgba) -> Rgba {
        let mix = |top: f32, bottom: f32| top * self.a + bottom * (1.0 - self.a);
        Rgba::opaque(
            mix(self.r, below.r),
            mix(self.g, below.g),
            mix(self.b, below.b),
        )
    }

    /// WCAG 2 relative luminance.
    fn luminance(self) -> f32 {
        let linear = |c: f32| {
            if c <= 0.040_45 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * linear(self.r) + 0.7152 * linear(self.g) + 0.0722 * linear(self.b)
    }

    /// WCAG 2 contrast ratio of two opaque colors: 1 (the same) to 21 (black on white).
    pub(super) fn contrast(self, other: Rgba) -> f32 {
        let (a, b) = (self.luminance(), other.luminance());
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }
}

/// A color value of a `color` or `background-color` declaration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Color {
    Rgba(Rgba),
    /// `currentcolor`: the element's text color.
    Current,
    /// `inherit`, `unset`, `revert`: as if not set.
    Inherit,
    /// `initial`: black text, a transparent background.
    Initial,
}

/// `value` without `!important`, trimmed and lower-cased.
fn plain(value: &str) -> String {
    let v = value.trim().to_ascii_lowercase();
    match v.strip_suffix("important").map(str::trim_end) {
        Some(rest) if rest.ends_with('!') => rest.trim_end_matches('!').trim().to_string(),
        _ => v,
    }
}

/// A CSS color: keywords, names, `#hex`, `rgb()`/`rgba()`, `hsl()`/`hsla()`.
pub(super) fn color(value: &str) -> Option<Color> {
    let v = plain(value);
    Some(match v.as_str() {
        "transparent" => Color::Rgba(Rgba::TRANSPARENT),
        "currentcolor" => Color::Current,
        "inherit" | "unset" | "revert" | "revert-layer" => Color::Inherit,
        "initial" => Color::Initial,
        _ => Color::Rgba(rgba(&v)?),
    })
}

/// A legacy `<font color>`: a CSS color, or hex digits without the `#`.
pub(super) fn font_color(value: &str) -> Option<Rgba> {
    match color(value) {
        Some(Color::Rgba(c)) => Some(c),
        Some(_) => None,
        None => rgba(&format!("#{}", plain(value))),
    }
}

fn rgba(v: &str) -> Option<Rgba> {
    if let Some(hex) = v.strip_prefix('#') {
        let (r, g, b, a) = cssparser::color::parse_hash_color(hex.as_bytes()).ok()?;
        return Some(Rgba::bytes(r, g, b, a));
    }
    if let Ok((r, g, b)) = cssparser::color::parse_named_color(v) {
        return Some(Rgba::bytes(r, g, b, 1.0));
    }
    let (function, args) = v.strip_suffix(')')?.split_once('(')?;
    let args: Vec<&str> = args
        .split(|c: char| c == ',' || c == '/' || c.is_whitespace())
        .filter(|a| !a.is_empty())
        .collect();
    let alpha = match args.get(3) {
        Some(a) => fraction(a, 1.0)?,
        None => 1.0,
    };
    if !(3..=4).contains(&args.len()) {
        return None;
    }
    match function.trim() {
        "rgb" | "rgba" => Some(Rgba {
            r: fraction(args[0], 255.0)?,
            g: fraction(args[1], 255.0)?,
            b: fraction(args[2], 255.0)?,
            a: alpha,
        }),
        "hsl" | "hsla" => {
            let h = hue(args[0])?;
            let (s, l) = (fraction(args[1], 100.0)?, fraction(args[2], 100.0)?);
            Some(hsl(h, s, l, alpha))
        }
        _ => None,
    }
}

/// A number out of `whole`, or a percentage; 0 to 1.
fn fraction(s: &str, whole: f32) -> Option<f32> {
    let v = match s.strip_suffix('%') {
        Some(p) => p.parse::<f32>().ok()? / 100.0,
        None if s == "none" => 0.0,
        None => s.parse::<f32>().ok()? / whole,
    };
    v.is_finite().then(|| v.clamp(0.0, 1.0))
}

/// An angle in turns.
fn hue(s: &str) -> Option<f32> {
    let (number, per_turn) = [
        ("deg", 360.0),
        ("grad", 400.0),
        ("rad", std::f32::consts::TAU),
        ("turn", 1.0),
    ]
    .iter()
    .find_map(|(unit, per)| s.strip_suffix(unit).map(|n| (n, *per)))
    .unwrap_or((s, 360.0));
    let turns = number.parse::<f32>().ok()? / per_turn;
    turns.is_finite().then(|| turns.rem_euclid(1.0))
}

fn hsl(h: f32, s: f32, l: f32, a: f32) -> Rgba {
    let channel = |n: f32| {
        let k = (n + h * 12.0) % 12.0;
        l - s * l.min(1.0 - l) * (k - 3.0).min(9.0 - k).clamp(-1.0, 1.0)
    };
    Rgba {
        r: channel(0.0),
        g: channel(8.0),
        b: channel(4.0),
        a,
    }
}

/// The browser's default font size.
pub(super) const MEDIUM_PX: f32 = 16.0;

/// A `font-size` in pixels, given the parent's.
pub(super) fn font_size(value: &str, parent_px: f32) -> Option<f32> {
    let v = plain(value);
    let keyword = match v.as_str() {
        "xx-small" => Some(9.0),
        "x-small" => Some(10.0),
        "small" => Some(13.0),
        "medium" | "initial" => Some(MEDIUM_PX),
        "large" => Some(18.0),
        "x-large" => Some(24.0),
        "xx-large" => Some(32.0),
        "xxx-large" => Some(48.0),
        "smaller" => Some(parent_px / 1.2),
        "larger" => Some(parent_px * 1.2),
        "inherit" | "unset" | "revert" | "revert-layer" => Some(parent_px),
        _ => None,
    };
    if keyword.is_some() {
        return keyword;
    }
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: f32 = number.parse().ok()?;
    let px = match unit {
        "px" => n,
        "" if n == 0.0 => 0.0,
        "pt" => n * 4.0 / 3.0,
        "pc" => n * 16.0,
        "in" => n * 96.0,
        "cm" => n * 96.0 / 2.54,
        "mm" => n * 96.0 / 25.4,
        "q" => n * 96.0 / 101.6,
        "em" => n * parent_px,
        "rem" => n * MEDIUM_PX,
        "ex" | "ch" => n * parent_px / 2.0,
        "%" => n * parent_px / 100.0,
        _ => return None,
    };
    px.is_finite().then_some(px)
}

/// `<font size>`: 1 to 7, or relative to 3 with a sign.
pub(super) fn font_size_attribute(value: &str) -> Option<f32> {
    let v = value.trim();
    let n: i32 = v.trim_start_matches('+').parse().ok()?;
    let size = if v.starts_with(['+', '-']) { 3 + n } else { n };
    Some([10.0, 13.0, 16.0, 18.0, 24.0, 32.0, 48.0][(size.clamp(1, 7) - 1) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(value: &str) -> Option<(u8, u8, u8, u8)> {
        match color(value)? {
            Color::Rgba(c) => Some((
                (c.r * 255.0).round() as u8,
                (c.g * 255.0).round() as u8,
                (c.b * 255.0).round() as u8,
                (c.a * 255.0).round() as u8,
            )),
            _ => None,
        }
    }

    #[test]
    fn colors() {
        assert_eq!(rgb("#fff"), Some((255, 255, 255, 255)));
        assert_eq!(rgb(" #FEFEFE !important"), Some((254, 254, 254, 255)));
        assert_eq!(rgb("#ffffff00"), Some((255, 255, 255, 0)));
        assert_eq!(rgb("White"), Some((255, 255, 255, 255)));
        assert_eq!(rgb("transparent"), Some((0, 0, 0, 0)));
        assert_eq!(rgb("rgb(255, 0, 0)"), Some((255, 0, 0, 255)));
        assert_eq!(rgb("rgba(0,0,0,0.5)"), Some((0, 0, 0, 128)));
        assert_eq!(rgb("rgb(100% 100% 100% / 0)"), Some((255, 255, 255, 0)));
        assert_eq!(rgb("hsl(0, 100%, 50%)"), Some((255, 0, 0, 255)));
        assert_eq!(rgb("hsl(120deg 100% 25%)"), Some((0, 128, 0, 255)));
        assert_eq!(rgb("hsla(0, 0%, 100%, 1)"), Some((255, 255, 255, 255)));
        assert_eq!(color("currentColor"), Some(Color::Current));
        assert_eq!(color("inherit"), Some(Color::Inherit));
        for unknown in [
            "windowtext",
            "lab(50 0 0)",
            "var(--x)",
            "#ggg",
            "rgb(1,2)",
            "",
        ] {
            assert_eq!(color(unknown), None, "{unknown}");
        }
        assert_eq!(font_color("ffffff"), Some(Rgba::WHITE));
    }

    #[test]
    fn contrast() {
        assert!((Rgba::BLACK.contrast(Rgba::WHITE) - 21.0).abs() < 0.01);
        assert!((Rgba::WHITE.contrast(Rgba::WHITE) - 1.0).abs() < 0.01);
        let half = Rgba {
            a: 0.5,
            ..Rgba::BLACK
        };
        let grey = half.over(Rgba::WHITE);
        assert!((grey.r - 0.5).abs() < 0.01);
    }

    #[test]
    fn sizes() {
        assert_eq!(font_size("1px", 16.0), Some(1.0));
        assert_eq!(font_size("0", 16.0), Some(0.0));
        assert_eq!(font_size("12pt", 16.0), Some(16.0));
        assert_eq!(font_size("50%", 10.0), Some(5.0));
        assert_eq!(font_size("0.1em", 16.0), Some(1.6));
        assert_eq!(font_size("x-small", 30.0), Some(10.0));
        assert_eq!(font_size("calc(1px + 1px)", 16.0), None);
        assert_eq!(font_size("1vw", 16.0), None);
        assert_eq!(font_size_attribute("1"), Some(10.0));
        assert_eq!(font_size_attribute("-5"), Some(10.0));
        assert_eq!(font_size_attribute("+2"), Some(24.0));
        assert_eq!(font_size_attribute("x"), None);
    }
}
