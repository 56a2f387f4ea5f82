// Rows are many small strings handed between threads; mimalloc keeps that from becoming a
// fight over glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages make the first touch of each thread's fresh allocator pages zero
/// 2 MB at a time: with a worker pool and pages of users read at once, that was a fifth of a
/// whole apply job's CPU, for memory it never used. The Rust runtime makes the first
/// allocation before `main`, so the setting is made in a constructor that the loader runs
/// before it, prioritised so that it also comes before mimalloc's own.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array.00100"]
static TRANSPARENT_HUGE_PAGES_OFF: extern "C" fn() = {
    extern "C" fn off() {
        // SAFETY: a process-wide setting, made before any other thread exists.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
    off
};

fn main() {
    std::process::exit(bulkedit::cli::main());
}
