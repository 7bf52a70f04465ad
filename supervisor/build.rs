//! With the `python` feature, the binary and the tests find the libpython they were linked
//! with through an rpath (a pyenv or other non-system Python is not on the loader's path).

fn main() {
    #[cfg(feature = "python")]
    pyo3_build_config::add_libpython_rpath_link_args();
}
