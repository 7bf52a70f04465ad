//! The `serve` executable: the command line over the built-in eggs.

fn main() -> std::process::ExitCode {
    serve::main_with(serve::Eggs::builtin())
}
