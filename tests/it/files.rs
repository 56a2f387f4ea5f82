//! Trust in files: what a file holds is read as it is, or refused with a reason, never guessed.

use crate::common::*;

fn run(args: &[&str], file: &std::path::Path) -> std::process::Output {
    bulkedit()
        .arg(args[0])
        .arg(file)
        .args(&args[1..])
        .output()
        .expect("runs")
}

/// A quoted cell whose quote never closes makes the file unreadable, for `validate` (its block
/// reader, near the start and far past the first blocks) and for `apply` (the full parser):
/// exit 2, naming the row Excel shows and the column where the quote opened, and no report.
#[test]
fn an_unclosed_quote_makes_the_file_unreadable_naming_where_it_opened() {
    let dir = tempdir();
    let small = "user_email,First Name,Last Name\r\n\
                 user00001@example.com,Ann,Lee\r\n\
                 \r\n\
                 user00002@example.com,\"Bob,Ray\r\nuser00003@example.com,Cy,Dee\r\n";
    let mut big = String::from("user_email,First Name,Last Name\n");
    for i in 1..=20_000 {
        big.push_str(&format!(
            "user{i:05}@example.com,\"Name\non two lines\",Last\n"
        ));
    }
    // 20,000 records of two lines each after the header on line 1: the next is row 20,002.
    big.push_str("user20001@example.com,Ann,\"Lee\nuser20002@example.com,Bo,Ek\n");
    for (name, text, row, column) in [
        ("small.csv", small.to_string(), 4, "First Name"),
        ("big.csv", big, 20_002, "Last Name"),
    ] {
        let file = write(dir.path(), name, text);
        for args in [&["validate"][..], &["apply", "--sandbox"][..]] {
            let report = dir.path().join("r.csv");
            let mut all = args.to_vec();
            all.extend(["--report", report.to_str().unwrap()]);
            let out = run(&all, &file);
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {err}");
            assert!(
                err.contains(&format!("row {row}, column '{column}'")) && err.contains("quote"),
                "{name} {args:?}: {err}"
            );
            assert!(!report.exists(), "{name} {args:?}");
        }
    }
}

/// A file that is not UTF-8 is decoded as a whole in its legacy encoding, even where a pair of
/// its bytes happens to be valid UTF-8 (`Ã©` in Windows-1252 is the UTF-8 for `é`), and even
/// when the first byte that is not UTF-8 lies far past the start: never a mix cell by cell.
#[test]
fn text_that_is_not_utf8_is_decoded_whole_in_its_legacy_encoding() {
    let dir = tempdir();
    let names = ["José", "Ã©tienne", "Zoë", "Müller", "Ã‰lise"];
    let row = |i: usize, first: &str| format!("user{i:05}@example.com,{first},Lee\r\n");
    let mut small = String::from("user_email,First Name,Last Name\r\n");
    for (i, n) in names.iter().enumerate() {
        small.push_str(&row(i + 1, n));
    }
    // The same names after 2,000 rows of plain ASCII and of `Ã©`, which is UTF-8 on its own.
    let mut big = String::from("user_email,First Name,Last Name\r\n");
    for i in 1..=2000 {
        big.push_str(&row(i, if i % 2 == 0 { "Ã©ric" } else { "Ann" }));
    }
    for (i, n) in names.iter().enumerate() {
        big.push_str(&row(2001 + i, n));
    }
    for (file, text) in [("small.csv", small), ("big.csv", big)] {
        let (bytes, _, lossy) = encoding_rs::WINDOWS_1252.encode(&text);
        assert!(!lossy);
        assert!(std::str::from_utf8(&bytes).is_err());
        let path = write(dir.path(), file, &bytes);
        let rows = rows_of(&path);
        assert!(
            rows[0]["read_as"]
                .as_str()
                .unwrap()
                .contains("Windows-1252"),
            "{:?}",
            rows[0]
        );
        let want: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap())
            .collect();
        let got: Vec<&str> = rows[1..]
            .iter()
            .map(|r| r["cells"][1].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{file}");
        let report = dir.path().join(format!("{file}-report.csv"));
        let out = bulkedit()
            .arg("validate")
            .arg(&path)
            .arg("--report")
            .arg(&report)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr_of(&out));
        assert!(
            stderr_of(&out).contains("Windows-1252"),
            "{}",
            stderr_of(&out)
        );
        let firsts: Vec<String> = read_report(&report)
            .iter()
            .map(|r| r["First Name"].clone())
            .collect();
        assert_eq!(firsts, want, "{file}");
    }
}

/// Input that is not a regular file (a FIFO, `/dev/stdin`) is read once, never waited on for
/// a second opening that no writer will ever make.
#[cfg(unix)]
#[test]
fn a_fifo_or_stdin_is_read_once_and_never_hangs() {
    use std::io::Write;
    let dir = tempdir();
    let text = "user_email,First Name\nuser00001@example.com,Ann\nuser00002@example.com,Bob\n";
    for args in [&["validate"][..], &["apply", "--sandbox"][..]] {
        let fifo = dir.path().join(format!("in-{}.csv", args[0]));
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                // Blocks until bulkedit opens the FIFO to read; a second opening finds no one.
                let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                f.write_all(text.as_bytes()).unwrap();
            })
        };
        let report = dir.path().join(format!("{}-report.csv", args[0]));
        let started = std::time::Instant::now();
        let out = bulkedit()
            .args(&args[..1])
            .arg(&fifo)
            .args(&args[1..])
            .arg("--report")
            .arg(&report)
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .unwrap();
        assert!(started.elapsed().as_secs() < 20, "{args:?} took too long");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr_of(&out));
        let rows = read_report(&report);
        assert_eq!(statuses(&rows).len(), 2, "{args:?}");
        writer.join().unwrap();
    }
    // Standard input, named as a file.
    let report = dir.path().join("stdin-report.csv");
    let out = bulkedit()
        .arg("validate")
        .arg("/dev/stdin")
        .arg("--report")
        .arg(&report)
        .write_stdin(text)
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stdin: {}", stderr_of(&out));
    assert_eq!(read_report(&report).len(), 2);
}

/// An `.xlsx` report never fails on a cell past Excel's 32,767 characters: the cell is cut
/// there, with a note that says so.
#[test]
fn an_xlsx_report_cuts_a_cell_too_long_for_excel_with_a_note() {
    use calamine::{open_workbook, Reader, Xlsx};
    let dir = tempdir();
    let long = "é".repeat(40_000);
    let file = write(
        dir.path(),
        "long.csv",
        format!("Email,First Name,Job Title\nuser00001@example.com,Ann,{long}\n"),
    );
    let report = dir.path().join("r.xlsx");
    let out = bulkedit()
        .arg("validate")
        .arg(&file)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let mut book: Xlsx<_> = open_workbook(&report).unwrap();
    let range = book.worksheet_range("Report").unwrap();
    let header: Vec<String> = range
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let col = header.iter().position(|h| h == "Job Title").unwrap();
    let cell = range.get((1, col)).unwrap().to_string();
    assert_eq!(cell.chars().count(), 32_767);
    assert!(long.starts_with(&cell));
    let xml = {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&report).unwrap()).unwrap();
        let mut f = zip.by_name("xl/comments1.xml").unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        s
    };
    assert!(xml.contains("40000 characters"), "{xml}");
}

/// Text from a workbook's string cell that starts like a formula stays text in a CSV report
/// (Excel would make it a live formula), and reading that report back gives the user's value.
#[test]
fn workbook_text_never_becomes_a_formula_and_a_report_reads_back_exactly() {
    let dir = tempdir();
    let input = dir.path().join("in.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["Email", "First Name", "Job Title"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let values = [
        "user00001@example.com",
        "Ann",
        "=HYPERLINK(\"http://x\",\"y\")",
    ];
    for (c, v) in values.iter().enumerate() {
        sheet.write_string(1, c as u16, *v).unwrap();
    }
    book.save(&input).unwrap();
    let report = dir.path().join("r.csv");
    let out = bulkedit()
        .arg("validate")
        .arg(&input)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let title = read_report(&report)[0]["Job Title"].clone();
    assert!(title.starts_with('\''), "a live formula in Excel: {title}");
    // Read back, the report gives the user's value, and a second report defuses it once.
    let rows = rows_of(&report);
    let cells: Vec<String> = rows[1]["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert!(cells.contains(&values[2].to_string()), "{cells:?}");
    let again = dir.path().join("again.csv");
    let out = bulkedit()
        .arg("validate")
        .arg(&report)
        .arg("--report")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(read_report(&again)[0]["Job Title"], title);
}

/// Rows a workbook hides, by hand or by a filter, are read like the others, and the run says
/// how many there were and which (the first few, and how many more). Empty hidden rows, and a
/// hidden sheet's rows, are not counted.
#[test]
fn rows_a_workbook_hides_or_filters_out_are_read_and_named() {
    let dir = tempdir();
    let input = dir.path().join("hidden.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet().set_name("Users").unwrap();
    for (c, h) in ["user_email", "user_department"].iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    // Rows 2 to 21 as Excel numbers them.
    for i in 1..=20u32 {
        let dept = if i % 4 == 0 { "Sales" } else { "Finance" };
        sheet
            .write_string(i, 0, format!("user{i:05}@example.com"))
            .unwrap();
        sheet.write_string(i, 1, dept).unwrap();
    }
    sheet.autofilter(0, 0, 20, 1).unwrap();
    let finance = rust_xlsxwriter::FilterCondition::new().add_list_filter("Finance");
    sheet.filter_column(1, &finance).unwrap();
    sheet.set_row_hidden(2).unwrap();
    sheet.set_row_hidden(4).unwrap();
    // An empty row hidden: nothing to read, nothing to say.
    sheet.set_row_hidden(30).unwrap();
    book.save(&input).unwrap();

    let report = dir.path().join("r.csv");
    let out = run(&["validate", "--report", report.to_str().unwrap()], &input);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        read_report(&report).len(),
        20,
        "hidden rows are read like the others"
    );
    // Filtered out: the Sales rows 5, 9, 13, 17 and 21; hidden by hand: rows 3 and 5.
    assert!(
        err.contains(
            "6 rows are hidden or filtered out in the workbook, read like the others: \
             rows 3, 5, 9, 13, 17 and 1 more"
        ),
        "{err}"
    );

    let applied = dir.path().join("a.csv");
    let out = run(
        &["apply", "--sandbox", "--report", applied.to_str().unwrap()],
        &input,
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("6 rows are hidden or filtered out"), "{err}");
    assert_eq!(read_report(&applied).len(), 20);

    // A sheet with nothing hidden says nothing of it.
    let plain = dir.path().join("plain.xlsx");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "user_email").unwrap();
    sheet.write_string(1, 0, "user00001@example.com").unwrap();
    book.save(&plain).unwrap();
    let out = run(&["validate", "--report", report.to_str().unwrap()], &plain);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(!stderr_of(&out).contains("hidden"), "{}", stderr_of(&out));
}

/// An ODS spreadsheet marks the rows it hides, or that a filter leaves out, by their
/// visibility; a run of them may be one element repeated.
#[test]
fn rows_an_ods_spreadsheet_hides_are_read_and_named() {
    use std::io::Write;
    let dir = tempdir();
    let input = dir.path().join("hidden.ods");
    let row = |email: &str, attrs: &str| {
        format!(
            "<table:table-row{attrs}><table:table-cell office:value-type=\"string\"><text:p>{email}</text:p></table:table-cell></table:table-row>"
        )
    };
    let mut rows = row("user_email", "");
    rows += &row("user00001@example.com", "");
    rows += &row("user00002@example.com", " table:visibility=\"collapse\"");
    rows += &row("user00003@example.com", "");
    rows += &row(
        "user00004@example.com",
        " table:number-rows-repeated=\"2\" table:visibility=\"filter\"",
    );
    rows += &row("user00005@example.com", "");
    let content = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
         xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" \
         xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" office:version=\"1.2\">\
         <office:body><office:spreadsheet>\
         <table:table table:name=\"Other\"><table:table-row table:visibility=\"collapse\"><table:table-cell office:value-type=\"string\"><text:p>x</text:p></table:table-cell></table:table-row></table:table>\
         <table:table table:name=\"Users\">{rows}</table:table>\
         </office:spreadsheet></office:body></office:document-content>"
    );
    let manifest = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
        <manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\" manifest:version=\"1.2\">\
        <manifest:file-entry manifest:full-path=\"/\" manifest:media-type=\"application/vnd.oasis.opendocument.spreadsheet\"/>\
        <manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/>\
        </manifest:manifest>";
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&input).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    zip.start_file("META-INF/manifest.xml", stored).unwrap();
    zip.write_all(manifest.as_bytes()).unwrap();
    zip.start_file("content.xml", stored).unwrap();
    zip.write_all(content.as_bytes()).unwrap();
    zip.finish().unwrap();

    let report = dir.path().join("r.csv");
    let out = run(
        &[
            "validate",
            "--sheet",
            "Users",
            "--report",
            report.to_str().unwrap(),
        ],
        &input,
    );
    let err = stderr_of(&out);
    // The repeated row is the same user twice: both its rows are invalid, and read.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(read_report(&report).len(), 6, "{err}");
    assert!(
        err.contains(
            "3 rows are hidden or filtered out in the workbook, read like the others: rows 3, 5, 6"
        ),
        "{err}"
    );
}

#[test]
fn excels_lock_file_is_named_as_such_and_the_workbook_pointed_to() {
    let dir = tempdir();
    // What Excel leaves beside an open workbook: the user's name in a few bytes.
    let lock = write(
        dir.path(),
        "~$users.xlsx",
        b"\x05Ana S\x00\x00\x00\x00\x00\x00",
    );
    let out = run(&["validate"], &lock);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("this is Excel's lock file, kept while someone has users.xlsx open, not a sheet: give users.xlsx itself"),
        "{err}"
    );
}
