//! `bulkedit export`: every user of a platform as a sheet in the columns `template` writes and
//! `apply` reads, so that applying the file unchanged sends nothing: the start of a bulk edit,
//! and a backup. The first page of the user list says how many there are; the rest are read
//! at once by `--concurrency` workers sharing the run's rate limit.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::apply::{prepare, ApplyArgs};
use super::template::{write_csv, write_file};
use super::{Connection, Console};
use crate::check;
use crate::engine::http::printable;
use crate::engine::Outcome;
use crate::error::Error;
use crate::platform::page;
use crate::platform::rmw::{first_page, read_pages, Export, ListPage, Names, Shape};
use crate::platform::{self, Options, CLEAR};
use crate::read::{Cells, Row};
use crate::report::{self, CsvDialect};
use crate::rules;

#[derive(Debug, Clone, Default)]
pub struct ExportArgs {
    pub platform: String,
    /// CSV, or a workbook for `.xlsx`; CSV on stdout when absent.
    pub output: Option<PathBuf>,
    /// Write over an existing output file.
    pub force: bool,
    pub quiet: bool,
    pub connection: Connection,
}

impl ExportArgs {
    /// The connection settings, as `apply` takes them, so both connect the same way.
    fn as_apply(&self, platform: &str) -> ApplyArgs {
        ApplyArgs {
            platform: Some(platform.to_string()),
            connection: self.connection.clone(),
            ..ApplyArgs::default()
        }
    }
}

/// Runs `export` and returns the exit code.
pub fn run(
    args: &ExportArgs,
    console: &Console,
    interrupted: &Arc<AtomicBool>,
) -> Result<i32, Error> {
    let started = Instant::now();
    if args.connection.concurrency == 0 {
        return Err(Error::usage("--concurrency must be at least 1"));
    }
    // The sandbox's URL is its own, whatever the platform: only a URL given says one.
    let url = args
        .connection
        .url
        .as_deref()
        .filter(|_| !args.connection.sandbox);
    let platform = match platform::named(Some(&args.platform), url, &Options::default())? {
        platform::Named::Given(p) | platform::Named::ByUrl(p, ..) => p,
        platform::Named::Unknown => {
            return Err(Error::usage(format!(
                "give --platform ({}), or a --url or --profile that says it",
                platform::NAMES.join(", ")
            )))
        }
    };
    if let Some(path) = &args.output {
        if path.exists() && !args.force {
            return Err(Error::usage(format!(
                "{} exists; give --force to write over it, or -o another file",
                path.display()
            )));
        }
    }
    let apply_args = args.as_apply(platform.name());
    let target = prepare::target(&apply_args, console, platform.name())?;
    let secrets = &target.secrets;
    let redact = |e: Error| e.redacted(|text| printable(&secrets.redact(text)));
    let http = Arc::new(prepare::http_client(
        &apply_args,
        &target,
        platform.default_rate(),
        interrupted,
    )?);
    let session =
        prepare::log_in(platform.as_ref(), &apply_args, &target, &http, true).map_err(redact)?;
    let export = session
        .export()
        .ok_or_else(|| Error::usage(format!("{} cannot list its users here", platform.name())))?;
    if !export.can_list().map_err(redact)? {
        return Err(Error::usage(format!(
            "{} cannot list its users with these settings",
            platform.name()
        )));
    }
    let url = &target.url;
    let server =
        |what: &str, o: Outcome| redact(Error::server(url, format!("{what}: {}", o.error)));
    // Without the names, roles and groups are written as ids, which apply reads back too.
    let names = export.names().unwrap_or_else(|o| {
        console.warn(&secrets.redact(&format!(
            "cannot read the role and group names ({}): they are written as ids",
            o.error
        )));
        Names::default()
    });
    let (first, size) = first_page(export.page_size(), |at| export.list_page(at))
        .map_err(|o| server("cannot read the user list", o))?;
    let template = platform.template();
    let progress = Pages::new(console, args);
    let listed = read_all(
        export,
        (first, size),
        &template.headers,
        &names,
        args,
        &progress,
        interrupted,
    )
    .map_err(|o| server("cannot read the user list", o));
    progress.finish();
    console.set_bar(None);
    if interrupted.load(Ordering::SeqCst) {
        console.warn("interrupted: nothing was written (an export is written whole or not at all)");
        return Ok(130);
    }
    let mut listed = listed?;
    let csv = !args.output.as_deref().is_some_and(report::is_xlsx);
    let kept = readable(&mut listed.rows, csv);
    let written = match &args.output {
        None => {
            let mut out = std::io::stdout().lock();
            write_csv(&mut out, &template.headers, &listed.rows, CsvDialect::PLAIN)
                .and_then(|()| out.flush())
                .map_err(|e| Error::usage(format!("cannot write the export: {e}")))?;
            None
        }
        Some(path) => {
            // A file gets a BOM: Excel opens UTF-8 without one as the machine's legacy
            // encoding. Commas and LF, as an export always was (SPEC leaves its dialect open).
            let dialect = CsvDialect {
                bom: true,
                ..CsvDialect::PLAIN
            };
            write_file(
                path,
                &template,
                &listed.rows,
                csv.then_some(dialect),
                "export",
            )?;
            Some(path.as_path())
        }
    };
    for w in kept.warnings(listed.twins) {
        console.warn(&w);
    }
    if let Some(w) = refused_by_apply(platform.as_ref(), &template.headers, &listed.rows) {
        console.warn(&w);
    }
    console.info(&format!(
        "exported {} users of {} from {url} in {:.1} s ({} requests){}",
        listed.rows.len(),
        platform.name(),
        started.elapsed().as_secs_f64(),
        http.requests_sent(),
        written.map_or(String::new(), |p| format!(" to {}", p.display())),
    ));
    Ok(0)
}

/// Every exported user's cells, in list order.
struct Listed {
    rows: Vec<Vec<String>>,
    /// Users listed twice (the list moved while it was read), kept once.
    twins: usize,
}

/// Reads the pages after the first (in pages of the `size` it was read in), `--concurrency` at a
/// time, and turns each user into cells.
fn read_all(
    export: &dyn Export,
    (first, size): (ListPage, usize),
    columns: &[&str],
    names: &Names,
    args: &ExportArgs,
    progress: &Pages,
    interrupted: &AtomicBool,
) -> Result<Listed, Outcome> {
    let shape = Shape::of(&first, size);
    progress.start(shape.pages);
    let to_rows = |users: page::Users| -> Vec<Vec<String>> {
        users
            .iter()
            .filter_map(page::parse)
            .filter_map(|u| export.row(&u, columns, names))
            .collect()
    };
    let slots: Mutex<Vec<Option<Vec<Vec<String>>>>> = Mutex::new(vec![None; shape.pages]);
    let lock = || slots.lock().unwrap_or_else(|e| e.into_inner());
    let keep = |number: usize, page: ListPage| {
        let rows = to_rows(page.users);
        lock()[number] = Some(rows);
        progress.done();
    };
    read_pages(
        shape,
        args.connection.concurrency,
        first,
        &|at| export.list_page(at),
        &keep,
        &|| interrupted.load(Ordering::SeqCst),
    )?;
    // A user who moved between pages while they were read shows up twice: once is enough,
    // and twice would make `apply` refuse both rows.
    let mut seen = HashSet::new();
    let mut twins = 0;
    let mut rows = Vec::new();
    for row in slots
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .flatten()
    {
        let key = row
            .first()
            .map(|k| rules::normalize_key(k))
            .unwrap_or_default();
        if seen.insert(key) {
            rows.push(row);
        } else {
            twins += 1;
        }
    }
    Ok(Listed { rows, twins })
}

/// Cells left empty because `apply` would not read them back as they are.
#[derive(Default)]
struct Kept {
    /// Begins like a formula: a CSV opened in Excel would run it.
    formulas: usize,
    /// Spaces around it, which a cell loses when read, or the word `#clear`.
    unreadable: usize,
    /// Key cells written with a leading `'`, which keeps Excel from running them.
    defused_keys: usize,
}

impl Kept {
    fn warnings(&self, twins: usize) -> Vec<String> {
        let mut w = Vec::new();
        if self.formulas > 0 {
            w.push(format!(
                "{} cells begin with = + - @ (a formula to Excel) and were left empty, which \
                 keeps those values as they are when the file is applied; export to .xlsx to \
                 have them written",
                self.formulas
            ));
        }
        if self.unreadable > 0 {
            w.push(format!(
                "{} cells have spaces around their text or read #clear, which apply would \
                 change; they were left empty, which keeps those values as they are",
                self.unreadable
            ));
        }
        if self.defused_keys > 0 {
            w.push(format!(
                "{} users are named by a value Excel would run as a formula: written with a \
                 leading ' (those rows would be not-found if applied; export to .xlsx instead)",
                self.defused_keys
            ));
        }
        if twins > 0 {
            w.push(format!(
                "{twins} users were listed twice (the list changed while it was read) and are \
                 written once"
            ));
        }
        w
    }
}

/// The exported rows read as `apply` reads them, with the field dictionary's default options:
/// when some would be refused, how many and the first reason (a custom hub role, say, which
/// `apply` admits with `--allow-role`), so that nobody learns it from a failed round trip.
fn refused_by_apply(
    platform: &dyn platform::Platform,
    headers: &[&str],
    rows: &[Vec<String>],
) -> Option<String> {
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let layout = platform::columns::map_headers(&header, platform.fields());
    let mut refused = 0;
    let mut first = None;
    // In chunks, so a big tenant's rows are not all held twice.
    for (n, chunk) in rows.chunks(10_000).enumerate() {
        let as_read: Vec<Row> = chunk
            .iter()
            .enumerate()
            .map(|(i, cells)| {
                let mut read =
                    Cells::with_capacity(cells.len(), cells.iter().map(String::len).sum());
                for c in cells {
                    read.push(c);
                }
                Row {
                    // The row Excel shows: the header is row 1.
                    line: (n * 10_000 + i) as u64 + 2,
                    cells: read,
                    bad_cells: Vec::new(),
                }
            })
            .collect();
        for (row, checked) in as_read
            .iter()
            .zip(check::check_chunk(platform, &layout, &as_read))
        {
            if let Err(errors) = checked {
                refused += 1;
                first.get_or_insert_with(|| {
                    format!("row {}: {}", row.line, rules::join_errors(&errors))
                });
            }
        }
    }
    first.map(|first| {
        format!("{refused} exported rows would be refused by apply as they are ({first})")
    })
}

/// Makes every cell read back as the value it holds: an empty cell keeps what the server has,
/// so a value `apply` would read differently is left out rather than changed.
fn readable(rows: &mut [Vec<String>], csv: bool) -> Kept {
    let mut kept = Kept::default();
    for row in rows {
        for (c, cell) in row.iter_mut().enumerate() {
            if cell.is_empty() {
                continue;
            }
            let formula = csv && rules::needs_defusing(cell);
            if c == 0 {
                // The user's key is never left out.
                if formula {
                    *cell = report::defuse(cell);
                    kept.defused_keys += 1;
                }
            } else if formula {
                cell.clear();
                kept.formulas += 1;
            } else if rules::trim(cell) != cell.as_str() || cell.eq_ignore_ascii_case(CLEAR) {
                cell.clear();
                kept.unreadable += 1;
            }
        }
    }
    kept
}

/// A bar counting pages while a person watches stderr.
struct Pages {
    bar: Option<indicatif::ProgressBar>,
}

impl Pages {
    fn new(console: &Console, args: &ExportArgs) -> Self {
        let bar = (!console.quiet && !args.connection.verbose && std::io::stderr().is_terminal())
            .then(|| {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:30} {pos}/{len} pages of users  {rate} pages/s  ETA {eta}",
                    )
                    .expect("the template is valid")
                    .with_key("rate", super::apply::rate_key),
                );
                bar
            });
        console.set_bar(bar.clone());
        Pages { bar }
    }

    fn start(&self, pages: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(pages as u64);
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
