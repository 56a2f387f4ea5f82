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
    let small = "Email,First Name,Last Name\r\n\
                 user00001@example.com,Ann,Lee\r\n\
                 \r\n\
                 user00002@example.com,\"Bob,Ray\r\nuser00003@example.com,Cy,Dee\r\n";
    let mut big = String::from("Email,First Name,Last Name\n");
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
