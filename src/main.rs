// Rows are many small strings handed between threads; mimalloc keeps that from becoming a
// fight over glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Transparent huge pages make the first touch of each thread's fresh allocator pages zero
    // 2 MB at a time: with a worker pool and pages of users read at once, that was a fifth of
    // a whole apply job's CPU, for memory it never used.
    #[cfg(target_os = "linux")]
    // SAFETY: a process-wide setting, made before any other thread exists.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    std::process::exit(bulkedit::cli::main());
}
