fn main() {
    std::process::exit(bulkedit::cli::main());
}
