//! Which rows of a workbook's sheet are hidden, by hand or by a filter: Excel marks both
//! `<row hidden="1">` in an XLSX sheet's XML, and an ODS spreadsheet marks them
//! `table:visibility="collapse"` or `"filter"`. calamine reads every row but does not say which
//! are hidden, so the sheet's XML is scanned here, with the zip and XML readers calamine itself
//! uses. Anything unexpected in the file means "none known": it never stops a run.

use std::io::{BufReader, Cursor, Read};

use quick_xml::events::Event;
use quick_xml::XmlVersion;

/// The row numbers (as Excel shows them) that the sheet called `sheet` hides, in order.
pub fn xlsx_hidden_rows(bytes: &[u8], sheet: &str) -> Vec<u64> {
    hidden(bytes, sheet).unwrap_or_default()
}

fn hidden(bytes: &[u8], sheet: &str) -> Option<Vec<u64>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let rel_id = find_attr(&mut zip, "xl/workbook.xml", "sheet", "name", sheet, "id")?;
    let target = find_attr(
        &mut zip,
        "xl/_rels/workbook.xml.rels",
        "Relationship",
        "Id",
        &rel_id,
        "Target",
    )?;
    let part = match target.strip_prefix('/') {
        Some(absolute) => absolute.to_string(),
        None => format!("xl/{target}"),
    };
    let file = zip.by_name(&part).ok()?;
    let mut xml = quick_xml::Reader::from_reader(BufReader::new(file));
    let mut buf = Vec::new();
    let mut rows = Vec::new();
    loop {
        match xml.read_event_into(&mut buf).ok()? {
            Event::Start(e) | Event::Empty(e) if e.local_name().into_inner() == "row" => {
                let (mut number, mut is_hidden) = (None, false);
                for a in e.attributes().flatten() {
                    match a.key.local_name().into_inner() {
                        "r" => {
                            number = a
                                .normalized_value(XmlVersion::Implicit1_0)
                                .ok()?
                                .parse()
                                .ok()
                        }
                        "hidden" => {
                            is_hidden = matches!(
                                a.normalized_value(XmlVersion::Implicit1_0).ok()?.as_ref(),
                                "1" | "true"
                            )
                        }
                        _ => {}
                    }
                }
                if let (true, Some(n)) = (is_hidden, number) {
                    rows.push(n);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Some(rows)
}

/// The row numbers (as a spreadsheet shows them, at most `last`) that the ODS sheet called
/// `sheet` hides, in order.
pub fn ods_hidden_rows(bytes: &[u8], sheet: &str, last: u64) -> Vec<u64> {
    ods_hidden(bytes, sheet, last).unwrap_or_default()
}

fn ods_hidden(bytes: &[u8], sheet: &str, last: u64) -> Option<Vec<u64>> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let file = zip.by_name("content.xml").ok()?;
    let mut xml = quick_xml::Reader::from_reader(BufReader::new(file));
    let mut buf = Vec::new();
    let mut rows = Vec::new();
    // Inside the sheet: the number of the next row.
    let mut next: Option<u64> = None;
    loop {
        match xml.read_event_into(&mut buf).ok()? {
            Event::Start(e) if e.local_name().into_inner() == "table" && next.is_none() => {
                let named = e.attributes().flatten().any(|a| {
                    a.key.local_name().into_inner() == "name"
                        && a.normalized_value(XmlVersion::Implicit1_0).ok().as_deref()
                            == Some(sheet)
                });
                if named {
                    next = Some(1);
                }
            }
            Event::End(e) if e.local_name().into_inner() == "table" && next.is_some() => break,
            Event::Start(e) | Event::Empty(e) if e.local_name().into_inner() == "table-row" => {
                let Some(n) = next else { continue };
                let (mut repeated, mut is_hidden) = (1u64, false);
                for a in e.attributes().flatten() {
                    let value = a.normalized_value(XmlVersion::Implicit1_0).ok()?;
                    match a.key.local_name().into_inner() {
                        "number-rows-repeated" => repeated = value.parse().ok()?,
                        "visibility" => is_hidden = value != "visible",
                        _ => {}
                    }
                }
                if is_hidden {
                    rows.extend(n..(n + repeated).min(last + 1));
                }
                next = Some(n + repeated);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Some(rows)
}

/// In the XML part `part`, the attribute `wanted` of the first `element` whose attribute `key`
/// is `value`.
fn find_attr<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    part: &str,
    element: &str,
    key: &str,
    value: &str,
    wanted: &str,
) -> Option<String> {
    let file = zip.by_name(part).ok()?;
    let mut xml = quick_xml::Reader::from_reader(BufReader::new(file));
    let mut buf = Vec::new();
    loop {
        match xml.read_event_into(&mut buf).ok()? {
            Event::Start(e) | Event::Empty(e) if e.local_name().into_inner() == element => {
                let mut matched = false;
                let mut found = None;
                for a in e.attributes().flatten() {
                    let local = a.key.local_name();
                    if local.into_inner() == key {
                        matched = a.normalized_value(XmlVersion::Implicit1_0).ok()? == value;
                    } else if local.into_inner() == wanted {
                        found = Some(
                            a.normalized_value(XmlVersion::Implicit1_0)
                                .ok()?
                                .into_owned(),
                        );
                    }
                }
                if matched {
                    return found;
                }
            }
            Event::Eof => return None,
            _ => {}
        }
        buf.clear();
    }
}
