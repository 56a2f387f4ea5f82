//! The `.xlsx` report as a person reads, prints and pastes it into a change ticket: a first
//! sheet that sums the run up with the facts `--summary-json` writes, then the rows with
//! statuses coloured, numbers as numbers, columns wide enough to read, a frozen header and a
//! filter, printed landscape one page wide. Values are read back with calamine; what calamine
//! does not show (widths, fills, panes, print setup) from the sheet's own XML.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use calamine::{open_workbook, Data, Range, Reader, Xlsx};
use serde_json::Value;

use crate::common::*;
use bulkedit::sandbox::{Sandbox, SandboxConfig};

const IDENTITY_ENV: [(&str, &str); 2] = [
    ("BULKEDIT_CLIENT_ID", "sandbox-client"),
    ("BULKEDIT_CLIENT_SECRET", "sandbox-secret"),
];

/// Rows that come out failed (twice, with the server's reason), invalid (as the server's
/// groups show, and as checked before sending), updated, not-found and unchanged, with
/// passwords to mask.
const MIXED: &str = "userId,email,password,name,groupIDsToAdd\n\
    00000000-0000-4000-8000-000000000001,,short,,\n\
    00000000-0000-4000-8000-000000000002,new.address@example.com,,,\n\
    00000000-0000-4000-8000-000000000003,,,,not-a-uuid\n\
    00000000-0000-4000-8000-000000000004,,Long-enough-1,Dana,\n\
    00000000-0000-4000-8000-000000009999,,Long-enough-2,,\n\
    00000000-0000-4000-8000-000000000005,,,First00005,\n\
    00000000-0000-4000-8000-000000000006,not an address,,,\n";

fn apply(sb: &Sandbox, file: &Path, report: &Path, extra: &[&str]) -> Output {
    bulkedit()
        .arg("apply")
        .arg(file)
        .args(["--platform", "identity", "--url"])
        .arg(sb.url_for("identity").as_str())
        .args(["--rate", "unlimited", "--report"])
        .arg(report)
        .args(extra)
        .envs(IDENTITY_ENV)
        .output()
        .unwrap()
}

fn book(path: &Path) -> Xlsx<std::io::BufReader<std::fs::File>> {
    open_workbook(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sheet(path: &Path, name: &str) -> Range<Data> {
    book(path).worksheet_range(name).unwrap()
}

/// The summary sheet's label → value pairs (first column → second), and the statuses with
/// their counts from its table of rows per status.
struct Summary {
    facts: BTreeMap<String, Data>,
    counts: BTreeMap<String, f64>,
    errors: Vec<(f64, String)>,
}

fn summary(path: &Path) -> Summary {
    let range = sheet(path, "Summary");
    let mut s = Summary {
        facts: BTreeMap::new(),
        counts: BTreeMap::new(),
        errors: Vec::new(),
    };
    let mut table = "";
    for row in range.rows() {
        let a = row.first().cloned().unwrap_or(Data::Empty);
        let b = row.get(1).cloned().unwrap_or(Data::Empty);
        match (&a, &b) {
            (Data::String(h), Data::Empty) if h == "Rows per status" => table = "status",
            (Data::String(h), Data::Empty) if h == "Most common errors" => table = "errors",
            (Data::String(h), Data::String(_)) if h == "Status" || h == "Rows" => {}
            (Data::String(status), Data::Float(n)) if table == "status" => {
                s.counts.insert(status.clone(), *n);
            }
            (Data::Float(n), Data::String(text)) if table == "errors" => {
                s.errors.push((*n, text.clone()))
            }
            (Data::String(label), _) if table.is_empty() => {
                s.facts.insert(label.clone(), b);
            }
            _ => {}
        }
    }
    s
}

fn text(d: &Data) -> String {
    match d {
        Data::String(s) => s.clone(),
        other => panic!("not text: {other:?}"),
    }
}

/// One XML element and what it holds.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<Node>,
}

impl Node {
    fn all<'a>(&'a self, name: &str, out: &mut Vec<&'a Node>) {
        if self.name == name {
            out.push(self);
        }
        for c in &self.children {
            c.all(name, out);
        }
    }
    fn find(&self, name: &str) -> Vec<&Node> {
        let mut out = Vec::new();
        self.all(name, &mut out);
        out
    }
    fn one(&self, name: &str) -> &Node {
        let found = self.find(name);
        assert_eq!(found.len(), 1, "one <{name}> in <{}>", self.name);
        found[0]
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
}

/// A part of the workbook's zip, parsed.
fn part(path: &Path, name: &str) -> Node {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(&mut zip.by_name(name).unwrap(), &mut xml).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut stack = vec![Node::default()];
    let node = |e: &quick_xml::events::BytesStart| Node {
        name: e.local_name().into_inner().to_string(),
        attrs: e
            .attributes()
            .flatten()
            .map(|a| {
                (
                    a.key.local_name().into_inner().to_string(),
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .unwrap()
                        .into_owned(),
                )
            })
            .collect(),
        children: Vec::new(),
    };
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) => stack.push(node(&e)),
            quick_xml::events::Event::Empty(e) => {
                let n = node(&e);
                stack.last_mut().unwrap().children.push(n);
            }
            quick_xml::events::Event::End(_) => {
                let n = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(n);
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    stack.pop().unwrap()
}

/// What a cell looks like: its fill colour and whether its text wraps.
#[derive(Debug, PartialEq)]
struct Look {
    fill: Option<String>,
    wraps: bool,
}

struct Styles(Node);

impl Styles {
    fn look(&self, style: usize) -> Look {
        let xf = self.0.one("cellXfs").children[style].attrs.clone();
        let xf_node = &self.0.one("cellXfs").children[style];
        let fill_id: usize = xf.get("fillId").map_or(0, |f| f.parse().unwrap());
        let fill = &self.0.one("fills").children[fill_id];
        Look {
            fill: fill
                .find("fgColor")
                .first()
                .and_then(|c| c.attr("rgb"))
                .map(str::to_string),
            wraps: xf_node
                .find("alignment")
                .first()
                .is_some_and(|a| a.attr("wrapText") == Some("1")),
        }
    }
}

/// The sheet's cells by reference (`C4`), each with its style index.
fn styles_of(sheet: &Node) -> BTreeMap<String, usize> {
    sheet
        .find("c")
        .into_iter()
        .map(|c| {
            (
                c.attr("r").unwrap().to_string(),
                c.attr("s").map_or(0, |s| s.parse().unwrap()),
            )
        })
        .collect()
}

fn col_letter(i: usize) -> String {
    let mut n = i + 1;
    let mut s = String::new();
    while n > 0 {
        let r = (n - 1) % 26;
        s.insert(0, (b'A' + r as u8) as char);
        n = (n - 1) / 26;
    }
    s
}

/// The width Excel is told for column `i` (0-based).
fn width_of(sheet: &Node, i: usize) -> f64 {
    sheet
        .find("col")
        .into_iter()
        .find(|c| {
            let min: usize = c.attr("min").unwrap().parse().unwrap();
            let max: usize = c.attr("max").unwrap().parse().unwrap();
            (min..=max).contains(&(i + 1))
        })
        .map_or(8.43, |c| c.attr("width").unwrap().parse().unwrap())
}

fn mixed_run(dir: &Path) -> (PathBuf, Value, Output) {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let input = write(dir, "users.csv", MIXED);
    let report = dir.join("r.xlsx");
    let json = dir.join("facts.json");
    let out = apply(
        &sb,
        &input,
        &report,
        &["--summary-json", json.to_str().unwrap()],
    );
    let facts: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (report, facts, out)
}

#[test]
fn a_workbook_report_opens_on_the_runs_facts_then_its_rows() {
    let dir = tempdir();
    let (report, facts, out) = mixed_run(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(book(&report).sheet_names(), ["Summary", "Report"]);
    let failures = dir.path().join("r-failures.xlsx");
    assert_eq!(
        book(&failures).sheet_names(),
        ["Failures"],
        "the failures file is the rows alone: it is fixed and run again"
    );

    // The same facts as --summary-json.
    let s = summary(&report);
    let fact = |label: &str| {
        s.facts
            .get(label)
            .unwrap_or_else(|| panic!("{label} in {:?}", s.facts))
            .clone()
    };
    assert_eq!(text(&fact("Platform")), facts["platform"]);
    assert_eq!(text(&fact("Target")), facts["target"]);
    assert_eq!(text(&fact("Dry run")), "no");
    assert_eq!(fact("Rows"), Data::Float(7.0));
    assert_eq!(
        fact("Requests"),
        Data::Float(facts["requests"].as_f64().unwrap())
    );
    assert_eq!(fact("Exit code"), Data::Float(1.0));
    assert_eq!(text(&fact("Report")), facts["report"]);
    assert_eq!(text(&fact("Failures")), facts["failures"]);
    assert_eq!(text(&fact("Undo file")), facts["undo"]);
    assert_eq!(
        text(&fact("Input")),
        dir.path().join("users.csv").display().to_string()
    );
    assert!(
        matches!(fact("Started (UTC)"), Data::DateTime(_)),
        "{:?}",
        fact("Started (UTC)")
    );
    let counts: BTreeMap<String, f64> = facts["counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    assert_eq!(s.counts.get("total"), Some(&7.0));
    let mut shown = s.counts.clone();
    shown.remove("total");
    assert_eq!(shown, counts);
    assert_eq!(
        (
            counts["failed"],
            counts["invalid"],
            counts["updated"],
            counts["unchanged"]
        ),
        (2.0, 2.0, 1.0, 1.0),
        "the run is as mixed as meant: {counts:?}"
    );
    // The most common errors, each with its count: five distinct, once each.
    assert_eq!(s.errors.len(), 5, "{:?}", s.errors);
    assert!(s.errors.iter().all(|(n, _)| *n == 1.0));
    assert!(s
        .errors
        .iter()
        .any(|(_, e)| e == "HTTP 200: PasswordTooShort: Passwords must be at least 8 characters."));

    // The rows: numbers are numbers, ids stay text, passwords stay masked.
    let rows = sheet(&report, "Report");
    let header: Vec<String> = rows
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let line = |n: f64| {
        rows.rows()
            .find(|r| r[0] == Data::Float(n))
            .unwrap_or_else(|| panic!("row {n}"))
    };
    let failed = line(2.0);
    assert_eq!(failed[col("status")], Data::String("failed".into()));
    assert_eq!(failed[col("http_status")], Data::Float(200.0));
    assert!(
        matches!(failed[col("attempts")], Data::Float(_)),
        "{failed:?}"
    );
    assert_eq!(failed[col("password")], Data::String("***".into()));
    assert_eq!(
        failed[col("userId")],
        Data::String("00000000-0000-4000-8000-000000000001".into())
    );
    assert_eq!(line(5.0)[col("password")], Data::String("***".into()));
    assert!(!rows
        .rows()
        .flatten()
        .any(|c| c.to_string().contains("Long-enough")));
}

#[test]
fn a_workbook_report_prints_and_reads_at_a_glance() {
    let dir = tempdir();
    let (report, _, out) = mixed_run(dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let rows = sheet(&report, "Report");
    let header: Vec<String> = rows
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    // Excel's row of a report line, by its row number or its status.
    let line = |n: f64| rows.rows().position(|r| r[0] == Data::Float(n)).unwrap() + 1;
    let excel_row = |status: &str| {
        rows.rows()
            .position(|r| r[1] == Data::String(status.into()))
            .unwrap_or_else(|| panic!("a {status} row"))
            + 1
    };
    let xml = part(&report, "xl/worksheets/sheet2.xml");
    let styles = Styles(part(&report, "xl/styles.xml"));
    let cells = styles_of(&xml);
    let look = |c: usize, row: usize| styles.look(cells[&format!("{}{row}", col_letter(c))]);

    // Statuses coloured, in fills that print.
    for (status, fill) in [
        ("failed", "FFFFC7CE"),
        ("invalid", "FFFFC7CE"),
        ("updated", "FFC6EFCE"),
        ("unchanged", "FFE7E6E6"),
        ("not-found", "FFFFEB9C"),
    ] {
        assert_eq!(
            look(col("status"), excel_row(status)).fill.as_deref(),
            Some(fill),
            "{status}"
        );
    }
    // The reasons readable: error and changes columns wide and wrapped, never twelve
    // characters; the row of the longest error made tall enough for it.
    let longest = rows
        .rows()
        .skip(1)
        .map(|r| r[col("error")].to_string().chars().count())
        .max()
        .unwrap();
    assert!(longest > 100, "a long error to show: {longest}");
    let error_width = width_of(&xml, col("error"));
    assert!(
        (40.0..=80.0).contains(&error_width),
        "error column {error_width} wide"
    );
    assert!(width_of(&xml, col("changes")) >= 40.0);
    // The row the server's group list showed invalid.
    let invalid = line(4.0);
    let error_look = look(col("error"), invalid);
    assert!(error_look.wraps, "{error_look:?}");
    assert_eq!(
        error_look.fill.as_deref(),
        Some("FFFFC7CE"),
        "the broken cell is marked"
    );
    let tall = xml
        .find("row")
        .into_iter()
        .find(|r| r.attr("r") == Some(&invalid.to_string()))
        .and_then(|r| r.attr("ht"))
        .map(|h| h.parse::<f64>().unwrap());
    assert!(tall.is_some_and(|h| h >= 30.0), "row {invalid}: {tall:?}");
    // Every other column as wide as its widest cell: a user id whole.
    assert!(width_of(&xml, col("userId")) >= 36.0);
    // A cell found broken before sending is marked and carries its reason; a reason only
    // the server's answer gave is on the row's error cell.
    let notes = part(&report, "xl/comments1.xml");
    let noted = |cell: String| {
        assert!(
            notes
                .find("comment")
                .iter()
                .any(|c| c.attr("ref") == Some(&cell)),
            "a note on {cell}"
        );
        cell
    };
    let email = noted(format!("{}{}", col_letter(col("email")), line(8.0)));
    assert_eq!(styles.look(cells[&email]).fill.as_deref(), Some("FFFFC7CE"));
    noted(format!("{}{invalid}", col_letter(col("error"))));

    // Frozen header, a filter over every row and column, landscape one page wide, the header
    // printed on every page.
    let pane = xml.one("pane");
    assert_eq!(
        (pane.attr("ySplit"), pane.attr("state")),
        (Some("1"), Some("frozen"))
    );
    let last = format!("{}{}", col_letter(header.len() - 1), rows.height());
    assert_eq!(
        xml.one("autoFilter").attr("ref"),
        Some(format!("A1:{last}").as_str())
    );
    let setup = xml.one("pageSetup");
    assert_eq!(setup.attr("orientation"), Some("landscape"));
    assert_eq!(setup.attr("fitToHeight"), Some("0"));
    assert_eq!(xml.one("pageSetUpPr").attr("fitToPage"), Some("1"));
    let workbook = part(&report, "xl/workbook.xml");
    assert!(
        workbook
            .find("definedName")
            .iter()
            .any(|d| d.attr("name") == Some("_xlnm.Print_Titles")),
        "the header row repeats on each printed page"
    );
}

#[test]
fn validate_with_a_workbook_report_sums_up_what_applies_to_validate() {
    let dir = tempdir();
    let input = write(
        dir.path(),
        "users.csv",
        "Email,First Name,Is Active\n\
         user00001@example.com,Ann,yes\n\
         user00002 @example.com,Ben,yes\n\
         user00003@example.com,Cy,perhaps\n\
         user00004@example.com,Di,no\n",
    );
    let report = dir.path().join("checked.xlsx");
    let out = bulkedit()
        .arg("validate")
        .arg(&input)
        .args(["--platform", "hub", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(book(&report).sheet_names(), ["Summary", "Report"]);
    let s = summary(&report);
    assert!(
        text(&s.facts["What"]).starts_with("validate"),
        "{:?}",
        s.facts
    );
    assert_eq!(text(&s.facts["Platform"]), "hub");
    for apply_only in ["Target", "Dry run", "Requests", "Undo file"] {
        assert!(
            !s.facts.contains_key(apply_only),
            "{apply_only}: {:?}",
            s.facts
        );
    }
    assert_eq!(s.facts["Exit code"], Data::Float(1.0));
    assert_eq!(s.facts["Rows"], Data::Float(4.0));
    assert_eq!(
        text(&s.facts["Failures"]),
        dir.path()
            .join("checked-failures.xlsx")
            .display()
            .to_string()
    );
    assert_eq!(
        s.counts,
        BTreeMap::from([
            ("valid".to_string(), 2.0),
            ("invalid".to_string(), 2.0),
            ("total".to_string(), 4.0)
        ])
    );
    assert_eq!(s.errors.len(), 2, "{:?}", s.errors);
    let rows = rows_of_sheet(&report, Some("Report"));
    assert_eq!(rows.len(), 5, "a header and four rows");
}

/// A workbook report's rows are on its second sheet now: a later run still finds the writes
/// it records (and keeps it aside rather than replace it), and `--resume` still skips what it
/// finished.
#[test]
fn a_later_run_reads_a_workbook_reports_rows_past_its_summary() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let input = write(
        dir.path(),
        "users.csv",
        "userId,name\n\
         00000000-0000-4000-8000-000000000001,Ann\n\
         00000000-0000-4000-8000-000000000002,Ben\n",
    );
    let report = dir.path().join("w.xlsx");
    let puts = || sb.requests().iter().filter(|r| r.method == "PUT").count();
    let out = apply(&sb, &input, &report, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(puts(), 2);

    let out = apply(&sb, &input, &report, &["--resume"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("2 rows finished earlier and not sent again"),
        "{err}"
    );
    assert_eq!(puts(), 2, "nothing sent again");

    let out = apply(&sb, &input, &report, &[]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("the earlier report records writes"), "{err}");
    let kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("w-2") && n.ends_with("Z.xlsx"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let earlier = rows_of_sheet(&dir.path().join(&kept[0]), Some("Report"));
    assert_eq!(earlier[1]["cells"][1], "updated");
}

/// A dry run's workbook report is a plan to apply as it stands: read at its rows, past the
/// summary, by `apply`, `validate` and `rows` alike.
#[test]
fn a_workbook_plan_is_applied_from_its_rows_past_the_summary() {
    let sb = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempdir();
    let input = write(
        dir.path(),
        "users.csv",
        "userId,name\n\
         00000000-0000-4000-8000-000000000001,Ann\n\
         00000000-0000-4000-8000-000000000002,Ben\n",
    );
    let plan = dir.path().join("plan.xlsx");
    let out = apply(&sb, &input, &plan, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(book(&plan).sheet_names(), ["Summary", "Report"]);
    // A dry run's report records no write: the next dry run replaces it, its summary says so.
    let out = apply(&sb, &input, &plan, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        !stderr_of(&out).contains("records writes"),
        "{}",
        stderr_of(&out)
    );
    let kept: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("plan-"))
        .collect();
    assert!(kept.is_empty(), "nothing kept aside: {kept:?}");
    let rows = rows_of(&plan);
    assert_eq!(rows[0]["header"][1], "status", "{rows:?}");
    assert_eq!(rows[1]["cells"][1], "would-update");

    let checked = dir.path().join("checked.csv");
    let out = bulkedit()
        .arg("validate")
        .arg(&plan)
        .args(["--platform", "identity", "--report"])
        .arg(&checked)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(read_report(&checked).len(), 2);

    let applied = dir.path().join("applied.csv");
    let out = apply(&sb, &plan, &applied, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(
        statuses(&read_report(&applied)),
        pairs(&[("2", "updated"), ("3", "updated")])
    );
}
