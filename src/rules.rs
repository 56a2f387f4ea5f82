//! Rules every platform's field dictionary is built from: e-mail syntax, text lengths,
//! booleans, whole numbers, lists and ids that end up in a URL path. Pure functions with
//! no I/O, so they can run on every core and be fuzzed and property-tested in isolation.

use std::fmt;

/// The longest free-text value the vendors accept, counted in characters (not bytes).
pub const MAX_TEXT: usize = 255;

/// One broken cell (or, with `col: None`, a problem with the row as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Index of the input column the problem is in, for highlighting a cell.
    pub col: Option<usize>,
    /// The column as the user named it in their header.
    pub column: String,
    /// What is wrong and, in brackets, what would be right.
    pub message: String,
}

impl FieldError {
    pub fn new(col: Option<usize>, column: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            col,
            column: column.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.column, self.message)
    }
}

/// Joins a row's errors the way the report's `error` column shows them.
pub fn join_errors(errors: &[FieldError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&e.to_string());
    }
    out
}

/// The WHATWG HTML "valid e-mail address" with RFC 5321's length limits
/// (local part at most 64 octets, whole address at most 254).
pub fn is_valid_email(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() > 254 {
        return false;
    }
    // Bytes, not chars: every allowed character is ASCII, and this runs on every row.
    let Some(at) = b.iter().position(|&c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&b[..at], &b[at + 1..]);
    if local.is_empty() || local.len() > 64 || domain.is_empty() {
        return false;
    }
    local.iter().all(|&c| LOCAL_PART[usize::from(c)])
        && domain.split(|&c| c == b'.').all(is_valid_label)
}

/// The characters WHATWG allows before the `@`.
static LOCAL_PART: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric();
        c += 1;
    }
    let others = b".!#$%&'*+/=?^_`{|}~-";
    let mut i = 0;
    while i < others.len() {
        t[others[i] as usize] = true;
        i += 1;
    }
    t
};

fn is_valid_label(b: &[u8]) -> bool {
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

pub fn check_email(value: &str) -> Result<(), String> {
    if is_valid_email(value) {
        Ok(())
    } else if value.len() > 254 {
        Err(format!(
            "e-mail address is {} characters long (at most 254)",
            value.chars().count()
        ))
    } else if value.split_once('@').is_some_and(|(l, _)| l.len() > 64) {
        Err("the part before @ is longer than 64 characters (at most 64)".into())
    } else {
        let mut text = String::from("not a valid e-mail address (like name@example.com)");
        if let Some(hint) = email_hint(value) {
            text.push_str(": ");
            text.push_str(&hint);
        }
        Err(text)
    }
}

/// What is wrong with an address people commonly paste, when it can be told: only on the
/// error path, so valid rows never pay for it.
fn email_hint(value: &str) -> Option<String> {
    let inner = value
        .rfind('<')
        .zip(value.rfind('>'))
        .filter(|(a, b)| a < b)
        .map(|(a, b)| value[a + 1..b].trim());
    if let Some(address) = inner.filter(|a| is_valid_email(a)) {
        return Some(format!(
            "write only the address, {address}, without the name around it"
        ));
    }
    // `get`: the first 7 bytes may end inside a character.
    if value
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("mailto:"))
    {
        return Some(format!(
            "write the address without mailto: ({})",
            &value[7..]
        ));
    }
    if value.contains('\u{ff20}') {
        return Some(
            "its @ is a full-width ＠ (from an Asian input method): type a plain @".into(),
        );
    }
    if value.chars().any(char::is_whitespace) {
        return Some("it contains a space".into());
    }
    match value.matches('@').count() {
        0 => Some("it has no @".into()),
        1 => None,
        _ => Some("it has more than one @".into()),
    }
}

#[cfg(test)]
mod email_tests {
    use super::check_email;

    #[test]
    fn an_invalid_address_says_what_is_wrong_with_it_when_it_can() {
        let said = |v: &str| check_email(v).unwrap_err();
        assert!(said("Ana Silva <ana@example.com>")
            .ends_with(": write only the address, ana@example.com, without the name around it"));
        assert!(said("mailto:ana@example.com")
            .ends_with(": write the address without mailto: (ana@example.com)"));
        assert!(said("ana＠example.com")
            .ends_with(": its @ is a full-width ＠ (from an Asian input method): type a plain @"));
        assert!(said("ana @example.com").ends_with(": it contains a space"));
        assert!(said("ana.example.com").ends_with(": it has no @"));
        assert!(said("a@b@example.com").ends_with(": it has more than one @"));
        assert_eq!(
            said("ana@"),
            "not a valid e-mail address (like name@example.com)"
        );
        // Multi-byte characters where mailto: would end are no trouble.
        assert!(check_email("ééééé@").is_err());
    }
}

/// Free text: at most `max` characters and no control characters other than tab and line breaks.
pub fn check_text(value: &str, max: usize) -> Result<(), String> {
    // A string has at most as many characters as bytes: count only when it could be too long.
    if value.len() > max {
        let chars = value.chars().count();
        if chars > max {
            return Err(format!("{chars} characters is too long (at most {max})"));
        }
    }
    // One pass over the bytes for the usual ASCII text; chars only once a non-ASCII byte shows.
    let control = match value
        .bytes()
        .find(|&b| b >= 0x80 || b == 0x7f || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')))
    {
        None => false,
        Some(b) if b < 0x80 => true,
        Some(_) => value
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')),
    };
    if control {
        return Err("contains a control character (remove it)".into());
    }
    Ok(())
}

/// `true/false`, `yes/no`, `1/0`, any case. Excel's `TRUE`/`FALSE` are covered too.
pub fn parse_bool(value: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "yes", "1", "1.0"];
    const FALSE: [&str; 4] = ["false", "no", "0", "0.0"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(value)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(value)) {
        Some(false)
    } else {
        None
    }
}

pub const BOOL_HINT: &str = "use true/false, yes/no or 1/0";

/// A whole number, also when written with a zero fraction (`6.0`) as Excel stores numbers.
pub fn parse_whole(value: &str) -> Option<i64> {
    if let Ok(n) = value.parse::<i64>() {
        return Some(n);
    }
    let (int, frac) = value.split_once('.')?;
    if frac.is_empty() || !frac.bytes().all(|b| b == b'0') {
        return None;
    }
    if int.is_empty() || int == "-" || int == "+" {
        return None;
    }
    int.parse::<i64>().ok()
}

/// Items of a list cell, separated by `;` or `,`, trimmed, empty items dropped.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split([';', ',']).map(trim).filter(|s| !s.is_empty())
}

/// `str::trim`, skipped for the usual text that neither starts nor ends with a space.
pub fn trim(value: &str) -> &str {
    match (value.as_bytes().first(), value.as_bytes().last()) {
        (Some(a), Some(z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => value,
        _ => value.trim(),
    }
}

/// Ids go into a URL path: nothing that could change which resource the URL names.
pub fn check_path_id(value: &str) -> Result<(), String> {
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#' | '\\' | '%') || c.is_whitespace() || c.is_control())
    {
        let shown = match c {
            c if c.is_whitespace() => "a space".to_string(),
            c if c.is_control() => "a control character".to_string(),
            c => format!("'{c}'"),
        };
        return Err(format!(
            "an id cannot contain {shown} (copy the id exactly as the platform shows it)"
        ));
    }
    if value == "." || value == ".." {
        return Err(
            "an id cannot be '.' or '..' (copy the id exactly as the platform shows it)".into(),
        );
    }
    Ok(())
}

/// Keys (e-mails, usernames, ids) compare case-insensitively after trimming.
pub fn normalize_key(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Header names compare case-insensitively, ignoring spaces, `_` and `-`.
pub fn normalize_header(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a header is within a typo of a name, both normalized ([`normalize_header`]): one
/// edit (insert, delete, change, swap), or two when the name has eight characters or more.
pub fn within_a_typo(header: &str, name: &str) -> bool {
    let allowed = if name.chars().count() >= 8 { 2 } else { 1 };
    header != name && strsim::osa_distance(header, name) <= allowed
}

/// The columns `bulkedit` adds to a report; ignored on input so a report can be fed back in.
/// Here, below both, because the reader and the header mapping recognise them as well as the
/// report writing them.
pub const REPORT_COLUMNS: [&str; 6] = [
    "row",
    "status",
    "error",
    "changes",
    "http_status",
    "attempts",
];

/// Whether a header row is a bulkedit report's: it starts `row`, `status`, `error` (compared
/// as headers are). Only such a file has its report columns dropped and its defusing undone.
pub fn is_report_header(headers: &[String]) -> bool {
    headers.len() >= 3
        && REPORT_COLUMNS[..3]
            .iter()
            .zip(headers)
            .all(|(want, h)| normalize_header(h) == *want)
}

/// Whether Excel would read a cell starting so as a formula.
pub fn needs_defusing(text: &str) -> bool {
    matches!(
        text.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_accept_zero_fractions_only() {
        assert_eq!(parse_whole("6"), Some(6));
        assert_eq!(parse_whole("6.0"), Some(6));
        assert_eq!(parse_whole("6.00"), Some(6));
        assert_eq!(parse_whole("6.5"), None);
        assert_eq!(parse_whole("."), None);
        assert_eq!(parse_whole("6."), None);
        assert_eq!(parse_whole(""), None);
    }

    #[test]
    fn email_lengths_follow_rfc_5321() {
        let local64 = "a".repeat(64);
        assert!(is_valid_email(&format!("{local64}@example.com")));
        assert!(!is_valid_email(&format!("a{local64}@example.com")));
        let long_domain = format!("{}.com", vec!["a".repeat(60); 4].join("."));
        let addr = format!("x@{long_domain}");
        assert_eq!(is_valid_email(&addr), addr.len() <= 254);
    }

    #[test]
    fn path_ids_refuse_url_changing_characters() {
        for bad in ["../x", "a/b", "a?b", "a#b", "a b", "%2F", ".."] {
            assert!(check_path_id(bad).is_err(), "{bad}");
        }
        assert!(check_path_id("00000000-0000-4000-8000-000000000001").is_ok());
    }

    #[test]
    fn headers_normalize_case_spaces_underscores_dashes() {
        assert_eq!(normalize_header("First Name"), "firstname");
        assert_eq!(normalize_header("first_name"), "firstname");
        assert_eq!(normalize_header("FIRST-NAME"), "firstname");
    }
}
