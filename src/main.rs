use std::process::ExitCode;

fn main() -> ExitCode {
    drillbook::cli::main()
}
