//! Links the tests of this crate with an rpath to the libpython that PyO3 found, and records
//! that Python's version for the check that an environment matches it.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    let config = pyo3_build_config::get();
    println!(
        "cargo:rustc-env=SERVE_PYTHON_VERSION={}.{}",
        config.version().major,
        config.version().minor
    );
}
