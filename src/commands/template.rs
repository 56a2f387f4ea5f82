//! `bulkedit template`: a header row and one example row to start a sheet from; the workbook
//! version offers drop-down lists for yes/no fields and role ids.

use std::io::Write;
use std::path::{Path, PathBuf};

use rust_xlsxwriter::{DataValidation, Format, Workbook};

use crate::error::Error;
use crate::platform::{self, Options};
use crate::report::{AtomicFile, CsvDialect};

pub struct TemplateArgs {
    pub platform: String,
    pub xlsx: bool,
    pub output: Option<PathBuf>,
    /// Write over an existing file.
    pub force: bool,
}

/// A template is a starting point: it never replaces a sheet someone has filled in, unless
/// told to.
fn refuse_to_overwrite(path: &Path, force: bool) -> Result<(), Error> {
    if path.exists() && !force {
        return Err(Error::usage(format!(
            "{} exists; give --force to write over it, or -o another file",
            path.display()
        )));
    }
    Ok(())
}

pub fn run(args: &TemplateArgs) -> Result<Option<PathBuf>, Error> {
    let p = platform::by_name(&args.platform, &Options::default()).ok_or_else(|| {
        Error::usage(format!(
            "unknown platform '{}' (use {})",
            args.platform,
            platform::NAMES.join(", ")
        ))
    })?;
    let t = p.template();
    let wants_xlsx = args.xlsx || args.output.as_deref().is_some_and(crate::report::is_xlsx);
    if wants_xlsx {
        let path = args
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}-template.xlsx", p.name())));
        refuse_to_overwrite(&path, args.force)?;
        write_xlsx(&path, &t).map_err(|e| Error::output(&path, "template", e))?;
        return Ok(Some(path));
    }
    let mut bytes = Vec::new();
    {
        let mut w = csv::Writer::from_writer(&mut bytes);
        let io = |e: csv::Error| Error::usage(e.to_string());
        w.write_record(&t.headers).map_err(io)?;
        w.write_record(&t.example).map_err(io)?;
        w.flush().map_err(|e| Error::usage(e.to_string()))?;
    }
    match &args.output {
        Some(path) => {
            refuse_to_overwrite(path, args.force)?;
            std::fs::write(path, &bytes).map_err(|e| Error::output(path, "template", e))?;
            Ok(Some(path.clone()))
        }
        None => {
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| Error::usage(e.to_string()))?;
            Ok(None)
        }
    }
}

fn write_xlsx(path: &Path, t: &platform::Template) -> Result<(), rust_xlsxwriter::XlsxError> {
    write_workbook(path, t, std::iter::once(&t.example))
}

/// A sheet in the template's columns: the header in bold, then `rows`, with the template's
/// drop-down lists on every row a person may fill in; `export` writes its users through it.
pub fn write_workbook<'r, R, S>(
    path: &Path,
    t: &platform::Template,
    rows: impl IntoIterator<Item = &'r R>,
) -> Result<(), rust_xlsxwriter::XlsxError>
where
    R: AsRef<[S]> + ?Sized + 'r,
    S: AsRef<str> + 'r,
{
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let sheet = wb.add_worksheet();
    sheet.set_name("Users")?;
    let mut widths: Vec<usize> = t.headers.iter().map(|h| h.len()).collect();
    let mut last_row = 0u32;
    for (r, row) in rows.into_iter().enumerate() {
        let r = r as u32 + 1;
        last_row = r;
        for (c, value) in row.as_ref().iter().enumerate().take(t.headers.len()) {
            let value = value.as_ref();
            if !value.is_empty() {
                sheet.write_string(r, c as u16, value)?;
                widths[c] = widths[c].max(value.chars().count());
            }
        }
    }
    for (c, h) in t.headers.iter().enumerate() {
        let c = c as u16;
        sheet.write_string_with_format(0, c, *h, &bold)?;
        sheet.set_column_width(c, (widths[c as usize] + 2).min(40) as f64)?;
        if let Some((_, choices)) = t.choices.iter().find(|(name, _)| name == h) {
            let list = DataValidation::new()
                .allow_list_strings(choices)?
                // Role lists hold several ids ("8; 6"): offer the list, accept other text.
                .show_error_message(false);
            sheet.add_data_validation(1, c, last_row.max(10_000), c, &list)?;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    wb.save(path)
}

/// A sheet in the template's columns as CSV in `dialect`: a header and `rows`.
pub(crate) fn write_csv(
    out: &mut dyn Write,
    headers: &[&str],
    rows: &[Vec<String>],
    dialect: CsvDialect,
) -> std::io::Result<()> {
    out.write_all(dialect.preamble())?;
    let mut w = csv::WriterBuilder::new()
        .delimiter(dialect.delimiter)
        .terminator(if dialect.crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(out);
    w.write_record(headers)?;
    for row in rows {
        w.write_record(row)?;
    }
    w.flush()
}

/// The whole file or none of it: written beside its place and renamed over it when complete.
/// A sheet in `template`'s columns, as CSV in the dialect given or else a workbook; `what`
/// names the file in an error. `export` and the undo file of `apply` write through it.
pub(crate) fn write_file(
    path: &Path,
    template: &platform::Template,
    rows: &[Vec<String>],
    csv: Option<CsvDialect>,
    what: &'static str,
) -> Result<(), Error> {
    let file = AtomicFile::new(path);
    let written = if let Some(dialect) = csv {
        std::fs::File::create(&file.tmp).and_then(|f| {
            let mut out = std::io::BufWriter::new(f);
            write_csv(&mut out, &template.headers, rows, dialect)?;
            out.into_inner()
                .map_err(std::io::IntoInnerError::into_error)?
                .sync_all()
        })
    } else {
        write_workbook(&file.tmp, template, rows).map_err(std::io::Error::other)
    };
    match written.and_then(|()| file.commit()) {
        Ok(()) => Ok(()),
        Err(e) => {
            file.abandon();
            Err(Error::output(path, what, e))
        }
    }
}
