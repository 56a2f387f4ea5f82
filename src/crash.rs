//! What happens when bulkedit itself has a bug and panics: the message is printed with every
//! credential redacted (a bug could format one into it), a row whose worker panicked is
//! reported `failed` rather than lost, and a workbook reader that panics on a damaged file is
//! reported as a damaged file.

use std::any::Any;
use std::cell::Cell;
use std::io::Write;
use std::sync::OnceLock;

use crate::secrets::Secrets;

thread_local! {
    /// Set while a panic is expected and reported some other way (a damaged workbook).
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// The credentials of this run, for redacting panic messages.
static HELD: OnceLock<Secrets> = OnceLock::new();

/// Replaces Rust's panic message with one that names the bug and never shows a credential.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        if expected() {
            return;
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // Not eprintln!: a second panic over a closed stderr would abort the process.
        let _ = writeln!(
            std::io::stderr().lock(),
            "bulkedit: internal error{at}: {} (this is a bug in bulkedit; please report it)",
            redact(&message(info.payload()))
        );
    }));
}

/// Whether a panic now would be one that is expected and reported some other way.
pub fn expected() -> bool {
    QUIET.with(Cell::get)
}

/// Makes these the credentials every panic message is redacted with.
pub fn hold_secrets(secrets: &Secrets) {
    let _ = HELD.set(secrets.clone());
}

pub fn redact(text: &str) -> String {
    match HELD.get() {
        Some(s) => s.redact(text),
        None => text.to_string(),
    }
}

/// The text a panic was raised with.
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs `f`, turning a panic into `Err(message)` without printing it.
pub fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.map_err(|p| redact(&message(p.as_ref())))
}

/// Runs `f`, turning a panic into `Err(message)`; the hook has printed it already.
pub fn caught<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|p| redact(&message(p.as_ref())))
}
