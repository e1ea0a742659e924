use std::process::ExitCode;

fn main() -> ExitCode {
    drillbook::cmd::main()
}
