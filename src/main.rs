// Rows are many small strings handed between threads; mimalloc keeps that from becoming a
// fight over glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(bulkedit::cli::main());
}
