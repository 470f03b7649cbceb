use std::process::ExitCode;

// mimalloc instead of the system allocator: loading a large document is allocation-bound
// (glibc malloc was ~45% of `toolgate check` on a 10,000-operation document), and the
// request path allocates per call. Measured in BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    toolgate::cli::main()
}
